"""What every deploy target shares: the results it gives, the bundle checks, a bounded runner
for user commands."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.bundle import verify_bundle
from pipeline.errors import ConfigError, DeployError

MAX_OUTPUT_CHARS = 64_000  # kept from a command's output
SHOWN_OUTPUT_CHARS = 2_000  # of it, shown in the failure message
CONTENT_HASH = re.compile(r"^[0-9a-f]{64}$")

__all__ = [
    "CONTENT_HASH",
    "Observed",
    "PublishResult",
    "Target",
    "checked",
    "pretty",
    "run_command",
    "since",
    "tail",
]


@dataclass(frozen=True, slots=True)
class PublishResult:
    ok: bool
    target: str  # directory | command | http
    location: str  # the bundle file, the command line, or the URL (without credentials)
    message: str
    duration_s: float
    output: str = ""  # what a command printed, or the start of an HTTP response body

    def raise_for_failure(self) -> PublishResult:
        if not self.ok:
            raise DeployError(f"{self.target} target: {self.message}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "target": self.target,
            "location": self.location,
            "message": self.message,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True, slots=True)
class Observed:
    """What a target reports it runs for one agent in one environment."""

    known: bool  # False: the target cannot tell (not set up to, unreachable, a bad answer)
    content_hash: str | None  # the bundle that runs; None: nothing runs (when known)
    how: str  # where the answer came from, or why there is none

    @classmethod
    def unknown(cls, why: str) -> Observed:
        return cls(False, None, why)

    def to_dict(self) -> dict[str, Any]:
        return {"known": self.known, "content_hash": self.content_hash, "how": self.how}


class Target(Protocol):
    type: str

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult: ...

    def running(self, agent: str, env: str) -> Observed: ...


def checked(bundle: Mapping[str, Any]) -> None:
    try:
        verify_bundle(bundle)
    except ConfigError as e:
        raise DeployError(f"refusing to publish: {e.message}") from e


def pretty(bundle: Mapping[str, Any]) -> bytes:
    return (json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def since(start: float) -> float:
    return round(time.perf_counter() - start, 6)


@dataclass(frozen=True, slots=True)
class CommandRun:
    code: int | None  # None: it could not start (``error`` says why) or timed out
    output: str
    error: str = ""
    timed_out: bool = False


def run_command(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout_s: float
) -> CommandRun:
    """Run ``argv`` (no shell) with its output captured; killed with everything it started
    when it outlives ``timeout_s``. Never raises for the command's own failures."""
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=sys.platform != "win32",
        )
    except OSError as e:
        return CommandRun(None, "", f"{e.strerror or e} (in {cwd})")
    try:
        raw, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        raw, _ = proc.communicate()
        output = raw.decode("utf-8", errors="replace")[-MAX_OUTPUT_CHARS:]
        return CommandRun(None, output, f"timed out after {timeout_s:g}s (killed)", timed_out=True)
    return CommandRun(proc.returncode, raw.decode("utf-8", errors="replace")[-MAX_OUTPUT_CHARS:])


def _kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill the command and everything it started (they could hold its output pipe open)."""
    if sys.platform != "win32":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def tail(output: str) -> str:
    text = output.strip()
    if not text:
        return ""
    if len(text) > SHOWN_OUTPUT_CHARS:
        text = "..." + text[-SHOWN_OUTPUT_CHARS:]
    return ":\n" + "\n".join(f"  | {line}" for line in text.splitlines())
