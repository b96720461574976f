"""Where backups go (knowngood.yaml ``runtime.backup.target``): a directory or a command.

One contract, four operations on named objects (names are relative paths such as
``snapshots/20260101T120000.000000Z-1a2b3c4d.sqlite.gz``): ``put`` a local file under a name,
``get`` a name into a local file, ``list`` the names under a prefix, ``delete`` a name.

- ``directory``: the objects are files under ``path``; ``put`` writes a temporary file in the
  same folder and renames it, so a reader never sees half an object.
- ``command``: the user's argv with the operation appended, like a deploy command target:
  ``CMD put NAME FILE``, ``CMD get NAME FILE``, ``CMD list PREFIX`` (prints one name a line),
  ``CMD delete NAME``. Exit 0 is success; anything else is a failure with its output shown.
  The command must make ``put`` atomic (an object is visible whole or not at all).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from pipeline.errors import KnowngoodError, UsageError
from pipeline.git import quote_args
from pipeline.targets.base import run_command, tail

__all__ = ["BackupTarget", "BackupTargetError", "CommandStore", "DirectoryStore", "make_store"]

COMMAND_TIMEOUT_S = 600.0
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class BackupTargetError(KnowngoodError):
    """The backup target refused or failed an operation (exit 3)."""


class BackupTarget(Protocol):
    type: str
    location: str  # for messages: a path or the command line (never a secret)

    def put(self, name: str, source: Path) -> None: ...

    def get(self, name: str, dest: Path) -> None: ...

    def list(self, prefix: str) -> list[str]: ...

    def delete(self, name: str) -> None: ...


def _checked(name: str) -> str:
    if not NAME.match(name) or ".." in name.split("/"):
        raise BackupTargetError(f"refusing the object name {name!r}")
    return name


class DirectoryStore:
    type = "directory"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.location = str(self.path)

    def put(self, name: str, source: Path) -> None:
        dest = self.path / _checked(name)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            raise BackupTargetError(
                f"cannot write {dest}: {e.strerror or e}",
                hint="check runtime.backup.target.path in knowngood.yaml and its permissions",
            ) from e

    def get(self, name: str, dest: Path) -> None:
        source = self.path / _checked(name)
        try:
            shutil.copyfile(source, dest)
        except OSError as e:
            raise BackupTargetError(f"cannot read {source}: {e.strerror or e}") from e

    def list(self, prefix: str) -> list[str]:
        folder = self.path / prefix if prefix else self.path
        if not folder.is_dir():
            return []
        names = []
        for dirpath, _dirs, files in os.walk(folder):
            rel = Path(dirpath).relative_to(self.path).as_posix()
            for file in files:
                if not file.startswith(".tmp-"):
                    names.append(file if rel == "." else f"{rel}/{file}")
        return sorted(names)

    def delete(self, name: str) -> None:
        (self.path / _checked(name)).unlink(missing_ok=True)


class CommandStore:
    type = "command"

    def __init__(self, argv: Sequence[str], cwd: Path, timeout_s: float = COMMAND_TIMEOUT_S):
        if not argv:
            raise UsageError("runtime.backup.target.command is empty", hint="e.g. [./backup.sh]")
        self.argv = [str(a) for a in argv]
        self.cwd = cwd
        self.timeout_s = timeout_s
        self.location = quote_args(self.argv)

    def _run(self, *args: str) -> str:
        run = run_command(
            [*self.argv, *args], cwd=self.cwd, env=dict(os.environ), timeout_s=self.timeout_s
        )
        what = f"{self.location} {args[0]}"
        if run.code is None:
            raise BackupTargetError(f"{what}: {run.error}{tail(run.output)}")
        if run.code != 0:
            raise BackupTargetError(f"{what} exited {run.code}{tail(run.output)}")
        return run.output

    def put(self, name: str, source: Path) -> None:
        self._run("put", _checked(name), str(source))

    def get(self, name: str, dest: Path) -> None:
        self._run("get", _checked(name), str(dest))
        if not dest.is_file():
            raise BackupTargetError(f"{self.location} get {name} exited 0 but wrote no file")

    def list(self, prefix: str) -> list[str]:
        out = self._run("list", prefix)
        return sorted(line.strip() for line in out.splitlines() if NAME.match(line.strip()))

    def delete(self, name: str) -> None:
        self._run("delete", _checked(name))


def make_store(config: Mapping[str, Any], root: Path) -> BackupTarget:
    """The target of ``runtime.backup.target`` (the schema has checked its shape)."""
    kind = config.get("type")
    if kind == "directory":
        path = Path(str(config.get("path") or ".knowngood/backups"))
        return DirectoryStore(path if path.is_absolute() else root / path)
    if kind == "command":
        return CommandStore(list(config.get("command") or []), root)
    raise UsageError(
        f"unknown runtime.backup.target type {kind!r}", hint="use directory or command"
    )
