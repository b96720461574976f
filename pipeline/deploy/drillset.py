"""What the runtime drills (failover, crash) report: one drill per agent, in one environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pipeline.errors import EXIT_FINDINGS, EXIT_OK

__all__ = ["DrillSet", "agent_json"]


class _Drill(Protocol):
    outcome: str

    def to_json(self) -> dict[str, Any]: ...


D = TypeVar("D", bound=_Drill)


@dataclass(slots=True)
class DrillSet(Generic[D]):
    """The drills of one kind a command ran: exit 1 when one of them did not pass."""

    KIND: ClassVar[str] = ""
    env: str
    drills: list[D] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if any(d.outcome != "passed" for d in self.drills) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "drill",
            "drill": self.KIND,
            "env": self.env,
            "drills": [d.to_json() for d in self.drills],
            "skipped": self.skipped,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def agent_json(drill: Any, figures: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """One agent's drill as JSON: who, where, the verdict, its figures, its record."""
    return {
        "agent": drill.agent,
        "env": drill.env,
        "outcome": drill.outcome,
        "message": drill.message,
        **figures,
        **extra,
        "record": drill.record["id"] if drill.record else None,
    }
