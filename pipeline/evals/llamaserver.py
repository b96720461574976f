"""One ``llama_cpp.server`` child process: started, watched, stopped by PID (see localserver)."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from pipeline.errors import EvalError
from pipeline.evals.localmodels import (
    INSTALL_HINT,
    SERVER_MODULES,
    default_threads,
    missing_modules,
)


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# The child runs llama_cpp.server exactly as ``python -m llama_cpp.server ARGS`` would, plus:
# - a watchdog thread: when the parent dies without stopping it (SIGKILL, SIGTERM, crash), the
#   server removes its temporary log directory and exits instead of holding the CPU forever;
# - with fresh=1, every completion evaluates its whole prompt from an empty KV cache. llama.cpp
#   otherwise reuses the prefix shared with the previous request and evaluates only the rest, in
#   a batch of another shape, which changes the floating point results: at temperature 0 the
#   same prompt then gives different answers depending on which case ran before it.
# argv: -c CODE <parent pid> <fresh 0|1> <log dir to remove when orphaned, or ''> <server args...>
_BOOTSTRAP = """\
import os, runpy, shutil, sys, threading, time
parent, fresh, own_dir = int(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
def _watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    if own_dir:
        shutil.rmtree(own_dir, ignore_errors=True)
    os._exit(0)
threading.Thread(target=_watch, daemon=True).start()
if fresh:
    import llama_cpp
    _generate = llama_cpp.Llama.generate
    def generate(self, *args, **kwargs):
        self.reset()
        return _generate(self, *args, **kwargs)
    llama_cpp.Llama.generate = generate
sys.argv = ["llama_cpp.server", *sys.argv[4:]]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""

# Servers started by this process and not yet confirmed dead: the atexit safety net.
_LIVE: set[LocalServer] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all_live() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for server in live:
        with contextlib.suppress(Exception):
            server.stop(grace_s=2.0)


class LocalServer:
    """One ``llama_cpp.server`` child process serving ``model`` as ``alias`` on loopback.

    Use as a context manager (``with LocalServer(path, alias="x") as server:``) or call
    :meth:`start` and :meth:`stop`. :meth:`stop` is idempotent and safe from any thread.

    ``n_threads`` defaults to :func:`default_threads`. ``fresh_prompts`` (default) evaluates every
    prompt from an empty cache so that temperature 0 gives the same answer whatever ran before
    (see ``_BOOTSTRAP``). ``log_dir`` keeps the server's log there; by default it goes to a
    temporary directory removed on :meth:`stop`. ``extra_args`` are appended to the
    ``llama_cpp.server`` command line (later flags win).
    """

    def __init__(
        self,
        model: Path,
        *,
        alias: str,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        n_batch: int = 512,
        host: str = "127.0.0.1",
        startup_timeout_s: float = 60.0,
        log_dir: Path | None = None,
        fresh_prompts: bool = True,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model = model
        self.alias = alias
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_batch = n_batch
        self.host = host
        self.startup_timeout_s = startup_timeout_s
        self.fresh_prompts = fresh_prompts
        self.extra_args = extra_args
        self._log_dir = log_dir
        self._own_log_dir = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.startup_s: float | None = None  # measured time from launch to ready

    # -- what callers use -------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/v1``: pass it to litellm with ``model="openai/<alias>"``."""
        if self._port is None:
            raise EvalError(f"local model server {self.alias!r} is not started")
        return f"http://{self.host}:{self._port}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self, port: int) -> list[str]:
        """The child's argv: ``python -c BOOTSTRAP <ppid> <fresh> <own log dir> <server args>``."""
        own_dir = str(self._log_dir) if self._own_log_dir and self._log_dir else ""
        flags = {
            "model": str(self.model),
            "model_alias": self.alias,
            "host": self.host,
            "port": str(port),
            "n_ctx": str(self.n_ctx),
            "n_threads": str(self.n_threads),
            "n_threads_batch": str(self.n_threads),
            "n_batch": str(self.n_batch),
            "n_ubatch": str(self.n_batch),
            # Logits of the last token only: the server's default (True) reserves n_ctx x
            # vocabulary floats (400 MB here) and copies every prompt token's logits.
            "logits_all": "False",
            "use_mlock": "False",
            # Concurrent requests queue; True would cut a streamed answer short with [DONE]
            # as soon as another request waits.
            "interrupt_requests": "False",
        }
        args = [part for name, value in flags.items() for part in (f"--{name}", value)]
        fresh = "1" if self.fresh_prompts else "0"
        head = [sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), fresh, own_dir]
        return [*head, *args, *self.extra_args]

    def start(self) -> LocalServer:
        """Launch the server and wait until it answers ``GET /v1/models``.

        Raises :class:`EvalError` (with the end of the server's log) when it exits or is not
        ready within ``startup_timeout_s``. On any failure, including Ctrl-C, the child is
        stopped before the exception propagates.
        """
        if self.running:
            return self
        if not self.model.is_file():
            raise EvalError(f"local model file not found: {self.model}", hint=INSTALL_HINT)
        missing = missing_modules(SERVER_MODULES)
        if missing:
            raise EvalError(
                f"cannot start the local model server: missing {', '.join(missing)}",
                hint=INSTALL_HINT,
            )
        self._stopping.clear()
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="knowngood-llama-"))
            self._own_log_dir = True
        self._log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            for attempt in range(3):
                self._launch()
                if self._wait_ready(started):
                    break
                # The port was taken between picking and binding it: try another one.
                if attempt == 2 or "address already in use" not in self.log_tail().lower():
                    raise self._start_error("exited during startup")
                self._reap()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - started
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop the server by PID: SIGTERM to its process group, SIGKILL after ``grace_s``."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            self._proc = None
            self._port = None
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._own_log_dir and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
            self._own_log_dir = False
            self._log_path = None

    def log_tail(self, lines: int = 25) -> str:
        """The last ``lines`` lines the server wrote to its log (stdout and stderr)."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        with self._log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} api_base={self.api_base}" if self.running else "stopped"
        return f"LocalServer({self.alias!r}, {state})"

    # -- internals --------------------------------------------------------------------------

    def _launch(self) -> None:
        assert self._log_dir is not None
        port = _free_port(self.host)
        self._log_path = self._log_dir / f"{self.alias}-{port}.log"
        # Ctrl-C between the fork and the assignment would leave a server nobody can stop.
        with _sigint_deferred(), self._lock:
            if self._stopping.is_set():
                raise EvalError(f"local model server {self.alias!r} was stopped while starting")
            with self._log_path.open("wb") as log:
                self._proc = subprocess.Popen(
                    self.command(port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # own process group: Ctrl-C is ours to handle
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            self._port = port
            with _LIVE_LOCK:
                _LIVE.add(self)

    def _wait_ready(self, started: float) -> bool:
        """Poll ``GET /v1/models`` until it lists the alias; False if the child exited."""
        proc = self._proc
        assert proc is not None
        url = f"{self.api_base}/models"
        deadline = started + self.startup_timeout_s
        interval = 0.02
        while True:
            if self._stopping.is_set():
                raise EvalError(f"local model server {self.alias!r} was stopped while starting")
            if proc.poll() is not None:
                return False
            if self._serves_alias(url):
                return True
            if time.monotonic() >= deadline:
                raise self._start_error(f"not ready after {self.startup_timeout_s:g} s")
            # Waiting on the child doubles as the poll interval and notices an early exit.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=interval)
            interval = min(interval * 1.5, 0.25)

    def _serves_alias(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                body = json.loads(response.read())
        except (OSError, ValueError):
            return False
        data = body.get("data") if isinstance(body, dict) else None
        return isinstance(data, list) and any(
            isinstance(m, dict) and m.get("id") == self.alias for m in data
        )

    def _reap(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._proc.wait()
                self._proc = None
                self._port = None

    def _start_error(self, what: str) -> EvalError:
        proc = self._proc
        code = proc.poll() if proc is not None else None
        status = f" (exit code {code})" if code is not None else ""
        tail = self.log_tail() or "(the server wrote nothing)"
        if self._own_log_dir:
            # The log directory is removed on stop: keep a copy of the full log for the user.
            kept = Path(tempfile.mkdtemp(prefix="knowngood-llama-failed-"))
            if self._log_path is not None and self._log_path.exists():
                shutil.copy(self._log_path, kept / self._log_path.name)
            where = kept / (self._log_path.name if self._log_path else "")
        else:
            where = self._log_path or Path()
        indented = "\n".join(f"    {line}" for line in tail.splitlines())
        return EvalError(
            f"local model server {self.alias!r} ({self.model.name}) {what}{status}; "
            f"last lines of its log {where}:\n{indented}",
            hint="check the model file and that llama-cpp-python was built for this CPU "
            "(.ci/install builds it with the right flags)",
        )


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold back SIGINT (Ctrl-C) for a short critical section, then deliver it.

    Only the main thread sees KeyboardInterrupt, and only it may change signal handlers; in any
    other thread this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        if received:
            signal.raise_signal(signal.SIGINT)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the child's process group (its PID: it was started in a new session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
