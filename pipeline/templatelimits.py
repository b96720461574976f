"""The limits of the prompt-template sandbox (:mod:`pipeline.sandbox`) and the error a template
that fails reports, apart from both so that code that needs only them does not import Jinja2."""

from __future__ import annotations

from pipeline.errors import ConfigError

MAX_CHARS = 1_000_000  # characters (or items) of any value a template makes, and of the prompt
MAX_WORK = 1_000_000  # units of work per render
MAX_SECONDS = 5.0  # wall time per render, whatever the units say
MAX_RANGE = 100_000  # numbers from one range()
MAX_INT_BITS = 4_096  # bits of a number a template makes (about 1,200 digits)
UNIT_CHARS = 10  # characters or items touched per unit of work
CALL_UNITS = 10  # a call (a macro, a method) costs about as much as ten loop iterations
REMOVED_FILTERS = ("random", "urlize")

ONE_FILE_HINT = "a prompt is one self-contained file: copy the text in, or use a {% macro %}"


class TemplateProblem(ConfigError):
    """A template that fails to render: ``line`` (1-based, None when unknown) and ``reason``."""

    def __init__(self, reason: str, line: int | None, *, hint: str | None = None) -> None:
        where = f"prompt template line {line}" if line else "prompt template"
        super().__init__(f"{where}: {reason}", hint=hint)
        self.reason = reason
        self.line = line
