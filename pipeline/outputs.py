"""Files a command writes for the user: whole or not at all, every secret redacted.

A path the user named that cannot be written is a usage error (exit 2) that names it and says
why in words that are true (a file where a folder should be, a folder that cannot be written),
never a traceback. Commands that spend time or money first call :func:`check_files` /
:func:`check_folder`, so a typo in ``--junit`` does not cost the run; the write says the same
should the path change meanwhile.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pipeline.errors import KnowngoodError, UsageError
from pipeline.outcome import OutFile
from pipeline.redaction import redact_bytes

T = TypeVar("T")

# What the disk says about itself rather than about the path: the path was fine (exit 3).
_NOT_THE_PATH = frozenset(
    getattr(errno, name, -1) for name in ("ENOSPC", "EDQUOT", "EIO", "EFBIG", "EMFILE")
)


def write_atomic(path: Path, data: bytes, *, redact: bool = True) -> None:
    """Write a file so a reader never sees half of it (temp file in the same folder + rename),
    with every secret redacted (unless ``redact`` is False). Raises OSError: callers writing a
    path the user named use :func:`write_output`."""
    if redact:
        data = redact_bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: Path, data: bytes, option: str = "", *, redact: bool = True) -> None:
    """:func:`write_atomic` for a path the user named (``option``: its flag, for the message):
    UsageError when the path cannot be written, KnowngoodError (exit 3) when the disk fails."""
    try:
        write_atomic(path, data, redact=redact)
    except OSError as e:
        raise output_error(path, option, e) from e


def write_files(files: Iterable[OutFile[T]], result: T) -> None:
    """Each requested file, rendered from ``result`` by its reporter, in the order asked."""
    for out in files:
        write_output(out.path, out.render(result), out.option)


def check_files(files: Iterable[OutFile[T]]) -> None:
    """Before a run: UsageError when a requested file could not be written."""
    for out in files:
        _raise_problem(out.path, out.option, folder=False)


def check_folder(folder: Path, option: str = "") -> None:
    """Before writing into ``folder`` (created when missing): UsageError when it could not be."""
    _raise_problem(folder, option, folder=True)


def output_error(
    path: Path, option: str, error: OSError, *, folder: bool = False
) -> KnowngoodError:
    """The error to raise when writing ``path`` (named by ``option``) failed with ``error``.
    ``folder``: ``path`` is a folder made whole in its parent and renamed into place."""
    where = f"{option} {path}" if option else str(path)
    if error.errno in _NOT_THE_PATH:
        return KnowngoodError(
            f"{where}: could not be written ({error.strerror or error})",
            hint="free some space (or fix the disk) and run again, or write elsewhere",
        )
    problem = (
        output_problem(path.parent, folder=True) if folder else output_problem(path, folder=False)
    )
    if problem is None:  # nothing on disk explains it: the system's word
        problem = _refused(path.parent, error)
    return _usage(where, problem)


def _raise_problem(path: Path, option: str, *, folder: bool) -> None:
    problem = output_problem(path, folder=folder)
    if problem is not None:
        raise _usage(f"{option} {path}" if option else str(path), problem)


def _usage(where: str, problem: tuple[str, str]) -> UsageError:
    what, hint = problem
    return UsageError(f"{where}: cannot be written: {what}", hint=hint)


def output_problem(path: Path, *, folder: bool) -> tuple[str, str] | None:
    """(what is wrong, what to do) when ``path`` could not be written (as a file, or as a folder
    to write into), from what is on disk now; None when nothing is seen to be wrong."""
    if path.is_dir() and not folder:
        return f"{path} is a folder", "name a file, not a folder"
    if path.exists() and not path.is_dir() and folder:
        return f"{path} is a file, not a folder", _move_it(path)
    ancestor = path if folder and path.is_dir() else path.parent
    while not ancestor.exists() and not ancestor.is_symlink() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.is_symlink() and not ancestor.exists():
        return (
            f"{ancestor} is a symbolic link to nothing",
            f"fix or remove the link {ancestor}, or name another path",
        )
    if not ancestor.is_dir():
        return f"{ancestor} is a file, not a folder", _move_it(ancestor)
    try:  # a probe says what permissions, ACLs, mounts and /proc mean for this process
        fd, probe = tempfile.mkstemp(prefix=".knowngood-probe.", dir=ancestor)
    except OSError as e:
        return _refused(ancestor, e)
    os.close(fd)
    Path(probe).unlink(missing_ok=True)
    return None


def _refused(folder: Path, error: OSError) -> tuple[str, str]:
    return (
        f"the folder {folder} does not take new files ({error.strerror or error})",
        "name a path in a folder you can write to",
    )


def _move_it(file: Path) -> str:
    return f"name a path outside {file}, or move that file out of the way"
