"""``knowngood serve``'s core: serve until stopped, then say what was left behind.

The server itself is :func:`pipeline.runtime.server.serve`, given the request; this wraps it in the shape every
command shares (a request in, an outcome out). What serve says while it runs goes to the
request's ``say``, a line at a time; the command line picks how each line looks (``--format``).
"""

from __future__ import annotations

import errno
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
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
    idle_timeout_s: float = 75.0  # to receive a whole request head (aiohttp's keepalive_timeout)
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
    """Serve the agents deployed to the request's environment until SIGTERM or Ctrl-C. An
    environment no one knows, or an address serve cannot listen on, stops it at once (exit 2),
    before anything starts."""
    import asyncio

    from pipeline.runtime.server import serve

    _check_env(root, request)
    check_address(request.host, request.port, request.reuse_port)
    asyncio.run(serve(root, request))
    left = 0
    if "dbos" in sys.modules:  # the durable engine ran: do not wait for steps still running
        from pipeline.runtime.engine import running_steps

        left = running_steps(STEP_GRACE_S)
    return ServeOutcome(request.env, left)


def _check_env(root: Path, request: ServeRequest) -> None:
    """knowngood.yaml lists the environment, or something was deployed to it (a drill's scratch
    environment, or the folder --deployments names): else it is a typo, which would serve
    nothing forever."""
    from pipeline.repo import load_settings
    from pipeline.runtime.releases import deployments_dir

    environments = load_settings(root).environments
    if request.env in environments:
        return
    if (deployments_dir(root, deployments_of(root, request)) / request.env).is_dir():
        return
    raise UsageError(
        f"unknown environment {request.env!r} (environments: {', '.join(environments)}): "
        "knowngood.yaml does not list it and nothing was ever deployed to it",
        hint="list it under deploy.environments in knowngood.yaml, or pick one of those",
    )


def deployments_of(root: Path, request: ServeRequest) -> Path | None:
    """Where serve reads bundles instead of the deploy target: ``--deployments``, or with
    ``--receive-deploys`` the folder it keeps what it receives in (None: the deploy target)."""
    if request.deployments is None and request.receive_deploys:
        from pipeline.runtime.receiver import DEFAULT_RECEIVED

        return root / DEFAULT_RECEIVED
    return request.deployments


def check_address(host: str, port: int, reuse_port: bool) -> None:
    """UsageError when serve could not listen on ``host``:``port`` (taken, not this machine's,
    privileged), said before the providers are warmed up; the port is not held."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise listen_error(host, port, e) from None
    unavailable: OSError | None = None
    bound = False
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as sock:  # as asyncio's create_server binds
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port and hasattr(socket, "SO_REUSEPORT"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as e:
                if e.errno != errno.EADDRNOTAVAIL:
                    raise listen_error(host, port, e) from None
                unavailable = e  # that family is off here (asyncio skips it too)
            else:
                bound = True
    if not bound and unavailable is not None:
        raise listen_error(host, port, unavailable)


def listen_error(host: str, port: int, error: OSError | UnicodeError) -> UsageError:
    """What to do about an address serve cannot listen on."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    code = getattr(error, "errno", None)
    if code == errno.EADDRINUSE:
        return UsageError(
            f"cannot listen on {where}: another process listens there",
            hint=f"stop it (`ss -ltnp 'sport = :{port}'` names it), pick another --port "
            "(0: any free one), or give every serve sharing the port --reuse-port",
        )
    if code == errno.EACCES:
        return UsageError(
            f"cannot listen on {where}: a port under 1024 needs privileges",
            hint="pick a --port from 1024 up (a load balancer or proxy can forward 80/443)",
        )
    reason = getattr(error, "strerror", None) or str(error)
    return UsageError(
        f"cannot listen on {where}: {reason}",
        hint="--host takes an address of this machine: 127.0.0.1 (this machine only), "
        "0.0.0.0 or :: (every interface), or one of its own addresses",
    )


def listening_address(runner: Any, host: str) -> str:
    """The URL serve listens on (the port the system chose for --port 0)."""
    for site in runner.sites:
        sockets = getattr(getattr(site, "_server", None), "sockets", None) or []
        for sock in sockets:
            bound = sock.getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            return f"http://{shown}:{bound[1]}"
    return f"http://{host}"
