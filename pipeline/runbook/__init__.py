"""``knowngood runbook``: Markdown runbooks generated from the configuration and the drills."""

from __future__ import annotations

from pipeline.runbook.core import (
    RunbookFile,
    RunbookOutcome,
    RunbookRequest,
    expected_runbooks,
    run,
)
from pipeline.runbook.figures import DRILL_KINDS, Drill, Figures, agent_figures, newest_passed
from pipeline.runbook.render import SECTIONS, render

__all__ = [
    "DRILL_KINDS",
    "SECTIONS",
    "Drill",
    "Figures",
    "RunbookFile",
    "RunbookOutcome",
    "RunbookRequest",
    "agent_figures",
    "expected_runbooks",
    "newest_passed",
    "render",
    "run",
]
