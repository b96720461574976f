"""Providers with ``serve:`` in the runtime: the keyless local model, started by knowngood.

A provider of ``knowngood.yaml`` with ``serve: smollm2`` has no ``api_base`` and needs no key;
its bundle entry says ``serve`` (:mod:`pipeline.bundle`). The runtime starts the llama.cpp server
for it (:class:`~pipeline.evals.localserver.LocalServers`, as ``eval`` does) when a release
that names it is warmed up, or at its first call, and keeps it for the life of the process:

- **One per process.** Every :class:`~pipeline.runtime.core.Runtime` of the process shares the
  servers; the last one to close stops them (an ``atexit`` hook and the server's own watch on
  its parent stop them when the process dies, SIGKILL included).
- **It fails over like any provider.** A server that cannot start (llama-cpp-python is not
  installed, the model package is missing, it died and cannot come back) fails the attempt
  with kind ``local_model`` and the next provider of the chain answers; the breaker counts it.
  A server that died is started again at the next call.
- **Started before the first call.** ``serve`` (before it listens), ``run`` and the Python API
  (``Agent.load``, outside an event loop) start it while warming up, in a worker thread beside
  litellm's import. A call that still finds it stopped (a release deployed later, or it died)
  starts it first; the attempt's own timeout begins after that, but the start counts towards
  its slow-call race.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.evals.localserver import LocalServers
    from pipeline.runtime.releases import ChainEntry

__all__ = ["acquire", "release", "resolve"]

_lock = threading.Lock()
_servers: LocalServers | None = None
_users = 0


def acquire() -> None:
    """A runtime of this process may use the local models (until :func:`release`)."""
    global _users
    with _lock:
        _users += 1


def release() -> None:
    """A runtime closed: the last one stops the servers."""
    global _servers, _users
    with _lock:
        _users = max(0, _users - 1)
        servers = _servers if _users == 0 else None
        if servers is not None:
            _servers = None
    if servers is not None:
        servers.close()


def _registry() -> LocalServers:
    global _servers
    with _lock:
        if _servers is None:
            from pipeline.evals.localserver import LocalServers

            _servers = LocalServers()
        return _servers


async def resolve(entry: ChainEntry) -> ChainEntry:
    """``entry`` (one that names a local model) with the ``api_base`` of its server, started if
    needed; an EvalError (a KnowngoodError) when the server cannot start."""
    assert entry.serve is not None
    alias = entry.model.split("/", 1)[-1]
    api_base = await asyncio.to_thread(_registry().api_base, entry.serve, alias=alias)
    return dataclasses.replace(entry, api_base=api_base)
