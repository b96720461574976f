"""Files under the eval cache that git tracks: an error, whatever they hold.

A cached answer decides a case without calling the provider, so a committed one would let a
commit decide its own verdict. The cache never reads such files (:mod:`pipeline.gittracked`);
``validate`` says so and how to untrack them, so the pull request that adds them learns it first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.findings import Finding

__all__ = ["cache_dir_setting", "tracked_cache_findings"]

RULE = "cache.tracked"
MAX_LISTED = 20  # files named one by one; the rest in one more finding


def cache_dir_setting(settings_data: Mapping[str, Any] | None) -> str:
    """``eval.cache_dir`` from knowngood.yaml's data, or its default."""
    from pipeline.repo import EvalDefaults

    ev = (settings_data or {}).get("eval")
    value = ev.get("cache_dir") if isinstance(ev, Mapping) else None
    return value if isinstance(value, str) and value else EvalDefaults().cache_dir


def tracked_cache_findings(root: Path, cache_dir: str) -> list[Finding]:
    """One error per tracked file under ``root / cache_dir`` (paths relative to ``root``)."""
    from pipeline.gittracked import tracked_files

    tracked = tracked_files(root / cache_dir)
    if not tracked or tracked.top is None:
        return []
    shown = Path(os.path.normpath(cache_dir)).as_posix()  # as configured
    hint = (
        f"untrack it: git rm -r --cached -- {shown} (the files stay on disk), commit, and keep "
        f"{shown}/ in .gitignore"
    )
    message = (
        "this file under the eval cache (eval.cache_dir) is tracked by git: knowngood never "
        "reads a committed answer, so it only misleads"
    )
    findings = [
        Finding(_rel(root, tracked.top / path), None, None, "", message, "error", RULE, hint=hint)
        for path in tracked.git_paths[:MAX_LISTED]
    ]
    rest = len(tracked.git_paths) - MAX_LISTED
    if rest > 0:
        findings.append(
            Finding(
                shown,
                None,
                None,
                "",
                f"{rest} more files under the eval cache are tracked by git",
                "error",
                RULE,
                hint=hint,
            )
        )
    return findings


def _rel(root: Path, path: Path) -> str:
    return Path(os.path.relpath(path, os.path.realpath(root))).as_posix()
