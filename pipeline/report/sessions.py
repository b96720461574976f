"""Text and JSON for ``knowngood sessions``."""

from __future__ import annotations

import time
from typing import Any

import click

from pipeline.report.reporter import json_text
from pipeline.words import plural

__all__ = ["render"]


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def render(found: Any, fmt: str) -> None:
    """Sessions listed, one with its turns, a deleted one, or what a prune deleted."""
    if fmt == "json":
        click.echo(json_text(found))
        return
    if isinstance(found, list):
        if not found:
            click.echo("no sessions")
        for row in found:
            click.echo(
                f"{row.session}  {row.agent} in {row.env}, {plural(row.turns, 'turn')}, "
                f"last used {_when(row.updated)}"
            )
    elif hasattr(found, "older_than_days"):
        click.echo(
            f"deleted {plural(found.deleted, 'session')} last used before "
            f"{_when(found.before)} UTC "
            f"(over {found.older_than_days:g} days ago), with their turns"
        )
    elif hasattr(found, "turns") and isinstance(found.turns, int):
        click.echo(f"deleted session {found.session} and its {plural(found.turns, 'turn')}")
    else:
        first = found.turns[0]
        click.echo(
            f"{found.session}: {first.agent} in {first.env}, {plural(len(found.turns), 'turn')}"
        )
        for t in found.turns:
            said = " | ".join(str(m.get("content") or "")[:120] for m in t.messages)
            answer = str(t.answer.get("content") or "")[:200]
            who = t.provider or f"fallback {t.fallback}"
            click.echo(f"  turn {t.n} {_when(t.at)} {t.version or '-'} via {who}")
            click.echo(f"    client: {said}")
            click.echo(f"    answer: {answer}")
