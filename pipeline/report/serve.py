"""Render ``knowngood serve``'s lines: what it says while it runs, and how it stopped.

Text: ``knowngood serve: MESSAGE`` on stderr. JSON: one object per line on stderr
(``{"at", "pid", "message"}``), for a log collector; the access log (``--access-log``) is
its own stream.
"""

from __future__ import annotations

import json
import os

from pipeline.errors import KnowngoodError
from pipeline.recordbuild import utc_now
from pipeline.report.reporter import Rendered, Reporter
from pipeline.runtime.serving import ServeOutcome
from pipeline.words import plural


def text_line(message: str) -> str:
    return f"knowngood serve: {message}"


def json_line(message: str, **fields: object) -> str:
    line = {"at": utc_now(), "pid": os.getpid(), "message": message, **fields}
    return json.dumps(line, ensure_ascii=False)


LINES = {"text": text_line, "json": json_line}  # --format -> how each line serve says looks


def _stopped(outcome: ServeOutcome) -> str:
    if outcome.steps_left:
        return (
            f"stopped; {plural(outcome.steps_left, 'workflow step')} still running "
            f"{'is' if outcome.steps_left == 1 else 'are'} left to the next worker"
        )
    return "stopped"


def text(outcome: ServeOutcome) -> Rendered:
    return Rendered(err=text_line(_stopped(outcome)) + "\n")


def json_(outcome: ServeOutcome) -> Rendered:
    return Rendered(err=json_line(_stopped(outcome), **outcome.to_json()) + "\n")


def refused(error: KnowngoodError) -> Rendered:
    """``--format json``: why serve did not start or stopped early, as one JSON line too
    (``error``, ``hint``, ``exit_code`` beside ``message``)."""
    fields = {"error": error.message, "hint": error.hint, "exit_code": error.exit_code}
    return Rendered(err=json_line(f"error: {error.message}", **fields) + "\n")


REPORTERS: dict[str, Reporter[ServeOutcome]] = {"text": text, "json": json_}
