"""Render the outcome of ``knowngood report``: where the site went and what it holds (text or
JSON on stdout, notices on stderr)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.site import ReportOutcome


def render_report(outcome: ReportOutcome, fmt: str) -> None:
    for notice in outcome.notices:
        click.echo(click.style(f"notice: {notice}", fg="yellow"), err=True)
    if fmt == "json":
        click.echo(json.dumps(outcome.to_json(), indent=2, ensure_ascii=False))
        return
    verb = "replaced the report in" if outcome.replaced else "wrote the report to"
    click.echo(
        f"{verb} {outcome.output}: {plural(len(outcome.pages), 'page')}, "
        f"{plural(len(outcome.agents), 'agent')}, {plural(outcome.releases, 'release')}, "
        f"{plural(outcome.records, 'record')} "
        f"({outcome.duration_s:.2f} s)"
    )
    click.echo(f"open {outcome.output / 'index.html'}")
