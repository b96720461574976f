"""``knowngood drill KIND``: one request in, the drill's outcome out.

Each drill kind has its own module (rollback: :mod:`drill`, failover and the fault switch:
:mod:`failover_drill`, crash: :mod:`crash_drill`, restore: :mod:`restore_drill`, rebuild:
:mod:`rebuild_drill`); this module only picks one and hands it what the request says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import EXIT_OK, UsageError
from pipeline.outcome import Say, silent

__all__ = ["KINDS", "DrillRequest", "FaultOutcome", "run"]

KINDS = ("rollback", "failover", "fault", "crash", "restore", "rebuild")


@dataclass(frozen=True, slots=True)
class DrillRequest:
    kind: str
    agent: str | None = None  # fault: the provider
    env: str | None = None  # default: the scratch environment (rollback), production (others)
    state_store: str | None = None
    seconds: float = 300.0  # fault: how long
    lift: bool = False  # fault: end it now
    keep: bool = False  # rebuild: keep the scratch directory
    remote: str = "origin"
    say: Say = silent  # the revision read, rebuild's stages (stderr)
    progress: Any = None  # rollback: the eval progress of its checks


@dataclass(frozen=True, slots=True)
class FaultOutcome:
    """``drill fault``: the injected fault set, or lifted."""

    provider: str
    lifted: bool | None  # None: set; True: lifted; False: there was none
    until: float | None = None
    reason: str | None = None
    seconds: float | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        if self.lifted is not None:
            return {"provider": self.provider, "lifted": self.lifted}
        return {"provider": self.provider, "until": self.until, "reason": self.reason}

    def text(self) -> str:
        if self.lifted is None:
            return (
                f"{self.provider} fails for every runtime sharing the state store for "
                f"{self.seconds:g}s"
            )
        return f"{self.provider}: fault lifted" if self.lifted else f"{self.provider} had no fault"


def run(root: Path, request: DrillRequest) -> Any:
    """Run the drill ``request.kind`` names and return its outcome (it has ``exit_code`` and
    ``to_json()``; every drill but ``fault`` is recorded on the records branch)."""
    if request.kind not in KINDS:
        raise UsageError(f"unknown drill {request.kind!r}", hint=f"one of: {', '.join(KINDS)}")
    if request.kind == "fault":
        return _fault(root, request)
    from pipeline.git import Git
    from pipeline.source import revisions

    git = Git(root)
    revisions(root, ("HEAD", git.head())).tell(request.say)
    return _DRILLS[request.kind](git, root, request)


def _fault(root: Path, request: DrillRequest) -> FaultOutcome:
    from pipeline.deploy.failover_drill import lift_fault, set_fault

    provider = request.agent
    if not provider:
        raise UsageError("drill fault needs the provider's name (as in knowngood.yaml)")
    if request.lift:
        return FaultOutcome(provider, lift_fault(root, provider, request.state_store))
    fault = set_fault(root, provider, request.seconds, request.state_store)
    return FaultOutcome(provider, None, fault.until, fault.reason, request.seconds)


def _rollback(git: Any, root: Path, r: DrillRequest) -> Any:
    from pipeline.deploy import DRILL_ENV, drill_rollback
    from pipeline.github import optional_client

    return drill_rollback(
        git,
        root,
        r.agent,
        env=r.env or DRILL_ENV,
        github=optional_client(),
        remote=r.remote,
        progress=r.progress,
    )


def _failover(git: Any, root: Path, r: DrillRequest) -> Any:
    from pipeline.deploy.failover_drill import drill_failover

    env = r.env or "production"
    return drill_failover(git, root, r.agent, env=env, state_store=r.state_store, remote=r.remote)


def _crash(git: Any, root: Path, r: DrillRequest) -> Any:
    from pipeline.deploy.crash_drill import drill_crash

    env = r.env or "production"
    return drill_crash(git, root, r.agent, env=env, state_store=r.state_store, remote=r.remote)


def _restore(git: Any, root: Path, r: DrillRequest) -> Any:
    from pipeline.deploy.restore_drill import drill_restore

    env = r.env or "production"
    return drill_restore(git, root, env=env, state_store=r.state_store, remote=r.remote)


def _rebuild(git: Any, root: Path, r: DrillRequest) -> Any:
    from pipeline.deploy.rebuild_drill import drill_rebuild

    stages = None if r.say is silent else (lambda m: r.say(f"drill rebuild: {m}"))
    env = r.env or "production"
    return drill_rebuild(git, root, env=env, remote=r.remote, keep=r.keep, progress=stages)


_DRILLS: dict[str, Callable[[Any, Path, DrillRequest], Any]] = {
    "rollback": _rollback,
    "failover": _failover,
    "crash": _crash,
    "restore": _restore,
    "rebuild": _rebuild,
}
