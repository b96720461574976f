"""``knowngood deploy``, ``check`` and ``rollback``: :func:`run` takes the command's request and
returns its outcome (each knows its exit code and its JSON).

Every one reads knowngood.yaml as committed at HEAD and says which revision it read; the GitHub
client (for notifications and reverts) comes from the environment when a token is there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, overload

from pipeline.outcome import Say, silent

if TYPE_CHECKING:
    from pipeline.deploy.check import CheckOutcome
    from pipeline.deploy.core import DeployBatch, DeployOutcome
    from pipeline.deploy.rollback import RollbackOutcome
    from pipeline.evals.session import Progress


@dataclass(frozen=True, slots=True)
class DeployRequest:
    agent: str | None  # None: every agent released at HEAD (``--released``)
    version: str | None = None  # default: the newest release
    env: str = "production"
    check: bool = False
    auto_revert: bool = False  # implies check
    force: bool = False
    remote: str = "origin"
    progress: Progress | None = None
    say: Say = silent


@dataclass(frozen=True, slots=True)
class _Deployed:
    """What runs of ``agent`` in ``env``: the commands that act on it share these."""

    agent: str
    env: str = "production"
    remote: str = "origin"
    progress: Progress | None = None
    say: Say = silent


@dataclass(frozen=True, slots=True)
class CheckRequest(_Deployed):
    """``check``: the post-deploy suites against what runs in ``env`` now."""


@dataclass(frozen=True, slots=True)
class RollbackRequest(_Deployed):
    """``rollback``: back to an earlier known good release."""

    to: str | None = None  # default: the previous known good release
    check: bool = False
    force: bool = False
    reason: str | None = None


@overload
def run(root: Path, request: DeployRequest) -> DeployOutcome | DeployBatch: ...
@overload
def run(root: Path, request: CheckRequest) -> CheckOutcome: ...
@overload
def run(root: Path, request: RollbackRequest) -> RollbackOutcome: ...
def run(
    root: Path, request: DeployRequest | CheckRequest | RollbackRequest
) -> DeployOutcome | DeployBatch | CheckOutcome | RollbackOutcome:
    if isinstance(request, DeployRequest):
        return _deploy(root, request)
    if isinstance(request, RollbackRequest):
        return _rollback(root, request)
    return _check(root, request)


def _deploy(root: Path, request: DeployRequest) -> DeployOutcome | DeployBatch:
    from pipeline.deploy.core import deploy, deploy_released
    from pipeline.git import Git
    from pipeline.github import optional_client
    from pipeline.source import revisions

    git, github = Git(root), optional_client()
    check = request.check or request.auto_revert
    if request.agent is None:
        batch = deploy_released(
            git, root, env=request.env, check=check, auto_revert=request.auto_revert,
            force=request.force, github=github, remote=request.remote, progress=request.progress,
        )  # fmt: skip
        revisions(root, ("HEAD", batch.commit)).tell(request.say)
        return batch
    outcome = deploy(
        git, root, request.agent, version=request.version, env=request.env, check=check,
        auto_revert=request.auto_revert, force=request.force, github=github,
        remote=request.remote, progress=request.progress,
    )  # fmt: skip
    revisions(root, (outcome.release, outcome.commit)).tell(request.say)
    return outcome


def _check(root: Path, request: CheckRequest) -> CheckOutcome:
    from pipeline.deploy.core import check
    from pipeline.git import Git
    from pipeline.github import optional_client

    git = Git(root)
    _say_read_head(root, request.say)
    return check(
        git, root, request.agent, env=request.env, github=optional_client(),
        remote=request.remote, progress=request.progress,
    )  # fmt: skip


def _rollback(root: Path, request: RollbackRequest) -> RollbackOutcome:
    from pipeline.deploy.rollback import rollback
    from pipeline.git import Git
    from pipeline.github import optional_client

    _say_read_head(root, request.say)
    return rollback(
        Git(root), root, request.agent, env=request.env, to=request.to, check=request.check,
        force=request.force, reason=request.reason, github=optional_client(),
        remote=request.remote, progress=request.progress,
    )  # fmt: skip


def _say_read_head(root: Path, say: Say) -> None:
    """The commands that read knowngood.yaml as committed at HEAD name that commit first."""
    from pipeline.git import Git
    from pipeline.source import revisions

    revisions(root, ("HEAD", Git(root).head())).tell(say)
