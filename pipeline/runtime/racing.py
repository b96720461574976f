"""What a failover race holds: the attempts running, the one that won, an injected fault, and
how it ends when every model said the request is too long."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pipeline.runtime import calls
from pipeline.runtime.breaker import Ticket
from pipeline.runtime.model import Attempt, RequestRejected
from pipeline.runtime.releases import ChainEntry

__all__ = ["Running", "Won", "injected", "too_long_for_all"]

T = TypeVar("T")


@dataclass(slots=True)
class Running:
    entry: ChainEntry
    ticket: Ticket
    started: float
    at_ms: float
    slow: bool = False


@dataclass(slots=True)
class Won(Generic[T]):
    value: T
    entry: ChainEntry
    ticket: Ticket
    started: float
    slow: bool


async def injected(reason: str) -> Any:
    """A call to a provider with an injected fault (``knowngood drill fault``): fails at once."""
    raise calls.AttemptFailed("injected", f"injected fault: {reason}")


def too_long_for_all(attempts: list[Attempt]) -> None:
    """RequestRejected (``context_length_exceeded``) when every provider of the chain was tried
    and said the request is too long for it: no holding message or queue can answer that. A
    provider skipped (its breaker, its key) might have taken it: then on_all_down decides."""
    if attempts and all(a.kind == "context_window" for a in attempts):
        last = attempts[-1]
        raise RequestRejected(
            last.error or "request too long for every model of the chain",
            last.status or 400,
            attempts,
            code="context_length_exceeded",
        )
