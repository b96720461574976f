"""Where a report goes, written atomically.

The output directory must be new, empty, or a previous report: one whose manifest
(``knowngood-report.json``) lists every file in it. Anything else is refused before a byte is
written (exit 2), so a report never lands in (or deletes) a folder of other files.

The site is written into a temporary directory beside the output, then swapped in: a previous
report is renamed aside, the new one renamed into place, the old one removed. A reader sees the
old report or the new one, never a mix (between the two renames there is no report at all for
an instant); an interrupted run leaves at most a ``.<name>.*`` folder beside the output.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.outputs import output_error, output_problem

MANIFEST = "knowngood-report.json"
KIND = "knowngood-report"


def check_output(out: Path) -> bool:
    """Raise UsageError unless ``out`` may receive a report; True when it holds a previous one."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        what = "a symbolic link" if out.is_symlink() else "a file"
        raise UsageError(
            f"--output {out} is {what}, not a directory",
            hint="name a new directory, or one a previous `knowngood report` wrote",
        )
    problem = output_problem(out.parent, folder=True)  # the site is swapped in beside ``out``
    if problem is None and not out.parent.exists():
        problem = (
            f"its parent {out.parent} does not exist",
            f"create it first (mkdir -p {out.parent})",
        )
    if problem is not None:
        what, hint = problem
        raise UsageError(f"--output {out}: {what}; nothing was written", hint=hint)
    if not out.exists():
        return False
    present = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if not p.is_dir())
    if not present:
        return False
    listed = _manifest_files(out)
    if listed is None:
        raise UsageError(
            f"--output {out} is not empty and is not a knowngood report (no valid {MANIFEST}): "
            "nothing was written",
            hint="name a new or empty directory; a report replaces only a previous report",
        )
    foreign = [p for p in present if p not in listed]
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise UsageError(
            f"--output {out} is a previous report with files its manifest does not list "
            f"({shown}): they would be lost, so nothing was written",
            hint="move them out of the report's directory (or add them after publishing)",
        )
    return True


def _manifest_files(out: Path) -> set[str] | None:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        return None
    files = data.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return set(files)


def write_site(out: Path, pages: Mapping[str, str], manifest: Mapping[str, Any]) -> None:
    """Write ``pages`` (relative path -> text) and the manifest into ``out``, atomically."""
    previous = check_output(out)  # again: the directory may have changed while we rendered
    try:
        _swap_in(out, previous, pages, manifest)
    except OSError as e:
        raise output_error(out, "--output", e, folder=True) from e


def _swap_in(
    out: Path, previous: bool, pages: Mapping[str, str], manifest: Mapping[str, Any]
) -> None:
    temp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, text in pages.items():
            path = temp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        (temp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        temp.chmod(0o755)  # mkdtemp makes it 0700: a published site is readable
        if previous or out.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, aside / "site")
            try:
                os.replace(temp, out)
            except OSError:
                os.replace(aside / "site", out)  # put the previous report back
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(temp, out)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
