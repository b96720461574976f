"""Checklist items measured on the drill records, the backups and the workflows' schedule."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.readiness.backups import backup_directory, newest_backup, parse_utc
from pipeline.readiness.model import Check, Item
from pipeline.readiness.schedule import MAX_GAP_DAYS, max_gap_days, scheduled_drills
from pipeline.recordtypes import DrillRecord
from pipeline.runbookfacts import recovery_targets

QUARTER_DAYS = (
    92  # "this quarter": the last 92 days, so a drill run on a quarter's first day counts
)
# item id -> (drill kind, window in days, per agent or repository-wide)
WINDOWS: dict[str, tuple[str, int, bool]] = {
    "rollback-drill": ("rollback", 30, True),
    "restore-drill": ("restore", 90, False),
    "failover-drill": ("failover", QUARTER_DAYS, True),
    "crash-drill": ("crash", QUARTER_DAYS, False),
}


def drill_item(
    item_id: str, drills: Sequence[DrillRecord], agents: Sequence[str], now: datetime
) -> Item:
    kind, days, per_agent = WINDOWS[item_id]
    item = Item(item_id)
    since = now - timedelta(days=days)
    newest_of: dict[str, DrillRecord] = {}  # agent (or "repository") -> newest passed drill
    for d in drills:
        if d.get("drill") == kind and d.get("outcome") == "passed":
            key = str(d.get("agent")) if per_agent else "repository"
            if key not in newest_of or str(d["at"]) > str(newest_of[key]["at"]):
                newest_of[key] = d
    for subject in agents if per_agent else ["repository"]:
        newest = newest_of.get(subject)
        command = f"knowngood drill {kind}" + (f" {subject}" if per_agent else "")
        when = parse_utc(str(newest["at"])) if newest is not None else None
        if newest is None or when is None:
            item.checks.append(
                Check(subject, False, f"no {kind} drill ever passed", f"run `{command}`")
            )
            continue
        age = (now - when).days
        detail = f"passed {newest['at'][:10]} ({age} days ago)" + _recovery(newest)
        if when >= since:
            item.checks.append(Check(subject, True, detail))
        else:
            item.checks.append(
                Check(subject, False, f"{detail}: older than {days} days", f"run `{command}`")
            )
    return item


def _recovery(drill: DrillRecord) -> str:
    value = drill["recovery_s"]
    return f", recovery {value:g} s" if isinstance(value, int | float) else ""


def backups_item(
    root: Path, settings: Mapping[str, Any], now: datetime, notices: list[str]
) -> Item:
    item = Item("backups")
    rpo = recovery_targets(settings)["rpo_s"]
    folder = backup_directory(root, settings)
    if isinstance(folder, str):
        item.checks.append(
            Check(
                "repository",
                False,
                f"cannot read the manifests of a {folder} backup target",
                "check `knowngood backups list` by hand, or back up to a directory target",
            )
        )
        return item
    newest = newest_backup(folder, notices, now=now)
    if newest is None:
        shown = _shown(root, folder)
        item.checks.append(
            Check(
                "repository",
                False,
                f"no backup in {shown}",
                "run `knowngood backup` (and set runtime.backup in knowngood.yaml so serve "
                "backs up on a schedule)",
            )
        )
        return item
    age = (now - newest).total_seconds()
    detail = (
        f"newest backup {newest.strftime('%Y-%m-%dT%H:%M:%SZ')}, {age / 60:.0f} min old "
        f"(RPO target {rpo / 60:g} min)"
    )
    if age <= rpo:
        item.checks.append(Check("repository", True, detail))
    else:
        item.checks.append(
            Check(
                "repository",
                False,
                detail,
                "run `knowngood backup` now and schedule it more often than the RPO target",
            )
        )
    return item


def schedule_item(workflows: Path) -> Item:
    item = Item("drill-schedule")
    found = scheduled_drills(workflows)
    for kind, limit in MAX_GAP_DAYS.items():
        runs = found.get(kind, [])
        fix = (
            f"add a scheduled workflow step `knowngood drill {kind}` (cron at least every "
            f"{limit} days) under .github/workflows/"
        )
        if not runs:
            item.checks.append(Check(kind, False, "no scheduled workflow runs it", fix))
            continue
        gaps = []
        for path, cron in runs:
            try:
                gaps.append((max_gap_days(cron), path, cron))
            except KnowngoodError as e:
                item.checks.append(Check(kind, False, f"{path}: {e.message}", fix))
                break
        else:
            gap, path, cron = min(gaps)
            detail = f'{path}: cron "{cron}", at most {gap} days apart'
            if gap <= limit:
                item.checks.append(Check(kind, True, detail))
            else:
                item.checks.append(Check(kind, False, f"{detail} (needs {limit})", fix))
    return item


def _shown(root: Path, folder: Path) -> str:
    try:
        return folder.relative_to(root).as_posix()
    except ValueError:
        return str(folder)
