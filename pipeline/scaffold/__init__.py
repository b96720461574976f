"""``knowngood init``: write a new repository, all or nothing, and make it a git repository.

What a new repository gets:

- the template in ``files/``: knowngood.yaml, one example agent with its suites, a
  ``.gitignore``, and ``.ci/install`` (what the workflows run to install knowngood);
- the JSON Schemas (``schemas/``);
- knowngood's own GitHub workflows (``.github/workflows/*.yml``: the pull-request gate, release
  and deploy with auto-revert, ``/revert``, rollback, drills), copied byte for byte from the
  project, so the two cannot drift apart, with their actions pinned to commit SHAs;
- ``.ci/model.lock`` (the local model's package, pinned by hash, as the project installs it)
  and ``.ci/requirements.lock`` (the knowngood release that wrote the repository).

The workflows, the schemas and the model lock ship inside the wheel under ``pipeline/_data``;
in a source checkout they are read from the project itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.git import Git
from pipeline.outputs import check_folder
from pipeline.schemas import schema_files

FILES = Path(__file__).parent / "files"
_PACKAGED = Path(__file__).resolve().parent.parent / "_data"
_PROJECT = Path(__file__).resolve().parent.parent.parent
MAIN_BRANCH = "main"  # the scaffold's knowngood.yaml says main_branch: main
SCRIPTS = frozenset({".ci/install"})  # written executable (a wheel need not keep the mode)


@dataclass(frozen=True, slots=True)
class Planned:
    """One file init writes: its bytes, and whether it is a script."""

    content: bytes
    executable: bool = False


@dataclass(slots=True)
class InitResult:
    root: Path
    written: list[str] = field(default_factory=list)
    git_init: bool = False  # True: init made ``root`` a new git repository
    git_top: Path | None = None  # the enclosing repository's top level, when root is not it

    @property
    def exit_code(self) -> int:
        return 0  # a refusal raises UsageError (exit 2) before anything is written

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "written": list(self.written),
            "git_init": self.git_init,
            "git_top": None if self.git_top is None else str(self.git_top),
        }


def workflow_files() -> list[Path]:
    """The project's GitHub workflows (packaged in the wheel, else the source checkout's)."""
    packaged = _PACKAGED / "workflows"
    folder = packaged if packaged.is_dir() else _PROJECT / ".github" / "workflows"
    return sorted(folder.glob("*.yml"))


def model_lock() -> Path:
    packaged = _PACKAGED / "model.lock"
    return packaged if packaged.is_file() else _PROJECT / ".ci" / "model.lock"


def requirements_lock(origin: Mapping[str, Any] | None = None) -> str:
    """What the scaffold's ``.ci/install`` installs: the knowngood that wrote it. ``origin``:
    where it was installed from (PEP 610's ``direct_url.json``; default: read it): installed
    from a git repository, that commit of it; otherwise the release of its version."""
    from pipeline import __version__

    wanted = f"knowngood[local]=={__version__}"
    found = installed_from() if origin is None else origin
    vcs, url = found.get("vcs_info"), str(found.get("url", ""))
    if isinstance(vcs, Mapping) and vcs.get("vcs") == "git" and url.startswith("https://"):
        wanted = f"knowngood[local] @ git+{url}@{vcs.get('commit_id')}"
    return (
        "# What .ci/install installs: knowngood, the release that wrote this repository, with\n"
        "# the local model's server. For a hashed install (recommended), replace this file with\n"
        "# a complete lock in which every line carries --hash=sha256:..., e.g. the output of\n"
        f"#   echo '{wanted}' | uv pip compile --generate-hashes -\n"
        "# pip then refuses any file whose hash differs.\n"
        f"{wanted}\n"
    )


def installed_from() -> Mapping[str, Any]:
    """PEP 610's record of where this knowngood was installed from ({} for a registry's)."""
    import importlib.metadata
    import json

    try:
        text = importlib.metadata.distribution("knowngood").read_text("direct_url.json")
        found = json.loads(text) if text else {}
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def plan() -> dict[str, Planned]:
    """Destination-relative path -> content, for everything init writes."""
    out: dict[str, Planned] = {}
    for src in sorted(FILES.rglob("*")):
        if src.is_file() and "__pycache__" not in src.parts:
            rel = src.relative_to(FILES).as_posix()
            out[rel] = Planned(src.read_bytes(), rel in SCRIPTS)
    for src in schema_files():
        out[f"schemas/{src.name}"] = Planned(src.read_bytes())
    workflows = workflow_files()
    if not workflows:
        raise UsageError(
            "this knowngood installation ships no GitHub workflows to scaffold",
            hint="reinstall knowngood (its wheel carries them under pipeline/_data/workflows)",
        )
    for src in workflows:
        out[f".github/workflows/{src.name}"] = Planned(src.read_bytes())
    out[".ci/model.lock"] = Planned(model_lock().read_bytes())
    out[".ci/requirements.lock"] = Planned(requirements_lock().encode())
    return dict(sorted(out.items()))


def init(dest: Path, *, force: bool = False) -> InitResult:
    """Scaffold ``dest``. Refuses (before writing anything) when a file would be overwritten
    or a folder could not be written. Runs ``git init`` (branch main) when ``dest`` is not inside
    a git repository."""
    files = plan()
    for folder in [dest, *sorted({(dest / rel).parent for rel in files} - {dest})]:
        check_folder(folder)  # a file in the way, a folder that takes no files: said first
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
        for rel, planned in files.items():
            target = staged / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(planned.content)
            target.chmod(0o755 if planned.executable else 0o644)
        for rel in files:
            final = dest / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged / rel, final)
            result.written.append(rel)
    _git_init(dest, result)
    return result


def _git_init(dest: Path, result: InitResult) -> None:
    git = Git(dest)
    found = git.try_run("rev-parse", "--show-toplevel")
    if found.code == 0:
        top = Path(found.stdout.strip()).resolve()
        if top != dest.resolve():
            result.git_top = top
        return
    git.run("init", "--quiet", f"--initial-branch={MAIN_BRANCH}")
    result.git_init = True
