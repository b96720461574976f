"""``knowngood history``'s reporters: a rich table on a terminal, plain lines otherwise, or
JSON; notices on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from pipeline.report.reporter import Rendered, Reporter, block, json_reporter
from pipeline.report.status import _extra, _when, fancy, history_text
from pipeline.words import printable

if TYPE_CHECKING:
    from pipeline.history import HistoryOutcome


def _notices(outcome: HistoryOutcome) -> Rendered:
    return Rendered(err=block([click.style(f"notice: {n}", fg="yellow") for n in outcome.notices]))


def text(outcome: HistoryOutcome) -> Rendered:
    body = _table(outcome) if fancy() else history_text(outcome.agent, outcome.rows)
    return _notices(outcome) + Rendered(out=body)


def json_(outcome: HistoryOutcome) -> Rendered:
    return _notices(outcome) + json_reporter(ensure_ascii=False)(outcome)


def _table(outcome: HistoryOutcome) -> str:
    """The rich table, as the terminal would show it (its width, its colours)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    with console.capture() as captured:
        if not outcome.rows:
            console.print(f"no history for {outcome.agent}", markup=False)
        else:
            table = Table(
                title=f"[bold]{outcome.agent}[/] history (newest first)", title_justify="left"
            )
            for column in ("when", "kind", "env", "outcome", "what"):
                table.add_column(column, overflow="fold", no_wrap=column == "when")
            for r in outcome.rows:
                cells = (
                    _when(r.get("at")),
                    str(r.get("kind", "")),
                    str(r.get("env", "-")),
                    str(r.get("outcome", "")),
                    f"{r.get('what', '')}{_extra(r)}",
                )  # as text: a record's `[/]` is no rich markup, its control characters spelled
                table.add_row(*(Text(printable(c)) for c in cells))
            console.print(table)
    return captured.get()


REPORTERS: dict[str, Reporter[HistoryOutcome]] = {"text": text, "json": json_}
