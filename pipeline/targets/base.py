"""What every deploy target shares: the results it gives, the bundle checks, a bounded runner
for user commands."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from pipeline.bundle import verify_bundle
from pipeline.errors import ConfigError, DeployError

MAX_OUTPUT_CHARS = 64_000  # kept from a command's output
SHOWN_OUTPUT_CHARS = 2_000  # of it, shown in the failure message
DRAIN_S = 2.0  # after the command exits, how long its last output may take to arrive
CONTENT_HASH = re.compile(r"^[0-9a-f]{64}$")

__all__ = [
    "CONTENT_HASH",
    "Observed",
    "PublishResult",
    "Target",
    "checked",
    "pretty",
    "reconcile",
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
    error: str = ""  # the target said it failed, yet it runs the bundle (see ``reconcile``)
    unsure: bool = False  # no clear answer (a timeout, a reset, a kill): it may have taken effect

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


def reconcile(target: Target, bundle: Mapping[str, Any], result: PublishResult) -> PublishResult:
    """A failed publish, checked against what the target reports it runs, so the record tells
    the truth: a deploy command that put the bundle in place and then failed a later step
    (exit 1 from a notification, say) took effect, whatever its exit code. Else the message
    says what runs now, or that the target cannot tell."""
    if result.ok:
        return result
    env, wanted = str(bundle["env"]), str(bundle["content_hash"])
    observed = target.running(str(bundle["agent"]), env)
    if observed.known and observed.content_hash == wanted:
        took = f"yet the target reports it runs {wanted[:12]} in {env}: the deploy took effect"
        message = f"{result.message}; {took}"
        return dataclasses.replace(
            result, ok=True, error=result.message, message=message, unsure=False
        )
    if observed.known:
        runs = f"runs {observed.content_hash[:12]}" if observed.content_hash else "runs nothing"
        now = f"it did not take effect: the target reports it {runs} in {env} ({observed.how})"
        return dataclasses.replace(result, message=f"{result.message}; {now}", unsure=False)
    now = f"what runs in {env} now is unknown: {observed.how}"
    return dataclasses.replace(result, message=f"{result.message}; {now}")


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
    when it outlives ``timeout_s``. Never raises for the command's own failures.

    The command's exit decides, not the end of its output: a deploy script may start a service
    in the background that inherits the output pipe, and that service must neither hold the
    deploy until the timeout nor be killed by it. Only the last ``MAX_OUTPUT_CHARS`` of the
    output are kept, however much it prints."""
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
    assert proc.stdout is not None
    kept = _Tail(MAX_OUTPUT_CHARS * 4)  # bytes: a UTF-8 character takes up to 4
    reader = threading.Thread(target=kept.drain, args=(proc.stdout,), daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        proc.wait()
        timed_out = True
    reader.join(DRAIN_S)  # what it printed last; a process it left running may keep the pipe
    kept.stop.set()
    reader.join(DRAIN_S)
    if not reader.is_alive():  # else it still reads from it (no select: Windows)
        proc.stdout.close()
    output = kept.text()[-MAX_OUTPUT_CHARS:]
    if timed_out:
        return CommandRun(None, output, f"timed out after {timeout_s:g}s (killed)", timed_out=True)
    return CommandRun(proc.returncode, output)


class _Tail:
    """The last ``limit`` bytes of a stream, read to its end (or until the reader gives up)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()  # set: stop reading (what was read is kept)

    def drain(self, stream: IO[bytes]) -> None:
        fd = stream.fileno()
        with contextlib.suppress(OSError, ValueError):
            while not self.stop.is_set():
                if sys.platform != "win32" and not select.select([fd], [], [], 0.05)[0]:
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                with self.lock:
                    self.chunks.append(chunk)
                    self.size += len(chunk)
                    while self.size - len(self.chunks[0]) >= self.limit:
                        self.size -= len(self.chunks.popleft())

    def text(self) -> str:
        with self.lock:
            data = b"".join(self.chunks)[-self.limit :]
        return data.decode("utf-8", errors="replace")


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
