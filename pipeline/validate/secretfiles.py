"""Which files ``validate`` scans for secrets, and how each is read.

Every file git tracks under the knowngood root (one ``git ls-files -z``), plus knowngood's own
files (``knowngood.yaml``, ``agents/``, ``evals/``: tracked or not, as validate reads them). In a
folder that is not a git work tree, every file under the root, minus version-control folders,
virtual environments, caches and ``.knowngood/``. Symbolic links are not followed.

A binary file (a NUL byte in its first 8 KiB) is skipped; so is a file over
:data:`MAX_SCAN_BYTES`, with a warning that names it. Text that is not UTF-8 is scanned with
the bad bytes replaced: a key in a Latin-1 README is still found.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

from pipeline.findings import Finding
from pipeline.git import Git

MAX_SCAN_BYTES: Final = 8 * 1024 * 1024
BINARY_PROBE: Final = 8192
SKIP_DIRS: Final = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".knowngood",
    }
)


def other_files(
    root: Path, own: tuple[str, ...] = ("knowngood.yaml", "agents", "evals")
) -> list[Path]:
    """The files to scan besides knowngood's own (``own``: top-level names under ``root``)."""
    names = _tracked(root)
    if names is None:
        names = _walk(root)
    return [root / name for name in names if name.split("/", 1)[0] not in own]


def _tracked(root: Path) -> list[str] | None:
    """Files git tracks under ``root`` (paths relative to it), or None outside a work tree."""
    git = Git(root)
    result = git.try_run("ls-files", "-z", "--cached", "--", ".")
    if result.code != 0:
        return None
    if not result.stdout and git.try_run("rev-parse", "--is-inside-work-tree").code != 0:
        return None
    return sorted({name for name in result.stdout.split("\0") if name})


def _walk(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS and not Path(dirpath, d, "pyvenv.cfg").exists()
        )
        base = os.path.relpath(dirpath, root)
        prefix = "" if base == "." else base.replace(os.sep, "/") + "/"
        found.extend(prefix + name for name in sorted(filenames))
    return found


def read(path: Path, rel: str) -> tuple[str | None, Finding | None]:
    """The text to scan, or None (with a warning for a file too large to scan)."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):  # a symlink, a submodule, gone since git listed it
            return None, None
        if st.st_size > MAX_SCAN_BYTES:
            return None, Finding(
                rel,
                None,
                None,
                "",
                f"not scanned for secrets: {st.st_size / 1024 / 1024:.1f} MiB is over the "
                f"{MAX_SCAN_BYTES // 1024 // 1024} MiB limit",
                "warning",
                "secret.not-scanned",
                hint="keep large data out of the repository (or in Git LFS)",
            )
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None, None
    if b"\0" in raw[:BINARY_PROBE]:
        return None, None
    return raw.decode("utf-8", "replace"), None
