"""``knowngood history``: :func:`run` reads an agent's records and releases, newest first.

The reading is :func:`pipeline.status.history`; this is the command around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.outcome import Say, silent

if TYPE_CHECKING:
    from pipeline.recordtypes import HistoryRow


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    agent: str
    limit: int = 50
    fetch: bool = True  # fetch the records branch first
    say: Say = silent


@dataclass(frozen=True, slots=True)
class HistoryOutcome:
    agent: str
    rows: list[HistoryRow] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # e.g. the records could not be fetched
    exit_code: int = 0  # whatever it shows

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "agent": self.agent, "records": list(self.rows)}


def run(root: Path, request: HistoryRequest) -> HistoryOutcome:
    """The history, with knowngood.yaml (where the records live) as committed at HEAD."""
    from pipeline.git import Git
    from pipeline.source import committed_settings
    from pipeline.status import history

    settings, source = committed_settings(root)
    source.tell(request.say)
    notices: list[str] = []
    rows = history(
        Git(root), root, settings, request.agent, request.limit, fetch=request.fetch,
        notices=notices,
    )  # fmt: skip
    return HistoryOutcome(request.agent, rows, notices)
