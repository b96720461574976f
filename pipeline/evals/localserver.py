"""The keyless local provider: a llama.cpp server that knowngood starts and stops itself.

A provider with ``serve: smollm2`` in ``knowngood.yaml`` has no ``api_base``: the eval runner asks
a :class:`LocalServers` registry for one, which starts ``llama_cpp.server`` on a free loopback
port the first time the alias is needed and reuses it for the rest of the run::

    with LocalServers() as servers:              # or: async with LocalServers() as servers
        api_base = servers.api_base("smollm2", alias="smollm2-135m-instruct")
        # litellm.completion(model="openai/smollm2-135m-instruct", api_base=api_base,
        #                    api_key="unused", ...)
    # every server started by the registry is stopped here, also on errors and Ctrl-C

In async code call ``await servers.aapi_base(...)``: the start (about a second) runs in a
worker thread, and concurrent callers for the same alias share one server.

The parent process never imports ``llama_cpp`` (heavy, and a wrong build dies with "Illegal
instruction"): availability is checked with ``importlib.util.find_spec`` and the server runs in
a child process of its own process group. Servers are stopped by PID (SIGTERM, then SIGKILL after
a grace period); an ``atexit`` hook stops any server still running when the interpreter exits, and
the child stops itself if its parent dies without cleaning up (SIGKILL, crash).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from types import TracebackType

from pipeline.errors import EvalError
from pipeline.evals.llamaserver import LocalServer
from pipeline.evals.localmodels import (
    INSTALL_HINT,
    MODELS,
    LocalModel,
    default_threads,
    find_model,
)

__all__ = [
    "INSTALL_HINT",
    "MODELS",
    "LocalModel",
    "LocalServer",
    "LocalServers",
    "default_threads",
    "find_model",
]


class LocalServers:
    """One :class:`LocalServer` per served alias, started on first use and reused for a run.

    ``with LocalServers() as servers:`` (or ``async with``) stops every server on exit; outside a
    ``with``, call :meth:`close`. Thread-safe; :meth:`aapi_base` is the asyncio entry point.
    """

    def __init__(
        self,
        *,
        startup_timeout_s: float = 60.0,
        n_threads: int | None = None,
        log_dir: Path | None = None,
    ) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.n_threads = n_threads
        self.log_dir = log_dir
        self._servers: dict[str, LocalServer] = {}
        self._served: dict[str, str] = {}
        self._lock = threading.Lock()
        self._start_locks: dict[str, threading.Lock] = {}
        self._closed = False

    def get(self, serve: str, *, alias: str) -> LocalServer:
        """The running server for ``alias`` (serving model ``serve``), started if needed."""
        with self._lock:
            if self._closed:
                raise EvalError("local model servers were already closed for this run")
            previous = self._served.setdefault(alias, serve)
            if previous != serve:
                raise EvalError(
                    f"model alias {alias!r} is served by both {previous!r} and {serve!r}",
                    hint="give each served provider its own model name in knowngood.yaml",
                )
            start_lock = self._start_locks.setdefault(alias, threading.Lock())
        with start_lock:
            with self._lock:
                server = self._servers.get(alias)
                if server is not None and server.running:
                    return server
                if self._closed:
                    raise EvalError("local model servers were already closed for this run")
                model = find_model(serve)
                server = LocalServer(
                    model,
                    alias=alias,
                    n_ctx=MODELS[serve].n_ctx,
                    n_threads=self.n_threads,
                    startup_timeout_s=self.startup_timeout_s,
                    log_dir=self.log_dir,
                )
                # Registered before it starts, so close() from another thread stops it too.
                self._servers[alias] = server
            server.start()
            with self._lock:
                closed = self._closed
            if closed:  # close() ran while this server was starting
                server.stop()
                raise EvalError("local model servers were closed while starting one")
            return server

    def api_base(self, serve: str, *, alias: str) -> str:
        """The ``api_base`` litellm needs for ``openai/<alias>``; starts the server if needed."""
        return self.get(serve, alias=alias).api_base

    async def aapi_base(self, serve: str, *, alias: str) -> str:
        """:meth:`api_base` for asyncio code: the start runs in a worker thread."""
        server = await asyncio.to_thread(self.get, serve, alias=alias)
        return server.api_base

    @property
    def servers(self) -> dict[str, LocalServer]:
        with self._lock:
            return dict(self._servers)

    def close(self) -> None:
        """Stop every server this registry started. Idempotent."""
        with self._lock:
            self._closed = True
            servers = list(self._servers.values())
            self._servers.clear()
        for server in servers:
            server.stop()

    def __enter__(self) -> LocalServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> LocalServers:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
