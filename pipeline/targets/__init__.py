"""Publish a bundle to the deploy target of knowngood.yaml (``deploy.target``), and ask it
what runs.

Three targets, one contract: ``publish(bundle) -> PublishResult`` and ``running(agent, env) ->
Observed``. A target that runs and says no (a command that exits non-zero, an HTTP status
outside 2xx, a timeout, an unreachable host) gives ``PublishResult(ok=False, message=...)``;
``result.raise_for_failure()`` turns that into a DeployError (exit 3) once the caller has
recorded it. Only a target that cannot be used at all (an unknown type, an unset secret, an
invalid bundle) raises DeployError at once. Nothing else escapes. ``running`` never raises: a
target that cannot tell says so (``Observed.known`` is False) and why.

- ``directory`` (:mod:`pipeline.targets.directory`): bundles in ``<path>/<env>/<agent>/``,
  ``current.json`` flipped atomically; it always knows what runs.
- ``command`` (:mod:`pipeline.targets.command`): the user's command with the bundle's path
  appended; ``current_command`` reports what runs.
- ``http`` (:mod:`pipeline.targets.http`): a signed POST; ``current_url`` reports what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import DeployError
from pipeline.targets.base import Observed, PublishResult, Target
from pipeline.targets.command import COMMAND_TIMEOUT_S, CommandTarget, version_of
from pipeline.targets.directory import DirectoryTarget
from pipeline.targets.http import HTTP_TIMEOUT_S, HttpTarget

DEFAULT_DIRECTORY = ".knowngood/deployments"

__all__ = [
    "CommandTarget",
    "DirectoryTarget",
    "HttpTarget",
    "Observed",
    "PublishResult",
    "Target",
    "make_target",
    "version_of",
]


def make_target(
    config: Mapping[str, Any] | None, root: Path, *, timeout_s: float | None = None
) -> Target:
    """The target described by knowngood.yaml ``deploy.target`` (default: a directory). A
    command or http target waits ``timeout_s`` when given, else the target's own ``timeout_s``,
    else :data:`COMMAND_TIMEOUT_S` / :data:`HTTP_TIMEOUT_S`."""
    config = config or {"type": "directory", "path": DEFAULT_DIRECTORY}
    kind = config.get("type")
    timeout_s = timeout_s or config.get("timeout_s")
    try:
        if kind == "directory":
            path = Path(config.get("path") or DEFAULT_DIRECTORY)
            return DirectoryTarget(path if path.is_absolute() else root / path)
        if kind == "command":
            return CommandTarget(
                list(config["command"]),
                cwd=root,
                timeout_s=timeout_s or COMMAND_TIMEOUT_S,
                current=config.get("current_command"),
            )
        if kind == "http":
            return HttpTarget(
                str(config["url"]),
                str(config["secret_env"]),
                timeout_s=timeout_s or HTTP_TIMEOUT_S,
                current_url=config.get("current_url"),
            )
    except (KeyError, TypeError) as e:
        raise DeployError(
            f"deploy.target of type {kind!r} is missing {e}",
            hint="see knowngood.yaml deploy.target",
        ) from e
    raise DeployError(f"unknown deploy.target type {kind!r}", hint="use directory, command or http")
