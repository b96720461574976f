"""``knowngood init``: write a new repository from the template in ``files/``, all or nothing."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UsageError
from pipeline.schemas import schema_files

FILES = Path(__file__).parent / "files"


@dataclass(slots=True)
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)


def plan() -> dict[str, Path]:
    """Destination-relative path -> source file, for everything init writes."""
    out: dict[str, Path] = {}
    for src in sorted(FILES.rglob("*")):
        if src.is_file() and "__pycache__" not in src.parts:
            out[src.relative_to(FILES).as_posix()] = src
    for src in schema_files():
        out[f"schemas/{src.name}"] = src
    return out


def init(dest: Path, *, force: bool = False) -> InitResult:
    """Scaffold ``dest``. Refuses (before writing anything) when a file would be overwritten."""
    files = plan()
    if not force:
        clashes = sorted(rel for rel in files if (dest / rel).exists())
        if clashes:
            shown = ", ".join(clashes[:5]) + (
                f" and {len(clashes) - 5} more" if len(clashes) > 5 else ""
            )
            raise UsageError(
                f"{dest} already has {shown}",
                hint="pick an empty folder, or pass --force to overwrite",
            )
    dest.mkdir(parents=True, exist_ok=True)
    result = InitResult(dest)
    # Stage everything first, then move it into place: a failure leaves no half-written file.
    with tempfile.TemporaryDirectory(prefix=".knowngood-init-", dir=dest) as staging:
        staged = Path(staging)
        for rel, src in files.items():
            target = staged / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        for rel in files:
            final = dest / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged / rel, final)
            result.written.append(rel)
    return result
