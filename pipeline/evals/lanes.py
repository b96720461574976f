"""Spread a run's provider calls over processes, one per CPU core.

litellm spends 2-3 ms of CPU on every call (building the request, parsing and pricing the
answer), so at low latency one process keeps one core busy while the others idle. A *lane* is a
process that performs calls: the run's own process is one, and :func:`fork_lanes` adds
``processes - 1`` more, forked after litellm is imported (they share the import) and before the
run's event loop starts. By default (:func:`auto_processes`) a run makes its calls from one
process per core it may use (CPU affinity), at most ``-j``, and at least 200 calls each: a
lane costs its fork and ~0.1 s of CPU, and on a machine whose cores are busy with other work
it only takes its share of them.

The run's process stays the only orchestrator: per-provider concurrency, retries, the budget
(each request is reserved before it goes to any lane and settled after), the cache, the
assertions and the results live in it. A lane only performs
:func:`pipeline.evals.providers.complete` and sends back the Completion, or the
ProviderCallError with the HTTP requests it sent, so counts, costs and errors are the same
whichever lane made the call. A provider's request slots (``-j``) are shared out between the
processes (:func:`shares`); each process sends at most its share of requests at once and
prepares its next calls meanwhile, and the calls are given out in proportion to the shares.

A lane that dies (killed, crashed) fails its calls in flight as connection failures whose
answers were lost (their worst case stays counted against the budget, each counts one request,
and the runner retries them on the other lanes within the retries) and gets no more calls.
Lanes are forked only on Linux and only while no other thread runs (fork copies the calling
thread alone; a lock another thread held would stay held in the child). They stop with the
run: the run closes their sockets, waits for them, and kills one still there after 5 s. A lane
ignores Ctrl-C: the run stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Final

from pipeline.evals.laneprocess import RequestSlots, frame, lane_main, read_frame

__all__ = ["CALLS_PER_PROCESS", "Lanes", "RequestSlots", "auto_processes", "fork_lanes", "shares"]

# A lane costs a fork and its first call's lazy set-up (~0.1-0.2 s of CPU): worth it from a few
# hundred calls at low latency.
CALLS_PER_PROCESS: Final = 200
# The run's own process also orchestrates every call (the cache, assertions, the budget, the
# lanes' messages: about half of litellm's CPU per call), so it gets a quarter of a provider's
# request slots, the lanes the rest: with -j 4 and one lane, 1 and 3 (-j 2: 0 and 2).
LOCAL_SHARE: Final = 3
# Calls in progress per request slot: while -j requests are in flight, as many more calls are
# prepared (litellm builds their requests) and answers parsed, so no slot waits for the CPU.
PREPARED: Final = 2
STOP_GRACE_S: Final = 5.0
LANE_GRACE_S: Final = 30.0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def auto_processes(calls: int, concurrency: int) -> int:
    """How many processes a run of ``calls`` calls at ``concurrency`` should make them from."""
    return max(1, min(usable_cores(), concurrency, calls // CALLS_PER_PROCESS))


def can_fork() -> bool:
    return sys.platform == "linux" and hasattr(os, "fork") and threading.active_count() == 1


# ------------------------------------------------------------------------------------------
# The run's side
# ------------------------------------------------------------------------------------------


class _Remote:
    """One forked lane, seen from the run: a socket to it and the calls in flight there."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self.dead: str | None = None  # why it takes no more calls
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, self._writer = await asyncio.open_connection(sock=self.sock)
        self._reading = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                reply = await read_frame(reader)
                if reply is None:
                    break
                future = self._pending.pop(int(reply["id"]), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        except (OSError, ValueError) as e:
            self.dead = f"its socket failed ({type(e).__name__})"
        finally:
            self.dead = self.dead or "it stopped"
            for future in self._pending.values():
                if not future.done():
                    future.set_result({"lost": self.dead})
            self._pending.clear()

    async def call(self, request: dict[str, Any], deadline_s: float) -> dict[str, Any]:
        """The lane's reply; ``{"lost": why}`` when the lane stopped or never answered."""
        assert self._writer is not None
        if self.dead is not None:
            return {"lost": self.dead}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[int(request["id"])] = future
        self._writer.write(frame(request))
        try:
            async with asyncio.timeout(deadline_s):
                return await future
        except TimeoutError:
            self._pending.pop(int(request["id"]), None)
            return {"lost": f"no answer in {deadline_s:g}s"}

    def send(self, message: dict[str, Any]) -> None:
        """A message that wants no answer."""
        if self.dead is None and self._writer is not None:
            self._writer.write(frame(message))

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._reading is not None:
            await self._reading


def shares(slots: int, remotes: int) -> list[int]:
    """A provider's request slots for this process, then for each lane (they add up to slots)."""
    if remotes == 0:
        return [slots]
    local = slots // (LOCAL_SHARE + 1)
    rest = slots - local
    return [local] + [rest // remotes + (1 if i < rest % remotes else 0) for i in range(remotes)]


class _Provider:
    """One provider's request slots shared out between the processes, and their calls."""

    def __init__(self, slots: int, remotes: int) -> None:
        self.shares = shares(slots, remotes)
        self.busy = [0] * len(self.shares)  # calls in progress, per process
        self.sent = [0] * len(self.shares)  # calls given, per process
        self.local = RequestSlots(self.shares[0])


class Lanes:
    """The run's process plus forked lanes; :meth:`complete` is ``providers.complete``, with
    the provider's request slots (``-j``) shared out between the processes."""

    def __init__(self, providers: Any, remotes: Sequence[_Remote], caching: bool = False) -> None:
        self.providers = providers
        self.remotes = list(remotes)
        self.caching = caching  # the lanes cache the answers they get (see :attr:`stored`)
        self.stored: set[str] = set()  # cache keys whose answer a lane wrote
        self.served = [0] * (1 + len(self.remotes))  # calls answered: this process, then each lane
        self._providers: dict[str, _Provider] = {}
        self._ids = itertools.count()

    @property
    def processes(self) -> int:
        return 1 + len(self.remotes)

    async def start(self) -> None:
        for remote in self.remotes:
            await remote.start()

    def _process_for(self, provider: _Provider) -> int:
        """Where the next call goes: calls are given out in proportion to the slots (the
        fewest given per slot first, a lane before this process on a tie), to processes with
        fewer than PREPARED calls in progress per slot. A dead lane's slots come to this one."""
        for i, remote in enumerate(self.remotes, start=1):
            if remote.dead is not None and provider.shares[i]:
                for _ in range(provider.shares[i]):
                    provider.local.release()
                provider.shares[0] += provider.shares[i]
                provider.shares[i] = 0
        open_ = [i for i, share in enumerate(provider.shares) if share]
        room = [i for i in open_ if provider.busy[i] < PREPARED * provider.shares[i]]
        return min(room or open_, key=lambda i: (provider.sent[i] / provider.shares[i], i == 0))

    async def complete(
        self,
        spec: Any,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: Mapping[str, Any],
        timeout_s: float,
        slots: int,
        store: str | None = None,
    ) -> Any:
        """``store``: the answer's cache key; a lane that gets the answer caches it and adds the
        key to :attr:`stored` (writing files from the run's loop, or a thread beside it, slows
        every call down)."""
        provider = self._providers.get(spec.name)
        if provider is None:
            provider = self._providers[spec.name] = _Provider(slots, len(self.remotes))
        where = self._process_for(provider)
        provider.busy[where] += 1
        provider.sent[where] += 1
        self.served[where] += 1
        try:
            if where == 0:
                return await self.providers.complete(
                    spec, messages, tools, params, timeout_s, provider.local
                )
            remote = self.remotes[where - 1]
            request = {
                "id": next(self._ids),
                "spec": asdict(spec),
                "messages": messages,
                "tools": tools,
                "params": dict(params),
                "timeout_s": timeout_s,
                "slots": provider.shares[where],
                "store": store if self.caching else None,
            }
            # the lane's own deadline is timeout_s plus a grace: this one is a last resort
            reply = await remote.call(request, timeout_s + LANE_GRACE_S)
            done = _decode(self.providers, spec, remote, reply)
            if store is not None and reply.get("stored"):
                self.stored.add(store)
            return done
        finally:
            provider.busy[where] -= 1

    def pause(self, provider: str, seconds: float) -> None:
        """The provider said 429 Retry-After: no process sends it a request for ``seconds``."""
        if (mine := self._providers.get(provider)) is not None:
            mine.local.pause(seconds)
        for remote in self.remotes:
            remote.send({"pause": provider, "seconds": seconds})

    async def aclose(self) -> None:
        for remote in self.remotes:
            await remote.aclose()

    def stop(self) -> None:
        """Close every socket and reap every lane (kill one still there after the grace)."""
        for remote in self.remotes:
            remote.sock.close()
        deadline = time.monotonic() + STOP_GRACE_S
        for remote in self.remotes:
            while True:
                try:
                    pid, _ = os.waitpid(remote.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
                if time.monotonic() > deadline:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(remote.pid, signal.SIGKILL)
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(remote.pid, 0)
                    break
                time.sleep(0.01)
        self.remotes = []


def _decode(providers: Any, spec: Any, remote: _Remote, reply: dict[str, Any]) -> Any:
    if "ok" in reply:
        done = reply["ok"]
        done["tool_calls"] = [providers.ToolCall(**call) for call in done["tool_calls"]]
        return providers.Completion(**done)
    if "error" in reply:
        fields = reply["error"]
        requests = int(fields.pop("requests"))
        message = fields.pop("message")
        error = providers.ProviderCallError(message, **fields)
        error.requests = requests
        raise error
    if "lost" in reply:
        error = providers.ProviderCallError(
            f"{spec.name} ({spec.model}): knowngood's worker process {remote.pid} stopped "
            f"({reply['lost']}) with the call in flight",
            provider=spec.name,
            model=spec.model,
            kind="connection",
            retryable=True,
            cause="pipeline.evals.lanes.LaneStopped",
        )
        error.requests = 1  # it may have gone out
        raise error
    raise RuntimeError(f"knowngood's worker process {remote.pid} failed:\n{reply.get('bug')}")


# ------------------------------------------------------------------------------------------
# Forking, and the lane's side
# ------------------------------------------------------------------------------------------


def fork_lanes(providers: Any, extra: int, cache: Any = None) -> Lanes:
    """The run's process plus up to ``extra`` forked lanes (none where forking is unsafe).
    With the run's ``cache`` (pipeline.evals.cache.Cache), the lanes cache their answers.

    Call it with litellm imported (``providers.ready()``) and before the event loop starts.
    """
    remotes: list[_Remote] = []
    if extra <= 0 or not can_fork():
        return Lanes(providers, remotes)
    for stream in (sys.stdout, sys.stderr):  # a child must not write the parent's buffered text
        with contextlib.suppress(Exception):
            stream.flush()
    for _ in range(extra):
        ours, theirs = socket.socketpair()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            break
        if pid == 0:  # the lane
            ours.close()
            for remote in remotes:
                remote.sock.close()
            lane_main(theirs, cache)
        theirs.close()
        ours.setblocking(False)
        remotes.append(_Remote(pid, ours))
    return Lanes(providers, remotes, caching=cache is not None and bool(remotes))
