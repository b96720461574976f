"""The measured recovery figures a runbook quotes: the newest passed drill of each kind, and
the recovery times of resolved incidents. Read from the records, never invented: a drill that
never passed is "not measured yet"."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.recordtypes import DrillRecord, RawRecord

DRILL_KINDS = ("rollback", "failover", "crash", "restore", "rebuild")
# Drills of the whole runtime (its state store, its machine): one of any agent measures them all.
REPOSITORY_WIDE = frozenset({"crash", "restore", "rebuild"})


@dataclass(frozen=True, slots=True)
class Drill:
    """The newest passed drill of one kind, as a runbook or a readiness item quotes it."""

    kind: str
    agent: str
    env: str
    at: str
    recovery_s: float | None
    figures: Mapping[str, Any]  # the drill's own figures object (failover: {...}), or {}
    steps: tuple[tuple[str, float | None], ...]

    @property
    def date(self) -> str:
        return self.at[:10]

    @classmethod
    def from_record(cls, record: DrillRecord) -> Drill:
        kind = record["drill"]
        raw: RawRecord = record  # a drill's own figures are under its kind's name
        own = raw.get(kind)
        steps = tuple(
            (str(s.get("name")), s.get("duration_s"))
            for s in record.get("steps") or ()
            if isinstance(s, Mapping)
        )
        return cls(
            kind,
            record["agent"],
            record["env"],
            record["at"],
            record["recovery_s"],
            dict(own) if isinstance(own, Mapping) else {},
            steps,
        )


@dataclass(frozen=True, slots=True)
class Figures:
    """What was measured for one agent."""

    drills: Mapping[str, Drill] = field(default_factory=dict)  # kind -> newest passed
    incidents_resolved: int = 0
    mean_recovery_s: float | None = None

    def drill(self, kind: str) -> Drill | None:
        return self.drills.get(kind)


def newest_passed(drills: Iterable[DrillRecord]) -> dict[tuple[str, str], Drill]:
    """(agent, kind) -> the newest passed drill, from drill records in any order."""
    best: dict[tuple[str, str], DrillRecord] = {}
    for record in drills:
        if record["outcome"] != "passed" or not isinstance(record["drill"], str):
            continue
        key = (record["agent"], record["drill"])
        held = best.get(key)
        if held is None or (record["at"], record["id"]) > (held["at"], held["id"]):
            best[key] = record
    return {key: Drill.from_record(record) for key, record in best.items()}


def newest_of_each_kind(passed: Mapping[tuple[str, str], Drill]) -> dict[str, Drill]:
    """kind -> the newest passed drill of any agent (for the repository-wide kinds)."""
    newest: dict[str, Drill] = {}
    for (_, kind), drill in passed.items():
        held = newest.get(kind)
        if held is None or (drill.at, drill.agent) > (held.at, held.agent):
            newest[kind] = drill
    return newest


def agent_figures(
    agent: str,
    passed: Mapping[tuple[str, str], Drill],
    incidents: Iterable[Mapping[str, Any]] = (),
    repository: Mapping[str, Drill] | None = None,
) -> Figures:
    """The figures of ``agent``: its own drills, and for the repository-wide kinds the newest
    one of any agent when it has none (``repository``: ``newest_of_each_kind(passed)``, when
    the caller has it); with its resolved incidents' mean recovery time."""
    if repository is None:
        repository = newest_of_each_kind(passed)
    drills: dict[str, Drill] = {}
    for kind in DRILL_KINDS:
        own = passed.get((agent, kind))
        if own is None and kind in REPOSITORY_WIDE:
            own = repository.get(kind)
        if own is not None:
            drills[kind] = own
    recoveries = [
        float(i["recovery_s"])
        for i in incidents
        if i.get("status") == "resolved" and i.get("recovery_s") is not None
    ]
    mean = round(sum(recoveries) / len(recoveries), 1) if recoveries else None
    return Figures(drills, len(recoveries), mean)
