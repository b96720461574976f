"""``knowngood serve``'s core: serve until stopped, then say what was left behind.

The server itself is :func:`pipeline.runtime.server.serve`, given the request; this wraps it in the shape every
command shares (a request in, an outcome out). What serve says while it runs goes to the
request's ``say``, a line at a time; the command line picks how each line looks (``--format``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.outcome import Say, silent

STEP_GRACE_S = 5.0  # on SIGTERM, workflow steps running get this long to finish


@dataclass(frozen=True, slots=True)
class ServeRequest:
    env: str = "production"
    host: str = "127.0.0.1"
    port: int = 8000
    deployments: Path | None = None
    state_store: str | None = None
    reuse_port: bool = False
    receive_deploys: bool = False
    workflows: Sequence[str] = ()
    backups: bool = True
    access_log: str | None = None
    trusted_proxies: Sequence[str] = ()  # believed about X-Forwarded-For in the access log
    drain_s: float = 0.0
    say: Say = silent


@dataclass(frozen=True, slots=True)
class ServeOutcome:
    """How serve ended: stopped by a signal, with ``steps_left`` workflow steps still running
    (their workflows stay pending in the store; the next worker runs those steps again)."""

    env: str
    steps_left: int = 0

    @property
    def exit_code(self) -> int:
        return 0

    def to_json(self) -> dict[str, Any]:
        return {"env": self.env, "stopped": True, "steps_left": self.steps_left}


def run(root: Path, request: ServeRequest) -> ServeOutcome:
    """Serve the agents deployed to the request's environment until SIGTERM or Ctrl-C."""
    import asyncio

    from pipeline.runtime.server import serve

    asyncio.run(serve(root, request))
    left = 0
    if "dbos" in sys.modules:  # the durable engine ran: do not wait for steps still running
        from pipeline.runtime.engine import running_steps

        left = running_steps(STEP_GRACE_S)
    return ServeOutcome(request.env, left)
