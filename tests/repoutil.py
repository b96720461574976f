"""Repositories on disk for tests: the valid base repository and git repositories built from it.

``BASE`` is tests/data/validate/base.yaml: a valid repository with one agent, ``shop``.
:func:`make_repo` commits copies of that agent under other names into a fresh git repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitutil import commit_all, init_repo

from pipeline.cli import main
from pipeline.git import Git
from pipeline.release import ReleaseReport, create_releases

DATA = Path(__file__).parent / "data" / "validate"
BASE: dict[str, str] = yaml.safe_load((DATA / "base.yaml").read_text())


def write_repo(root: Path, files: dict[str, str | None]) -> Path:
    for rel, text in files.items():
        path = root / rel
        if text is None:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run_validate(
    root: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    code = main(["validate", "--repo", str(root), "--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def repo_files(agents: tuple[str, ...] = ("shop", "desk")) -> dict[str, str]:
    """base.yaml with its agent ``shop`` copied under each name in ``agents``."""
    files = {p: t for p, t in BASE.items() if not p.startswith(("agents/shop/", "evals/shop/"))}
    for agent in agents:
        for path, text in BASE.items():
            if path.startswith(("agents/shop/", "evals/shop/")):
                new = path.replace("/shop/", f"/{agent}/", 1)
                files[new] = text.replace("name: shop", f"name: {agent}").replace(
                    "agent: shop", f"agent: {agent}"
                )
    return files


def make_repo(path: Path, agents: tuple[str, ...] = ("shop", "desk"), sub: str = "") -> Path:
    top = init_repo(path)
    root = top / sub if sub else top
    write_repo(root, repo_files(agents))
    commit_all(top, "base")
    return root


def edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def do(root: Path, **kw: Any) -> ReleaseReport:
    """Release every agent that changed in ``root`` (``create_releases``, in-process)."""
    return create_releases(Git(root), root, **kw)
