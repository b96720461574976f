"""Incidents with their timelines, the MTTR trend, drills against the recovery targets, and the
breakers' transitions: built from the records as they are, whatever version wrote them.

An incident's timeline is taken from every record sharing its id: the step a record names
(``step``, or a ``timeline`` list of ``{step, at, by}``), else what its outcome says (``open`` is
detected, ``resolved`` resolved, any other outcome is a step of that name); ``*_at`` fields of
the four steps count too. Its severity is the newest ``severity`` any of its records carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.records import parse_time, seconds_between
from pipeline.recordtypes import RawRecord

STEPS = ("detected", "acknowledged", "mitigated", "resolved")
_OUTCOME_STEP = {"open": "detected", "resolved": "resolved"}
# The seed's targets (RTO < 15 min for a P1, RPO < 1 h): used until knowngood.yaml sets its own.
DEFAULT_RTO_S = 15 * 60.0
DEFAULT_RPO_S = 60 * 60.0
RPO_KEYS = ("rpo_s", "data_loss_s")
ROLLUPS = ("details",)  # nested objects that are not a drill's figures


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    at: str
    by: str


@dataclass(slots=True)
class IncidentView:
    id: str
    env: str
    status: str  # open | resolved (a resolved step closes it)
    severity: str | None
    release: str | None
    restored_release: str | None
    what: str
    steps: list[Step]
    recovery_s: float | None

    @property
    def detected_at(self) -> str:
        return self.steps[0].at if self.steps else ""


@dataclass(slots=True)
class DrillView:
    record: RawRecord
    kind: str
    recovery_s: float | None
    rpo_s: float | None
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.record.get("outcome") == "passed"


@dataclass(frozen=True, slots=True)
class Targets:
    """The recovery targets drills and incidents are held to: knowngood.yaml
    ``runtime.targets``, or the seed's where it sets none (the page says which)."""

    rto_s: float = DEFAULT_RTO_S
    rpo_s: float = DEFAULT_RPO_S
    source: str = "seed defaults (RTO 15 min, RPO 1 h)"

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> Targets:
        from pipeline.incidents.metrics import Targets as Configured

        if not (raw.get("runtime") or {}).get("targets"):
            return cls()
        configured = Configured.from_settings(raw)
        return cls(configured.rto_s, configured.rpo_s, "knowngood.yaml runtime.targets")


def incidents(records: Iterable[RawRecord]) -> list[IncidentView]:
    """Incidents, newest detection first."""
    groups: dict[str, list[RawRecord]] = {}
    for record in sorted(records, key=lambda r: str(r.get("at", ""))):
        groups.setdefault(str(record.get("incident") or record.get("id")), []).append(record)
    views = [_incident(incident_id, rows) for incident_id, rows in groups.items()]
    views.sort(key=lambda v: v.detected_at, reverse=True)
    return views


def _incident(incident_id: str, rows: list[RawRecord]) -> IncidentView:
    steps: dict[str, Step] = {}
    for row in rows:
        for step in _steps(row):
            if step.name not in steps or step.at < steps[step.name].at:
                steps[step.name] = step
    order = {name: n for n, name in enumerate(STEPS)}
    ordered = sorted(steps.values(), key=lambda s: (order.get(s.name, len(STEPS)), s.at))
    severity = next((str(r["severity"]) for r in reversed(rows) if r.get("severity")), None)
    resolved = steps.get("resolved")
    recovery = None
    if resolved is not None:
        last = next((r for r in reversed(rows) if r.get("outcome") == "resolved"), {})
        recovery = last.get("recovery_s")
        if not isinstance(recovery, int | float) and "detected" in steps:
            recovery = seconds_between(steps["detected"].at, resolved.at)
    first = rows[0]
    return IncidentView(
        id=incident_id,
        env=str(first.get("env", "")),
        status="resolved" if resolved else "open",
        severity=severity,
        release=_text(first.get("release")),
        restored_release=next(
            (_text(r.get("restored_release")) for r in reversed(rows) if r.get("restored_release")),
            None,
        ),
        what=str(first.get("what", "")),
        steps=ordered,
        recovery_s=float(recovery) if isinstance(recovery, int | float) else None,
    )


