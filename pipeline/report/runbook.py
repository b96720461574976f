"""Render the outcome of ``knowngood runbook``: one line per file, or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.runbook import RunbookOutcome

_SAY = {
    "written": "wrote",
    "unchanged": "current",
    "stale": "stale",
    "missing": "missing",
    "orphan": "orphan (its agent is gone)",
}


def render_runbooks(outcome: RunbookOutcome, fmt: str) -> None:
    for notice in outcome.notices:
        click.echo(click.style(f"notice: {notice}", fg="yellow"), err=True)
    if fmt == "json":
        click.echo(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False))
        return
    for f in outcome.files:
        click.echo(f"{_SAY[f.state]:>8}  {f.path}")
    bad = [f for f in outcome.files if f.state in ("stale", "missing", "orphan")]
    if outcome.check and bad:
        click.echo(
            f"{plural(len(bad), 'runbook')} out of date: run `knowngood runbook` and commit "
            f"{'it' if len(bad) == 1 else 'them'}",
            err=True,
        )
