"""``knowngood readiness``: the seeds' disaster-recovery checklists, each item measured.

Inputs: the working tree's configuration (knowngood.yaml, agents/), the release tags, the
records branch (drills, incidents, stored eval results; fetched first unless told not to), the
backup target's manifests, the committed runbooks and the workflows under .github/workflows.
Nothing is written. The policy (knowngood.yaml ``runtime.readiness``) decides the exit code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import GitError
from pipeline.git import Git
from pipeline.outcome import Say, silent
from pipeline.readiness.agents import breakers, contacts, provider_suites, runbooks, vendors
from pipeline.readiness.drills import WINDOWS, backups_item, drill_item, schedule_item
from pipeline.readiness.model import AGENT_ITEMS, ITEMS, Item, Policy, ReadinessReport
from pipeline.readiness.releases import releases_item
from pipeline.records import RecordStore
from pipeline.runbook import expected_runbooks
from pipeline.runbookfacts import load_tree
from pipeline.source import working_tree


@dataclass(frozen=True, slots=True)
class ReadinessRequest:
    fetch: bool = True
    say: Say = silent  # the revision read (stderr)
    now: datetime | None = None  # default: the clock (tests fix it)
    base: str | None = None  # take the policy from this revision's knowngood.yaml (a PR's base)


def run(root: Path, request: ReadinessRequest) -> ReadinessReport:
    """Measure every item of the checklist (``ITEMS``) and score them against the policy."""
    working_tree(root).tell(request.say)
    now = request.now or datetime.now(UTC)
    settings, facts = load_tree(root)
    git = Git(root)
    notices: list[str] = []
    if request.base is not None:  # the bar is base's: a change must not lower its own
        from pipeline.readiness.basepolicy import base_settings, differing, with_policy

        commit, base = base_settings(git, request.base)
        changed = differing(settings, base)
        settings = with_policy(settings, base)
        if changed:
            notices.append(
                f"{', '.join(changed)} differ in this tree: {request.base} ({commit[:10]}) "
                "sets the bar (the tree's apply once it is merged)"
            )
    report = ReadinessReport(now, Policy.from_settings(settings), [], notices)
    store = RecordStore(git, (settings.get("records") or {}).get("branch", "knowngood/records"))
    if request.fetch:
        try:
            store.fetch()
        except GitError as e:
            report.notices.append(f"{e.message}: using the records this clone has")
    if store.data.tip() is None:
        report.notices.append(
            f"this clone has no records branch {store.branch}: every drill and stored result "
            f"counts as missing (fetch it: git fetch origin {store.branch}:{store.branch})"
        )
    drills = store.list("drill")
    agents = sorted(facts)
    items: dict[str, Item] = {
        "releases": releases_item(git, root, agents),
        "vendors": vendors(facts),
        "provider-suites": provider_suites(git, store, facts),
        "breakers": breakers(facts),
        "backups": backups_item(root, settings, now, report.notices),
        "runbooks": runbooks(root, facts, expected_runbooks(store, facts, drills)),
        "contacts": contacts(facts),
        "drill-schedule": schedule_item(_workflows(git, root)),
    }
    for item_id in WINDOWS:
        items[item_id] = drill_item(item_id, drills, agents, now)
    report.items = [items[item_id] for item_id in ITEMS]
    return report


def _workflows(git: Git, root: Path) -> Path:
    """.github/workflows of the git repository (the knowngood root may be a folder in it)."""
    try:
        return git.toplevel() / ".github" / "workflows"
    except GitError:
        return root / ".github" / "workflows"


def readiness_items(root: Path, settings: object = None) -> list[dict[str, Any]]:
    """The checklist as flat entries for ``knowngood report``: per check its item id and title,
    whether it passed, what was measured (and what to do), and its agent (None for the
    repository, a drill kind or a schedule). ``settings`` is unused: the configuration is read
    from the working tree like ``knowngood readiness`` reads it; records are not fetched."""
    report = run(root, ReadinessRequest(fetch=False))
    return [
        {
            "id": item.id,
            "item": item.title,
            "ok": check.ok,
            "detail": check.detail + (f" -- {check.fix}" if check.fix else ""),
            "agent": check.subject if item.id in AGENT_ITEMS else None,
        }
        for item in report.items
        for check in item.checks
    ]
