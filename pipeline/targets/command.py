"""The ``command`` target: the user's argv with the bundle's path appended, KNOWNGOOD_*
variables set; its exit code decides, its output is captured and shown on failure.

With ``current_command`` it can also report what runs: that command (no bundle argument,
``KNOWNGOOD_AGENT`` and ``KNOWNGOOD_ENV`` set) prints the content hash of the bundle that runs,
or nothing when nothing runs, and exits 0. Without it, the target cannot tell."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.errors import DeployError
from pipeline.git import quote_args
from pipeline.targets.base import (
    CONTENT_HASH,
    Observed,
    PublishResult,
    checked,
    pretty,
    run_command,
    since,
    tail,
)

__all__ = ["COMMAND_TIMEOUT_S", "CommandTarget", "version_of"]

COMMAND_TIMEOUT_S = 300.0


def version_of(bundle: Mapping[str, Any]) -> str:
    """``1.2.0`` for release ``support/v1.2.0``; else the release name, else the short commit."""
    release = bundle.get("release")
    if isinstance(release, str):
        rest = release.rsplit("/", 1)[-1]
        return rest[1:] if rest.startswith("v") and rest[1:2].isdigit() else release
    return str(bundle["commit"])[:12]


class CommandTarget:
    type = "command"

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        timeout_s: float = COMMAND_TIMEOUT_S,
        current: Sequence[str] | None = None,
    ) -> None:
        if not argv:
            raise DeployError("deploy.target command is empty", hint="e.g. command: [./deploy.sh]")
        self.argv = list(argv)
        self.cwd = Path(cwd)
        self.timeout_s = timeout_s
        self.current = list(current) if current else None

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult:
        checked(bundle)
        start = time.perf_counter()
        location = quote_args(self.argv)
        with tempfile.TemporaryDirectory(prefix="knowngood-deploy-") as tmp:
            path = (
                Path(tmp)
                / f"{bundle['agent']}-{bundle['env']}-{str(bundle['content_hash'])[:12]}.json"
            )
            path.write_bytes(pretty(bundle))
            env = {
                **os.environ,
                "KNOWNGOOD_AGENT": str(bundle["agent"]),
                "KNOWNGOOD_ENV": str(bundle["env"]),
                "KNOWNGOOD_VERSION": version_of(bundle),
                "KNOWNGOOD_RELEASE": str(bundle.get("release") or ""),
                "KNOWNGOOD_COMMIT": str(bundle["commit"]),
                "KNOWNGOOD_CONTENT_HASH": str(bundle["content_hash"]),
                "KNOWNGOOD_BUNDLE": str(path),
            }
            run = run_command(
                [*self.argv, str(path)], cwd=self.cwd, env=env, timeout_s=self.timeout_s
            )
        if run.code is None and not run.timed_out:
            message = f"cannot run {location}: {run.error}"
            return PublishResult(False, self.type, location, message, since(start))
        if run.timed_out or (run.code is not None and run.code < 0):  # stopped half-way
            ended = run.error if run.timed_out else _ended(run.code)
            message = f"{location} {ended}{tail(run.output)}"
            return PublishResult(
                False, self.type, location, message, since(start), run.output, unsure=True
            )
        if run.code != 0:
            message = f"{location} {_ended(run.code)}{tail(run.output)}"
            return PublishResult(False, self.type, location, message, since(start), run.output)
        return PublishResult(
            True, self.type, location, f"{location} exited 0", since(start), run.output
        )

    def running(self, agent: str, env: str) -> Observed:
        if self.current is None:
            return Observed.unknown(
                "deploy.target has no current_command, so the command target cannot report "
                "what runs"
            )
        location = quote_args(self.current)
        run = run_command(
            self.current,
            cwd=self.cwd,
            env={**os.environ, "KNOWNGOOD_AGENT": agent, "KNOWNGOOD_ENV": env},
            timeout_s=min(self.timeout_s, 60.0),
        )
        if run.code is None:
            return Observed.unknown(f"{location}: {run.error}")
        if run.code != 0:
            return Observed.unknown(f"{location} {_ended(run.code)}{tail(run.output)}")
        lines = [line.strip() for line in run.output.splitlines() if line.strip()]
        if not lines:
            return Observed(True, None, f"{location} printed nothing: nothing runs")
        if len(lines) == 1 and CONTENT_HASH.match(lines[0]):
            return Observed(True, lines[0], location)
        return Observed.unknown(
            f"{location} printed {lines[0][:80]!r}, not one content hash (64 hex digits)"
        )


def _ended(code: int | None) -> str:
    """``exited 5``, or ``was killed by SIGKILL`` (Popen's negative code for a signal): killed
    half-way, a command may have done part of its work."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (it may have done part of its work)"
    return f"exited {code}"
