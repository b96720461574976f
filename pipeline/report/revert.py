"""``knowngood revert``'s reporters: what happened on stdout, a refusal and notes on stderr."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.report.reporter import Rendered, Reporter, block, json_reporter

if TYPE_CHECKING:
    from pipeline.revert.command import RevertCommandOutcome


def text(outcome: RevertCommandOutcome) -> Rendered:
    if outcome.comment is not None:
        if outcome.comment.reply:
            return Rendered(out=outcome.comment.reply + "\n")
        return Rendered(err="knowngood: not a /revert command on a pull request; nothing to do\n")
    revert = outcome.revert
    assert revert is not None
    notes = block([f"knowngood: warning: {note}" for note in revert.notes])
    if revert.status in ("reverted", "pull_request"):
        return Rendered(out=revert.message + "\n", err=notes)
    label = "not reverted" if revert.status == "skipped" else "revert failed"
    return Rendered(err=f"knowngood: {label}: {revert.message}\n" + notes)


def json_(outcome: RevertCommandOutcome) -> Rendered:
    notes = [] if outcome.revert is None else outcome.revert.notes
    return json_reporter()(outcome) + Rendered(
        err=block([f"knowngood: warning: {note}" for note in notes])
    )


REPORTERS: dict[str, Reporter[RevertCommandOutcome]] = {"text": text, "json": json_}
