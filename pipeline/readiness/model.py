"""What ``knowngood readiness`` returns: checklist items, each made of measured checks, a score
and the policy that turns them into an exit code."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# id -> title, in the order they are shown. The ids are what `runtime.readiness.required` names
# (schemas/knowngood.schema.json lists the same ids).
ITEMS: dict[str, str] = {
    "releases": "Last three releases tagged, each one's bundle buildable",
    "rollback-drill": "A rollback drill passed in the last 30 days",
    "vendors": "Every chain spans at least two vendors",
    "provider-suites": "Every provider of every chain passed its suites",
    "breakers": "Circuit breakers configured",
    "backups": "Backups newer than the RPO target",
    "restore-drill": "A restore drill passed in the last 90 days",
    "failover-drill": "A failover drill passed this quarter",
    "crash-drill": "A crash drill passed this quarter",
    "runbooks": "Runbooks present and current",
    "contacts": "An owner and an escalation contact per agent",
    "drill-schedule": "Drills scheduled in the workflows",
}
# The items measured per agent (the others: per drill kind, or the repository as a whole).
AGENT_ITEMS = frozenset(
    {
        "releases",
        "rollback-drill",
        "vendors",
        "provider-suites",
        "breakers",
        "failover-drill",
        "runbooks",
        "contacts",
    }
)
DEFAULT_MIN_SCORE = 100.0


@dataclass(frozen=True, slots=True)
class Check:
    """One measurement of an item: for one agent, one drill kind, or the repository."""

    subject: str
    ok: bool
    detail: str  # what was measured
    fix: str | None = None  # what to do, when not ok

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass(slots=True)
class Item:
    id: str
    checks: list[Check] = field(default_factory=list)

    @property
    def title(self) -> str:
        return ITEMS[self.id]

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def share(self) -> float:
        """The share of its checks that pass (1.0 with nothing to check)."""
        if not self.checks:
            return 1.0
        return sum(c.ok for c in self.checks) / len(self.checks)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "passed": self.passed,
            "score": round(100 * self.share, 1),
            "checks": [c.to_json() for c in self.checks],
        }


@dataclass(frozen=True, slots=True)
class Policy:
    min_score: float = DEFAULT_MIN_SCORE
    required: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Policy:
        data = (settings.get("runtime") or {}).get("readiness") or {}
        return cls(
            float(data.get("min_score", DEFAULT_MIN_SCORE)), tuple(data.get("required") or ())
        )


@dataclass(slots=True)
class ReadinessReport:
    at: datetime
    policy: Policy
    items: list[Item]
    notices: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """0 to 100: the mean over the items of the share of their checks that pass."""
        if not self.items:
            return 100.0
        return round(100 * sum(i.share for i in self.items) / len(self.items), 1)

    @property
    def failed_required(self) -> list[str]:
        by_id = {i.id: i for i in self.items}
        return [r for r in self.policy.required if r in by_id and not by_id[r].passed]

    @property
    def ok(self) -> bool:
        return self.score >= self.policy.min_score and not self.failed_required

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "at": self.at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "score": self.score,
            "ok": self.ok,
            "policy": {"min_score": self.policy.min_score, "required": list(self.policy.required)},
            "failed_required": self.failed_required,
            "items": [i.to_json() for i in self.items],
            "notices": self.notices,
        }
