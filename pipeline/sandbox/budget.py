"""The limits of the prompt-template sandbox and the work budget of one render."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2.exceptions import SecurityError

from pipeline.templatelimits import MAX_CHARS, MAX_INT_BITS, MAX_SECONDS, MAX_WORK, UNIT_CHARS


class LimitExceeded(SecurityError):
    """A template went past one of the sandbox's limits."""


@dataclass(slots=True)
class Budget:
    """What one render has spent."""

    work: int = 0
    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)

    def charge(self, units: int) -> None:
        self.work += units
        if self.work > MAX_WORK:
            raise LimitExceeded(
                f"the template takes more than {MAX_WORK:,} steps (loop iterations, calls, "
                "filters and operators, and the characters they handle)"
            )
        if time.monotonic() > self.deadline:
            raise LimitExceeded(f"the template takes more than {MAX_SECONDS:g} seconds to render")


_BUDGET: ContextVar[Budget | None] = ContextVar("knowngood_template_budget", default=None)


def begin() -> tuple[Any, Budget]:
    """Start metering a render on this thread or task: pass the token to :func:`end`."""
    budget = Budget()
    return _BUDGET.set(budget), budget


def end(token: Any) -> None:
    _BUDGET.reset(token)


def charge(units: int = 1) -> None:
    budget = _BUDGET.get()
    if budget is not None:  # None while Jinja2 folds constants at compile time: sizes still count
        budget.charge(units)


def units(value: Any) -> int:
    return len(value) // UNIT_CHARS if isinstance(value, str | list | tuple | dict) else 0


def too_long(what: str, size: int, unit: str = "characters") -> LimitExceeded:
    return LimitExceeded(f"{what} would make more than {MAX_CHARS:,} {unit} ({size:,})")


def check_size(what: str, size: int, unit: str = "characters") -> None:
    if size > MAX_CHARS:
        raise too_long(what, size, unit)


def check_result(what: str | Callable[[], str], value: Any) -> None:
    """``what`` may be a function, called only to say what went wrong."""
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        if len(value) > MAX_CHARS:
            unit = "characters" if isinstance(value, str) else "items"
            raise too_long(what if isinstance(what, str) else what(), len(value), unit)
    elif type(value) is int and value.bit_length() > MAX_INT_BITS:
        said = what if isinstance(what, str) else what()
        raise LimitExceeded(f"{said} makes a number too large ({value.bit_length():,} bits)")