def _timeline(row: RawRecord) -> list[Mapping[str, Any]]:
    """A record's ``timeline``: a list of ``{step, at, by}``, or a mapping of step to
    ``{at, by}`` or to a time."""
    timeline = row.get("timeline")
    if isinstance(timeline, Mapping):
        return [
            {"step": k, **v} if isinstance(v, Mapping) else {"step": k, "at": v}
            for k, v in timeline.items()
        ]
    return [e for e in timeline if isinstance(e, Mapping)] if isinstance(timeline, list) else []


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _steps(row: RawRecord) -> list[Step]:
    by = str(row.get("actor", ""))
    found = []
    for entry in _timeline(row):
        if entry.get("step") and isinstance(entry.get("at"), str):
            found.append(Step(str(entry["step"]), str(entry["at"]), str(entry.get("by") or by)))
    for name in STEPS:
        if isinstance(at := row.get(f"{name}_at"), str):
            actor = row.get(f"{name}_by")
            found.append(Step(name, at, str(actor) if actor else by))
    outcome = str(row.get("outcome", ""))
    name = str(row.get("step") or _OUTCOME_STEP.get(outcome, outcome))
    if name and row.get("at"):
        found.append(Step(name, str(row["at"]), by))
    return found


def mean_time_to(views: Iterable[IncidentView], step: str) -> tuple[float | None, int]:
    """The mean time from detection to ``step`` over the incidents that reached it, and how
    many did (MTTA: ``acknowledged``; MTTR: ``resolved``)."""
    spans = []
    for view in views:
        at = {s.name: s.at for s in view.steps}
        if "detected" in at and step in at:
            spans.append(seconds_between(at["detected"], at[step]))
    return (sum(spans) / len(spans) if spans else None), len(spans)


def by_severity(views: Iterable[IncidentView]) -> list[tuple[str, int, float | None]]:
    """Per severity (P1 first, unrated last): incidents, and the mean time to recover."""
    groups: dict[str, list[IncidentView]] = {}
    for view in views:
        groups.setdefault(view.severity or "unrated", []).append(view)
    rows = []
    for severity in sorted(groups, key=lambda s: (s == "unrated", s)):
        done = [v.recovery_s for v in groups[severity] if v.recovery_s is not None]
        rows.append((severity, len(groups[severity]), sum(done) / len(done) if done else None))
    return rows


def mttr_trend(views: Iterable[IncidentView]) -> list[tuple[str, float, float]]:
    """Resolved incidents oldest first: (resolved at, recovery s, running mean of recovery s)."""
    done = sorted(
        (v for v in views if v.recovery_s is not None),
        key=lambda v: next(s.at for s in v.steps if s.name == "resolved"),
    )
    trend = []
    total = 0.0
    for n, view in enumerate(done, 1):
        assert view.recovery_s is not None
        total += view.recovery_s
        resolved = next(s.at for s in view.steps if s.name == "resolved")
        trend.append((resolved, view.recovery_s, total / n))
    return trend


def drills(records: Iterable[RawRecord]) -> list[DrillView]:
    """Drills oldest first, with their figures objects (failover, crash, restore, rebuild ...)
    and the data-loss window (RPO) a drill measured, where one did."""
    views = []
    for record in sorted(records, key=lambda r: str(r.get("at", ""))):
        figures = {
            k: dict(v) for k, v in record.items() if isinstance(v, Mapping) and k not in ROLLUPS
        }
        rpo = next(
            (
                float(source[key])
                for source in (record, *figures.values())
                for key in RPO_KEYS
                if isinstance(source.get(key), int | float)
            ),
            None,
        )
        recovery = record.get("recovery_s")
        views.append(
            DrillView(
                record,
                str(record.get("drill", "?")),
                float(recovery) if isinstance(recovery, int | float) else None,
                rpo,
                figures,
            )
        )
    return views


def day(at: str) -> str:
    """``2026-02-01T10:04:00.000000Z`` -> ``2026-02-01 10:04:00`` (UTC)."""
    try:
        return parse_time(at).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return at
