"""Support for the durable-workflow tests: a loopback tool server that counts effects per
Idempotency-Key, and a workflows module a ``knowngood serve --workflows`` worker imports."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from loopback import LoopbackHandler, LoopbackServer

FLOWS = '''\
"""Workflows of the durable tests (imported by knowngood serve --workflows flows)."""
import os
import time

from pipeline.runtime import workflows as wf
from pipeline.runtime.toolcalls import Endpoint


@wf.workflow("mail")
def mail(tool_url: str, to: str) -> dict:
    first = wf.step(lambda: {"to": to, "at": time.time()}, name="prepare")
    sent = wf.call(Endpoint("send_email", tool_url + "/send", "POST"), {"to": first["to"]})
    done = wf.step(lambda: os.getpid(), name="finish")
    return {"sent": sent["body"], "pid": done}


@wf.workflow("agent_mail")
def agent_mail(to: str) -> dict:
    answer = wf.ask("support", "Write one line for " + to)
    sent = wf.tool("support", "send_email", {"to": to, "body": answer["text"]})
    return {"text": answer["text"], "sent": sent}


@wf.workflow("count")
def count(n: int) -> int:
    total = 0
    for i in range(n):
        total += wf.step(lambda i=i: i, name="add")
    return total


@wf.workflow("family")
def family(n: int) -> int:
    return count(n) + count(n + 1)  # two child workflows, waited for


@wf.workflow("launcher")
def launcher(tool_url: str) -> str:
    from dbos import DBOS

    child = DBOS.start_workflow(mail, tool_url, "child@example.com")  # not waited for
    return child.get_workflow_id()
'''


class ToolServer:
    """``POST /send``: one effect per new Idempotency-Key (a request without one is always a new
    effect); a repeated key gets the first response again. ``hold``: when set, a request
    makes its effect, calls ``on_effect`` and then waits (until released) before answering."""

    def __init__(self) -> None:
        self.effects: dict[str, int] = {}
        self.requests: list[tuple[float, str | None, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.responses: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.release = threading.Event()
        self.on_effect: Callable[[str], None] | None = None
        self.body: Any = None  # reply body override (e.g. off-schema)
        self.status = 200
        self.server = LoopbackServer(self, _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def total_effects(self) -> int:
        with self.lock:
            return sum(self.effects.values())

    def repeated_effects(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.effects.values() if n > 1)

    def handle(self, path: str, key: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((time.time(), key, body))
            if self.status != 200:
                return self.status, {"error": "down"}
            if key is not None and key in self.responses:
                return 200, self.responses[key]
            name = key or f"anonymous-{len(self.requests)}"
            self.effects[name] = self.effects.get(name, 0) + 1
            reply = self.body if self.body is not None else {"id": name, "path": path}
            if key is not None:
                self.responses[key] = reply
        if self.hold.is_set():
            if self.on_effect is not None:
                self.on_effect(name)
            self.release.wait(30)
        return 200, reply

    def __enter__(self) -> ToolServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.shutdown_connections()
        self.server.server_close()


class _Handler(LoopbackHandler):
    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else dict(urllib.parse.parse_qsl(self.path.partition("?")[2]))
        owner: ToolServer = self.server.owner
        owner.headers.append({k.lower(): v for k, v in self.headers.items()})
        status, reply = owner.handle(
            self.path.partition("?")[0], self.headers.get("Idempotency-Key"), body
        )
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
