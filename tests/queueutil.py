"""Support for the queue tests and benchmark: a loopback server that receives the callbacks of
queued requests, and the agent settings that queue while every provider is down."""

from __future__ import annotations

import json
import threading
from typing import Any

from loopback import LoopbackHandler, LoopbackServer
from runtimeutil import RESILIENCE

__all__ = ["QUEUEING", "CallbackServer"]

HOLDING = "I'll get back to you in a moment."
QUEUEING = (
    RESILIENCE.replace("on_all_down: error", "on_all_down: queue")
    .replace("minimum_calls: 4", "minimum_calls: 2")
    .replace("window: 10", "window: 4")
    + f'  holding_message: "{HOLDING}"\n'
)


class _Handler(LoopbackHandler):
    server: LoopbackServer

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        owner: CallbackServer = self.server.owner
        with owner.lock:
            owner.received.append((self.headers.get("Idempotency-Key"), body))
        data = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class CallbackServer:
    """Records every POST: (its Idempotency-Key, its JSON body)."""

    def __init__(self) -> None:
        self.received: list[tuple[str | None, Any]] = []
        self.lock = threading.Lock()
        self.server = LoopbackServer(self, _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/answers"

    def __enter__(self) -> CallbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.shutdown_connections()
        self.server.server_close()
        self.thread.join(5)
