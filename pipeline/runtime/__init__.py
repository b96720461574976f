"""The runtime: serve the deployed release of each agent and survive provider failures.

- :class:`Agent` (``Agent.load(root, agent, env)``, ``.send(messages)``): the Python API.
- ``knowngood serve``: the same behind an OpenAI-compatible HTTP server (:mod:`.server`).
- ``knowngood run AGENT MESSAGE``: one answer from the command line.

Importing this package imports neither litellm nor aiohttp; the first call does. The names
below are imported on first use, so that reading the state store (``knowngood status``:
:mod:`.store`, sqlite3 only) does not load the failover engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.runtime.api import Agent
    from pipeline.runtime.model import (
        AllProvidersDown,
        Answer,
        Attempt,
        BudgetExhausted,
        RequestRejected,
        UnknownAgent,
    )

__all__ = [
    "Agent",
    "AllProvidersDown",
    "Answer",
    "Attempt",
    "BudgetExhausted",
    "RequestRejected",
    "UnknownAgent",
]


def __getattr__(name: str) -> Any:
    if name == "Agent":
        from pipeline.runtime.api import Agent

        return Agent
    if name in __all__:
        from pipeline.runtime import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
