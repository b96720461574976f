"""Incidents the runtime opens, as records in the repository it serves.

An :class:`~pipeline.runtime.model.Observer` in front of another (the metrics): it passes every
event on, and watches two things:

- **every provider of an agent down**: a request no provider answered (``on_all_down`` took
  over, or the client got a 503) opens a P1 (production; P2 elsewhere) incident for the agent,
  scenario ``model-api-outage``; the next answer from a provider records it mitigated;
- **a breaker open too long**: a request that skips a provider because its breaker is open, when
  the breaker left closed more than ``runtime.incidents.breaker_open_s`` ago (default 300 s, read
  from the transitions every worker shares), opens a P2 (production; P3 elsewhere) incident for
  the agent; the breaker closing records it mitigated.

A person acknowledges and resolves them (``knowngood incident``). Records are written (and
pushed, best effort) by one background thread, so a request never waits for git; at most one
incident per agent and cause is open at a time (the records are read at start, so a restarted
server picks up the ones open). When the repository is not a git repository, nothing is
recorded and one line says so.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.runtime.model import Attempt, Observer
from pipeline.runtime.store import BreakerEvent

if TYPE_CHECKING:
    from pipeline.records import RecordStore
    from pipeline.repo import Settings
    from pipeline.runtime.core import Runtime
    from pipeline.runtime.releases import Change

DEFAULT_BREAKER_OPEN_S = 300.0
BY = "knowngood serve"
SCENARIO = "model-api-outage"
CLOSE_WAIT_S = 10.0  # shutdown waits this long for records still being written
ALL_DOWN_OUTCOMES = ("error", "message", "cached")  # how a request no provider answered ends
Log = Callable[[str], None]


def all_down_key() -> str:
    return "runtime:all-down"


def breaker_key(provider: str) -> str:
    return f"runtime:breaker:{provider}"


class RuntimeIncidents(Observer):
    """Pass events on to ``inner``; open and mitigate incidents for the runtime of ``env``."""

    def __init__(self, root: Path, env: str, inner: Observer, log: Log) -> None:
        self.root, self.env, self.inner, self.log = root, env, inner, log
        self.runtime: Runtime | None = None
        self.open: set[tuple[str, str]] = set()  # (agent, key) with an open incident
        self.breaker_open_s = DEFAULT_BREAKER_OPEN_S
        self._store: RecordStore | None = None
        self._settings: Settings | None = None
        self._checked: dict[str, float] = {}  # provider -> when its breaker was last looked at
        self._worker = concurrent.futures.ThreadPoolExecutor(1, "knowngood-incidents")

    @classmethod
    def start(cls, root: Path, env: str, inner: Observer, log: Log) -> RuntimeIncidents:
        watch = cls(root, env, inner, log)
        try:
            watch._load()
        except Exception as e:  # never keep the server from starting
            log(f"incidents: not recorded ({type(e).__name__}: {e})")
            watch._store = None
        return watch

    def _load(self) -> None:
        from pipeline.git import Git
        from pipeline.records import RecordStore
        from pipeline.repo import load_settings

        git = Git(self.root)
        if not git.is_repo():
            self.log(f"incidents: not recorded ({self.root} is not a git repository)")
            return
        self._settings = load_settings(self.root)
        runtime = self._settings.raw.get("runtime") or {}
        limit = (runtime.get("incidents") or {}).get("breaker_open_s", DEFAULT_BREAKER_OPEN_S)
        self.breaker_open_s = float(limit)
        self._store = RecordStore.for_settings(git, self._settings)
        for incident in self._store.incidents(None, self.env):
            cause = str((incident.records[0].get("details") or {}).get("key") or "")
            if incident.status == "open" and cause.startswith("runtime:"):
                self.open.add((incident.agent, cause))

    def attach(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def close(self) -> None:
        """Let the records being written finish (bounded), then stop the worker."""
        deadline = time.monotonic() + CLOSE_WAIT_S
        done = self._worker.submit(lambda: None)
        try:
            done.result(max(0.0, deadline - time.monotonic()))
        except concurrent.futures.TimeoutError:
            self.log("incidents: records still being written at shutdown were left behind")
        self._worker.shutdown(wait=False, cancel_futures=True)

    # -- Observer ----------------------------------------------------------------------------

    def attempt(self, agent: str, attempt: Attempt) -> None:
        self.inner.attempt(agent, attempt)
        if attempt.outcome == "skipped" and attempt.kind == "breaker_open":
            self._breaker_skipped(agent, attempt.provider)

    def failover(self, agent: str, from_provider: str, to_provider: str) -> None:
        self.inner.failover(agent, from_provider, to_provider)

    def used(self, agent: str, provider: str, model: str, response: Mapping[str, Any]) -> None:
        self.inner.used(agent, provider, model, response)

    def answered(self, agent: str, outcome: str, seconds: float) -> None:
        self.inner.answered(agent, outcome, seconds)
        key = all_down_key()
        if outcome in ALL_DOWN_OUTCOMES and (agent, key) not in self.open:
            self.open.add((agent, key))
            how = "the client got an error" if outcome == "error" else f"answered {outcome!r}"
            self._submit_open(
                agent,
                key,
                "P1" if self.env == "production" else "P2",
                f"every provider of {agent} is down in {self.env}",
                f"no provider answered a request ({how})",
            )
        elif outcome == "ok" and (agent, key) in self.open:
            self.open.discard((agent, key))
            self._submit_mitigated(agent, key, "a provider answered again")

    def transition(self, event: BreakerEvent) -> None:
        self.inner.transition(event)
        if event.to_state == "closed":
            key = breaker_key(event.provider)
            for agent, k in sorted(self.open):
                if k == key:
                    self.open.discard((agent, k))
                    self._submit_mitigated(agent, key, f"the breaker of {event.provider} closed")

    def release_changed(self, change: Change) -> None:
        self.inner.release_changed(change)

    # -- internals ---------------------------------------------------------------------------

    def _breaker_skipped(self, agent: str, provider: str) -> None:
        key = breaker_key(provider)
        if (agent, key) in self.open or self.runtime is None:
            return
        now = time.time()
        if now - self._checked.get(provider, 0.0) < 1.0:
            return  # looked at it less than a second ago
        self._checked[provider] = now
        left = self._left_closed_at(provider)
        if left is None or now - left < self.breaker_open_s:
            return
        self.open.add((agent, key))
        self._submit_open(
            agent,
            key,
            "P2" if self.env == "production" else "P3",
            f"the circuit breaker of {provider} has been open for {now - left:.0f}s",
            f"{provider} failed or was slow; the breaker stayed away from closed longer than "
            f"runtime.incidents.breaker_open_s ({self.breaker_open_s:g}s)",
        )

    def _left_closed_at(self, provider: str) -> float | None:
        """When ``provider``'s breaker last left closed (None: it is closed)."""
        assert self.runtime is not None
        store = self.runtime.store
        row = store.breaker(provider)
        if row is None or row.state == "closed":
            return None
        left = [e.at for e in store.events(provider, limit=50) if e.from_state == "closed"]
        return left[-1] if left else row.since

    def _submit_open(self, agent: str, key: str, severity: str, what: str, why: str) -> None:
        release = self.runtime.releases.get(agent) if self.runtime is not None else None
        fields: dict[str, Any] = {"release": release.release if release else None}
        self._submit(self._open_job, agent, key, severity, what, why, fields)

    def _submit_mitigated(self, agent: str, key: str, why: str) -> None:
        self._submit(self._mitigated_job, agent, key, why)

    def _submit(self, job: Callable[..., None], *args: Any) -> None:
        if self._store is None:
            return
        with contextlib.suppress(RuntimeError):  # shutting down: nothing more is recorded
            self._worker.submit(self._guarded, job, *args)

    def _guarded(self, job: Callable[..., None], *args: Any) -> None:
        try:
            job(*args)
        except Exception as e:  # an incident record must never take the server down
            self.log(f"incidents: could not record ({type(e).__name__}: {e})")

    def _open_job(
        self, agent: str, key: str, severity: str, what: str, why: str, fields: dict[str, Any]
    ) -> None:
        assert self._store is not None
        with _machine_lock(self.root):  # workers sharing this repository: one opens it
            opened = self._open_once(agent, key, severity, what, why, fields)
        if opened is None:
            self.log(f"incidents: {what}: an incident is open for it already")
        else:
            self.log(f"incidents: opened {severity} {opened[0]['incident']}: {what}")
            self._push()
            if self._settings is not None:
                from pipeline.incidents.paging import page

                page(self._settings, opened[0])  # a P1 or P2 notifies (never raises)

    def _open_once(
        self, agent: str, key: str, severity: str, what: str, why: str, fields: dict[str, Any]
    ) -> Any:
        from pipeline.incidents import open_once

        assert self._store is not None
        return open_once(
            self._store,
            None,  # paged once the lock is released
            key=key,
            agent=agent,
            env=self.env,
            severity=severity,
            what=what,
            why=why,
            by=BY,
            scenario=SCENARIO,
            **fields,
        )

    def _mitigated_job(self, agent: str, key: str, why: str) -> None:
        from pipeline.incidents.auto import close_open

        assert self._store is not None
        with _machine_lock(self.root):
            written = close_open(
                self._store, key=key, agent=agent, env=self.env, step="mitigated", by=BY, why=why
            )
        for record in written:
            self.log(f"incidents: {record['incident']} mitigated: {why}")
        if written:
            self._push()

    def _push(self) -> None:
        from pipeline.errors import GitError

        assert self._store is not None
        try:
            self._store.push()
        except GitError as e:
            self.log(f"incidents: records kept on the local branch, not pushed ({e.message})")


@contextlib.contextmanager
def _machine_lock(root: Path) -> Iterator[None]:
    """An exclusive lock every worker serving ``root`` on this machine shares (a file lock
    under .knowngood/, released when the holder dies), so that checking the records for an open
    incident and writing a new one are one step; no lock where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    folder = root / ".knowngood"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "incidents.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
