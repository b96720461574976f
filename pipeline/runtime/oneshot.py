"""``knowngood run``'s core: one answer from the deployed release, through the failover path.

The request is what the command line read; the outcome is the :class:`~pipeline.runtime.model.
Answer` itself (its exit code is 0: a failure raises, as the Python API does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.runtime.model import Answer


@dataclass(frozen=True, slots=True)
class RunRequest:
    agent: str
    message: str
    env: str = "production"
    variables: Mapping[str, str] = field(default_factory=dict)  # the prompt's --var values
    deployments: Path | None = None  # bundles from here instead of the deploy target
    session: str | None = None  # continue this conversation


def run(root: Path, request: RunRequest) -> Answer:
    """Load the agent deployed to the request's environment and ask it the message.

    UnknownAgent (exit 2) when nothing is deployed; AllProvidersDown or RequestRejected (exit 3)
    when no answer comes."""
    from pipeline.runtime.api import Agent

    with Agent.load(root, request.agent, request.env, deployments=request.deployments) as agent:
        return agent.send(
            request.message, vars=dict(request.variables) or None, session=request.session
        )
