"""How ``knowngood drill`` prints each drill's outcome (text or JSON)."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["render_drill_outcome"]


def render_drill_outcome(outcome: Any, fmt: str) -> None:
    from pipeline.deploy.drills import FaultOutcome
    from pipeline.deploy.rebuild_drill import RebuildDrill
    from pipeline.deploy.restore_drill import RestoreDrill

    if isinstance(outcome, FaultOutcome):
        click.echo(json.dumps(outcome.to_json()) if fmt == "json" else outcome.text())
    elif isinstance(outcome, RestoreDrill):
        from pipeline.report.backup import render_drill

        render_drill(outcome, fmt)
    elif isinstance(outcome, RebuildDrill):
        from pipeline.report.backup import render_rebuild

        render_rebuild(outcome, fmt)
    else:  # rollback, failover, crash
        from pipeline.report.deploy import render

        render(outcome, fmt)
