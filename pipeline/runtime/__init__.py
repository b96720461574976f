"""The runtime: serve the deployed release of each agent and survive provider failures.

- :class:`Agent` (``Agent.load(root, agent, env)``, ``.send(messages)``): the Python API.
- ``knowngood serve``: the same behind an OpenAI-compatible HTTP server (:mod:`.server`).
- ``knowngood run AGENT MESSAGE``: one answer from the command line.

Importing this package imports neither litellm nor aiohttp; the first call does.
"""

from __future__ import annotations

from pipeline.runtime.api import Agent
from pipeline.runtime.model import AllProvidersDown, Answer, Attempt, RequestRejected, UnknownAgent

__all__ = ["Agent", "AllProvidersDown", "Answer", "Attempt", "RequestRejected", "UnknownAgent"]
