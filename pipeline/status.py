"""``knowngood status`` and ``knowngood history``: what git records say, readable from any clone.

Releases come from the tags; deployments, checks, reverts, incidents and drills from the
records branch (``pipeline.records``), fetched first (when that fails, e.g. offline, the local
copy is used and a notice says so). Every query on the records goes through RecordStore, whose
methods define "current", "last known good" and incidents; ``_Snapshot`` only makes it read
each kind of record once, so a status of many agents costs a fixed number of git processes.

What an environment runs comes from :mod:`pipeline.running`: when a deploy was interrupted (an
intent no deployment settles), the deploy target is asked what it runs, and the answer is
shown. ``status`` itself never writes a record; the next deploy, rollback or check records the
settlement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.changes.revision import at_root
from pipeline.deploy.lock import live_holder, lock_s
from pipeline.errors import GitError, KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.incidents.metrics import Means, Recovery, Targets, by_agent_and_severity, recovery
from pipeline.outcome import Say, silent
from pipeline.records import KIND_DIRS, Incident, Record, RecordStore
from pipeline.recordtypes import (
    CheckRecord,
    Deployed,
    DeploymentRecord,
    DrillRecord,
    HistoryRow,
)
from pipeline.release.tags import TagRef, release_tags
from pipeline.repo import Settings, discover
from pipeline.running import Running, TargetObserver, resolve
from pipeline.runtime.statusview import runtime_backups, runtime_state
from pipeline.source import committed_settings
from pipeline.targets import make_target

RECENT_RELEASES = 3
RECENT_INCIDENTS = 3
TARGET_TIMEOUT_S = 10.0  # asking the deploy target what runs, for an interrupted deploy
Records = list[Record]


@dataclass(slots=True)
class EnvStatus:
    env: str
    current: Deployed | None  # the newest successful deployment: what runs there
    current_check: CheckRecord | None  # the newest check of that deployment
    last_check: CheckRecord | None  # the newest check in the environment (of any deployment)
    last_known_good: DeploymentRecord | None  # the newest deployment whose check passed
    last_drill: DrillRecord | None
    running: Running  # how ``current`` was decided (settled, or an interrupted deploy)

    @property
    def health(self) -> str:
        """unknown | not deployed | unchecked | good | failing | check error."""
        if self.running.state == "unknown":
            return "unknown"
        if self.current is None:
            return "not deployed"
        if self.current_check is None:
            return "unchecked"
        return {"passed": "good", "failed": "failing"}.get(
            self.current_check["outcome"], "check error"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "health": self.health,
            "current": _deployment(self.current),
            "current_check": _check(self.current_check),
            "last_check": _check(self.last_check),
            "last_known_good": _deployment(self.last_known_good),
            "last_drill": _drill(self.last_drill),
            "running": self.running.to_json(),
        }


@dataclass(slots=True)
class AgentStatus:
    agent: str
    releases: list[TagRef]  # newest first, at most RECENT_RELEASES
    release_count: int
    environments: list[EnvStatus]
    incidents: list[Incident]  # every open one, then the most recent resolved ones
    incident_count: int
    mean_recovery_s: float | None  # MTTR: over every incident mitigated or resolved
    # RTO, RPO, MTTR and drill success rate against knowngood.yaml runtime.targets
    recovery: Recovery | None = None
    # MTTA and MTTR over every incident ("all") and per severity
    incident_means: dict[str, Means] = field(default_factory=dict)

    @property
    def open_incidents(self) -> list[Incident]:
        return [i for i in self.incidents if i.status == "open"]

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "releases": [t.to_json() for t in self.releases],
            "release_count": self.release_count,
            "environments": [e.to_json() for e in self.environments],
            "incidents": [
                {k: v for k, v in i.to_dict().items() if k != "records"} for i in self.incidents
            ],
            "incident_count": self.incident_count,
            "mean_recovery_s": self.mean_recovery_s,
            "recovery": self.recovery.to_json() if self.recovery else None,
            "incident_means": {k: m.to_json() for k, m in self.incident_means.items()},
        }


@dataclass(slots=True)
class StatusReport:
    agents: list[AgentStatus]
    records_branch: str
    fetched: bool
    notices: list[str] = field(default_factory=list)
    # The runtime's circuit breakers, from the state store (None: no store, nothing ran yet):
    # per provider its state, since when, its newest transitions and any injected fault.
    breakers: list[dict[str, Any]] | None = None
    # The state store's backups (None: knowngood.yaml sets no runtime.backup): the newest
    # restorable point and its age, the recovery point objective achieved now.
    backups: dict[str, Any] | None = None
    # What each agent spent today (UTC) per environment, beside the daily_budget_usd of the
    # release deployed there (None: nothing spent and no budget).
    spend: list[dict[str, Any]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "records_branch": self.records_branch,
            "fetched": self.fetched,
            "agents": [a.to_json() for a in self.agents],
            "breakers": self.breakers,
            "backups": self.backups,
            "spend": self.spend,
            "notices": self.notices,
        }

    @property
    def exit_code(self) -> int:
        return 0  # whatever it shows


@dataclass(frozen=True, slots=True)
class StatusRequest:
    agent: str | None = None  # only this agent (None: every agent)
    fetch: bool = True  # fetch the records branch first
    say: Say = silent


def run(root: Path, request: StatusRequest) -> StatusReport:
    """``knowngood status``, with knowngood.yaml (where the records live) as committed at HEAD."""
    settings, source = committed_settings(root)
    source.tell(request.say)
    return status(Git(root), root, settings, request.agent, fetch=request.fetch)


def status(
    git: Git, root: Path, settings: Settings, agent: str | None = None, *, fetch: bool = True
) -> StatusReport:
    """Per agent (or only ``agent``): releases, each environment's deployment and checks,
    last known good, last drill, incidents with their recovery times."""
    git = at_root(git, root)
    store = _Snapshot(git, settings.records_branch)
    report = StatusReport([], settings.records_branch, False)
    report.fetched = _fetch(store, fetch, report.notices)
    tags: dict[str, list[TagRef]] = {}
    for tag in release_tags(git):
        tags.setdefault(tag.agent, []).append(tag)
    names = set(discover(root).agents) | set(tags) | store.agents()
    if agent is not None:
        if agent not in names:
            raise UsageError(
                f"no agent named {agent!r}: no folder, release tag or record has it",
                hint=f"agents: {', '.join(sorted(names)) or 'none'}",
            )
        names = {agent}
    observer = TargetObserver(settings, root, TARGET_TIMEOUT_S)
    limit = _lock_s(store, settings, root)
    for name in sorted(names):
        report.agents.append(
            _agent_status(store, name, tags.get(name, []), settings, observer, limit)
        )
    report.breakers, report.spend = runtime_state(root, settings, agent, report.notices)
    report.backups = runtime_backups(root, settings, report.notices)
    if not report.fetched and not store.data.tip():
        report.notices.append(
            f"no records yet (branch {settings.records_branch}): nothing was deployed from any clone"
        )
    return report


def history(
    git: Git,
    root: Path,
    settings: Settings,
    agent: str,
    limit: int = 50,
    *,
    fetch: bool = True,
    notices: list[str] | None = None,
) -> list[HistoryRow]:
    """``agent``'s records (deployment, check, revert, incident, drill) and releases (kind
    "release"), newest first, at most ``limit``. Notices (e.g. a failed fetch) go to ``notices``."""
    git = at_root(git, root)
    if limit < 1:
        raise UsageError("--limit must be at least 1")
    store = RecordStore(git, settings.records_branch)
    _fetch(store, fetch, notices if notices is not None else [])
    rows: list[HistoryRow] = []
    for kind in KIND_DIRS:
        rows += store.list(kind, agent, limit=limit)
    for tag in release_tags(git, agent):
        rows.append(
            {
                "kind": "release",
                "agent": agent,
                "at": _utc(tag.date),
                "actor": tag.tagger,
                "what": f"release {tag.name}",
                "outcome": "tagged",
                "release": tag.name,
                "commit": tag.commit,
            }
        )
    if not rows and agent not in discover(root).agents:
        known = set(discover(root).agents) | {t.agent for t in release_tags(git)}
        raise UsageError(
            f"no agent named {agent!r}: no folder, release tag or record has it",
            hint=f"agents: {', '.join(sorted(known)) or 'none'}",
        )
    rows.sort(key=lambda r: (r["at"], str(r.get("id", ""))), reverse=True)
    return rows[:limit]


# -- internals -------------------------------------------------------------------------------


class _Snapshot(RecordStore):
    """A RecordStore that reads each kind of record once and answers every query from that."""

    def __init__(self, git: Git, branch: str) -> None:
        super().__init__(git, branch)
        self._all: dict[str, Records] = {}

    def read(
        self,
        kind: str,
        agent: str | None = None,
        env: str | None = None,
        *,
        limit: int | None = None,
    ) -> Records:
        if kind not in self._all:
            self._all[kind] = super().read(kind)
        rows = [
            r
            for r in self._all[kind]
            if (agent is None or r["agent"] == agent) and (env is None or r["env"] == env)
        ]
        return rows[:limit] if limit is not None else rows

    def agents(self) -> set[str]:
        return {r["agent"] for kind in KIND_DIRS for r in self.read(kind)}

    def envs(self, agent: str) -> set[str]:
        return {r["env"] for kind in KIND_DIRS for r in self.read(kind, agent)}


def _fetch(store: RecordStore, fetch: bool, notices: list[str]) -> bool:
    if not fetch:
        return False
    try:
        return store.fetch()
    except GitError as e:
        notices.append(f"{e.message}: showing the records this clone has")
        return False


def _lock_s(store: RecordStore, settings: Settings, root: Path) -> float | None:
    """How long an intent holds the lock (None: nothing is locked without a remote)."""
    if not store.data.has_remote():
        return None
    try:
        return lock_s(make_target(settings.deploy.get("target"), root))
    except KnowngoodError:  # a target that cannot be built: every deploy fails before locking
        return None


def _agent_status(
    store: _Snapshot,
    agent: str,
    tags: list[TagRef],
    settings: Settings,
    observer: TargetObserver,
    lock_limit: float | None,
) -> AgentStatus:
    envs = list(settings.environments) + sorted(store.envs(agent) - set(settings.environments))
    environments = []
    for env in envs:
        running = resolve(
            agent,
            env,
            store.list("deployment", agent, env),
            store.list("intent", agent, env),
            partial(observer, agent, env),
        )
        if lock_limit is not None and running.unsettled:  # a change still in progress?
            running = replace(running, in_progress=live_holder(running.unsettled, lock_limit))
        current = running.deployment
        checks = store.list("check", agent, env)
        current_check = (
            next((c for c in checks if c["deployment"] == current["id"]), None) if current else None
        )
        drills = store.list("drill", agent, env, limit=1)
        environments.append(
            EnvStatus(
                env,
                current,
                current_check,
                checks[0] if checks else None,
                store.last_known_good(agent, env),
                drills[0] if drills else None,
                running,
            )
        )
    incidents = store.incidents(agent)
    resolved = [i for i in incidents if i.status == "resolved"]
    means = by_agent_and_severity(incidents).get(agent, {})
    shown = [i for i in incidents if i.status == "open"] + resolved[:RECENT_INCIDENTS]
    figures = recovery(
        store.list("drill", agent),
        incidents,
        Targets.from_settings(settings.raw),
        datetime.now(UTC),
    )
    return AgentStatus(
        agent,
        list(reversed(tags))[:RECENT_RELEASES],
        len(tags),
        environments,
        shown,
        len(incidents),
        means["all"].mttr_s if "all" in means else None,
        figures,
        means,
    )


def _pick(record: Mapping[str, object] | None, keys: Iterable[str]) -> dict[str, Any] | None:
    if record is None:
        return None
    return {k: record.get(k) for k in keys}


def _deployment(record: Deployed | None) -> dict[str, Any] | None:
    return _pick(record, ("id", "release", "commit", "at", "actor", "content_hash", "rollback"))


def _check(record: CheckRecord | None) -> dict[str, Any] | None:
    return _pick(record, ("id", "deployment", "release", "outcome", "at", "summary"))


def _drill(record: DrillRecord | None) -> dict[str, Any] | None:
    return _pick(
        record, ("id", "drill", "outcome", "at", "recovery_s", "to_release", "failover", "crash")
    )


def _utc(date: str) -> str:
    """A git ISO date as the records' ``at`` format (UTC, Z), so both sort together."""
    try:
        when = datetime.fromisoformat(date)
    except ValueError:
        return date
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
