"""Recovery figures from the records: MTTA and MTTR per agent and per severity, drill success
rate, measured RTO and RPO against the targets in knowngood.yaml ``runtime.targets``.

Definitions (each a plain count over the records, so a person can check it by hand):

- **MTTA** (mean time to acknowledge): over the incidents that reached a step after detection,
  the mean of (first acknowledged, mitigated or resolved step - detected).
- **MTTR** (mean time to recovery): over the incidents whose service came back, the mean of
  (first mitigated or resolved step - detected). Open, unmitigated incidents do not count.
- **Drill success rate**: passed drills / all drills, of every kind, in the last ``DRILL_WINDOW_S``.
- **RTO (measured)**: the longest recovery time among each drill kind's newest passed drill (the
  time the latest rehearsals say a recovery takes), shown against ``targets.rto_s``.
- **RPO (measured)**: the newest restore drill's ``rpo_s`` figure (from its ``restore`` figures
  or its details), shown against ``targets.rpo_s``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pipeline.recordbuild import SEVERITIES, Incident, parse_time
from pipeline.recordtypes import DrillRecord

DEFAULT_RTO_S = 900.0  # the seeds: a P1 recovers within 15 minutes
DEFAULT_RPO_S = 3600.0  # the seeds: at most one hour of state lost
DEFAULT_DRILL_PASS_RATE = 1.0
DRILL_WINDOW_S = 365 * 86400.0


@dataclass(frozen=True, slots=True)
class Targets:
    rto_s: float = DEFAULT_RTO_S
    rpo_s: float = DEFAULT_RPO_S
    drill_pass_rate: float = DEFAULT_DRILL_PASS_RATE

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> Targets:
        """From knowngood.yaml (``raw``: its parsed document); the schema checked the values."""
        targets = (raw.get("runtime") or {}).get("targets") or {}
        return cls(
            rto_s=float(targets.get("rto_s", DEFAULT_RTO_S)),
            rpo_s=float(targets.get("rpo_s", DEFAULT_RPO_S)),
            drill_pass_rate=float(targets.get("drill_pass_rate", DEFAULT_DRILL_PASS_RATE)),
        )

    def to_json(self) -> dict[str, Any]:
        return {"rto_s": self.rto_s, "rpo_s": self.rpo_s, "drill_pass_rate": self.drill_pass_rate}


@dataclass(frozen=True, slots=True)
class Means:
    """MTTA and MTTR over a group of incidents, with how many each mean is over."""

    incidents: int
    open: int
    mtta_s: float | None
    acknowledged: int
    mttr_s: float | None
    recovered: int

    def to_json(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "open": self.open,
            "mtta_s": self.mtta_s,
            "acknowledged": self.acknowledged,
            "mttr_s": self.mttr_s,
            "recovered": self.recovered,
        }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def means(incidents: Iterable[Incident]) -> Means:
    rows = list(incidents)
    acks = [i.acknowledge_s for i in rows if i.acknowledge_s is not None]
    recoveries = [i.recovery_s for i in rows if i.recovery_s is not None]
    return Means(
        incidents=len(rows),
        open=sum(1 for i in rows if i.status == "open"),
        mtta_s=_mean(acks),
        acknowledged=len(acks),
        mttr_s=_mean(recoveries),
        recovered=len(recoveries),
    )


def by_agent_and_severity(incidents: Iterable[Incident]) -> dict[str, dict[str, Means]]:
    """agent -> {"all": means, "P1": means, ...} (a severity only when it has incidents; records
    written before severities count under "all" only)."""
    groups: dict[str, list[Incident]] = {}
    for incident in incidents:
        groups.setdefault(incident.agent, []).append(incident)
    out: dict[str, dict[str, Means]] = {}
    for agent, rows in sorted(groups.items()):
        out[agent] = {"all": means(rows)}
        for severity in SEVERITIES:
            matching = [i for i in rows if i.severity == severity]
            if matching:
                out[agent][severity] = means(matching)
    return out


@dataclass(frozen=True, slots=True)
class Recovery:
    """One agent's recovery figures against the targets."""

    targets: Targets
    rto_s: float | None  # measured: the slowest of each drill kind's newest passed drill
    rto_drill: str | None  # the drill kind that set it
    rpo_s: float | None  # measured: the newest restore drill's figure
    mttr_s: float | None  # over every incident
    mttr_p1_s: float | None  # over P1 incidents (the RTO applies to them)
    drills: int
    drills_passed: int

    @property
    def drill_pass_rate(self) -> float | None:
        return round(self.drills_passed / self.drills, 4) if self.drills else None

    def verdicts(self) -> dict[str, bool | None]:
        """Each figure against its target (None: nothing measured yet)."""
        rate = self.drill_pass_rate
        return {
            "rto": None if self.rto_s is None else self.rto_s <= self.targets.rto_s,
            "rpo": None if self.rpo_s is None else self.rpo_s <= self.targets.rpo_s,
            "mttr_p1": None if self.mttr_p1_s is None else self.mttr_p1_s <= self.targets.rto_s,
            "drill_pass_rate": None if rate is None else rate >= self.targets.drill_pass_rate,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": self.targets.to_json(),
            "rto_s": self.rto_s,
            "rto_drill": self.rto_drill,
            "rpo_s": self.rpo_s,
            "mttr_s": self.mttr_s,
            "mttr_p1_s": self.mttr_p1_s,
            "drills": self.drills,
            "drills_passed": self.drills_passed,
            "drill_pass_rate": self.drill_pass_rate,
            "meets": self.verdicts(),
        }


def drill_figure(drill: Mapping[str, object], name: str) -> float | None:
    """A named figure of a drill record: in its kind's figures (``restore: {rpo_s}``), else in
    its details."""
    for holder in (drill.get(str(drill.get("drill"))), drill.get("details")):
        if isinstance(holder, Mapping):
            value = holder.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
    return None


def recovery(
    drills: Iterable[DrillRecord], incidents: Iterable[Incident], targets: Targets, now: datetime
) -> Recovery:
    """``drills``: one agent's drill records (any order); ``incidents``: its incidents."""
    since = now - timedelta(seconds=DRILL_WINDOW_S)
    recent = sorted(
        (d for d in drills if parse_time(d["at"]) >= since),
        key=lambda d: d["at"],
        reverse=True,
    )
    newest_passed: dict[str, float] = {}
    for d in recent:
        if d["outcome"] == "passed" and (seconds := d["recovery_s"]) is not None:
            newest_passed.setdefault(d["drill"], float(seconds))
    slowest = max(newest_passed.items(), key=lambda kv: kv[1], default=None)
    restores = [d for d in recent if d["drill"] == "restore"]
    rpo = next((f for d in restores if (f := drill_figure(d, "rpo_s")) is not None), None)
    rows = list(incidents)
    return Recovery(
        targets=targets,
        rto_s=slowest[1] if slowest else None,
        rto_drill=slowest[0] if slowest else None,
        rpo_s=rpo,
        mttr_s=means(rows).mttr_s,
        mttr_p1_s=means(i for i in rows if i.severity == "P1").mttr_s,
        drills=len(recent),
        drills_passed=sum(1 for d in recent if d["outcome"] == "passed"),
    )
