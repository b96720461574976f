"""The moving parts of ``drill crash`` (:mod:`pipeline.deploy.crash_drill`): a worker
subprocess, and the loopback endpoint that counts effects per Idempotency-Key."""

from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipeline.records import new_id

__all__ = ["HOLD_S", "EffectCounter", "Worker"]

HOLD_S = 120.0  # the longest the counter holds an answer
_STARTED = re.compile(r"durable engine started: worker (\S+)")
_LISTENING = re.compile(r"listening on http")


class Worker:
    """``knowngood serve --workflows pipeline.runtime.drillflow`` as a subprocess."""

    def __init__(self, root: Path, env: str, url: str) -> None:
        self.cmd = [
            sys.executable, "-m", "pipeline", "serve", "--repo", str(root), "--env", env,
            "--port", "0", "--state-store", url, "--workflows", "pipeline.runtime.drillflow",
        ]  # fmt: skip
        self.lines: list[str] = []
        self.started = threading.Event()
        self.proc: subprocess.Popen[str] | None = None
        self.reader: threading.Thread | None = None
        self.failed = False

    def start(self, wait_s: float) -> Worker:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if wait_s > 0:
            self.started.wait(wait_s)
            self.failed = self.proc.poll() is not None or not any(
                _STARTED.search(line) for line in self.lines
            )
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if _LISTENING.search(line):  # the engine started and the providers are warm
                self.started.set()
        self.started.set()

    def tail(self) -> str:
        return " / ".join(line.strip() for line in self.lines[-3:]) or "no output"

    def kill(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._closed()
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._closed()

    def _closed(self) -> None:
        if self.reader is not None:
            self.reader.join(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()


class EffectCounter:
    """A loopback endpoint: one effect per new Idempotency-Key; the first answer is held
    (until ``release``) once its effect is made, so the worker can be killed right then."""

    def __init__(self) -> None:
        self.effects: dict[str, int] = {}
        self.replies: dict[str, bytes] = {}
        self.arrivals: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.effect = threading.Event()
        self.release = threading.Event()
        self.again = threading.Event()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CounterHandler)
        self.server.daemon_threads = True
        self.server.counter = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/effect"

    def handle(self, key: str) -> bytes:
        with self.lock:
            self.arrivals.setdefault(key, []).append(time.time())
            if len(self.arrivals[key]) > 1:
                self.again.set()
            reply = self.replies.get(key)
            if reply is not None:
                return reply
            self.effects[key] = self.effects.get(key, 0) + 1
            reply = json.dumps({"effect": key, "n": self.effects[key]}).encode()
            self.replies[key] = reply
            first = not self.effect.is_set()
        if first:
            self.effect.set()
            self.release.wait(HOLD_S)
        return reply

    def repeated_arrival(self, timeout_s: float) -> float | None:
        """When a key arrived for the second time."""
        if not self.again.wait(timeout_s):
            return None
        with self.lock:
            return min(times[1] for times in self.arrivals.values() if len(times) > 1)

    def total(self) -> int:
        with self.lock:
            return sum(self.effects.values())

    def repeated(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.effects.values() if n > 1)

    def __enter__(self) -> EffectCounter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _CounterHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        key = self.headers.get("Idempotency-Key") or f"none-{new_id()}"
        counter: EffectCounter = self.server.counter  # type: ignore[attr-defined]
        body = counter.handle(key)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the worker was killed while we held the answer
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass
