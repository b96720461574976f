"""Text and JSON for ``knowngood workflows``."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from pipeline.report.reporter import json_text
from pipeline.words import plural

__all__ = ["render"]


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def render(found: Any, fmt: str) -> None:
    """A list of workflows, one with its steps (a WorkflowView), or what a prune deleted."""
    if fmt == "json":
        click.echo(json_text(found))
        return
    if hasattr(found, "kept"):
        _pruned(found)
        return
    if isinstance(found, list):
        if not found:
            click.echo("no workflows")
        for w in found:
            click.echo(
                f"{w.id}  {w.status:<9} {w.name:<24} {_when(w.created_at)}  {w.executor or '-'}"
            )
        return
    w = found
    click.echo(
        f"{w.id}: {w.name} {w.status} (worker {w.executor or '-'}, version {w.app_version or '-'})"
    )
    click.echo(f"  created {_when(w.created_at)}, updated {_when(w.updated_at)}")
    if w.inputs is not None:
        click.echo(f"  inputs: {json.dumps(w.to_json()['inputs'], ensure_ascii=False)[:500]}")
    for s in w.steps:
        took = (
            f"{(s.completed_at - s.started_at) * 1000:.0f} ms"
            if s.completed_at and s.started_at
            else "running"
        )
        outcome = (
            f"error: {s.error}"
            if s.error
            else json.dumps(s.to_json()["output"], ensure_ascii=False)
        )
        click.echo(f"  step {s.step} {s.name} ({took}): {outcome[:200]}")
    if w.error:
        click.echo(f"  error: {w.error}")
    elif w.status == "SUCCESS":
        click.echo(f"  result: {json.dumps(w.to_json()['output'], ensure_ascii=False)[:500]}")


def _pruned(pruned: Any) -> None:
    click.echo(
        f"deleted {plural(pruned.deleted, 'workflow')} that ended before "
        f"{_when(pruned.before)} UTC "
        f"(over {pruned.older_than_days:g} days ago), with the workflows they started"
    )
    if pruned.kept:
        click.echo(f"kept {pruned.kept} of them: a workflow they started is still running")
