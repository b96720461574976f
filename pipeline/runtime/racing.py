"""What a failover race holds: the attempts running, the one that won, an injected fault."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pipeline.runtime import calls
from pipeline.runtime.breaker import Ticket
from pipeline.runtime.releases import ChainEntry

__all__ = ["Running", "Won", "injected"]

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
