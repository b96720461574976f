"""Loopback HTTP servers that speak the providers' real wire formats, for tests.

One :class:`FakeProvider` listens on ``127.0.0.1`` (a free port) and answers three wire formats::

    OpenAI     POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models
    Anthropic  POST /v1/messages
    Gemini     POST /v1beta/models/{model}:generateContent   (also /v1alpha and /v1)
               POST /v1beta/models/{model}:streamGenerateContent?alt=sse

Chat requests with ``stream: true`` (OpenAI, Anthropic; Gemini by its stream route) are
answered as server-sent events over chunked transfer encoding, one event per word, in each
provider's event shapes. ``Fault.cut_stream(n)`` resets the connection after ``n`` events;
``Fault.stall_stream(n)`` stops sending after ``n`` events (until ``hang_s`` or close).

Point litellm at it with ``api_base=server.openai_base`` (``.../v1``), ``server.anthropic_base``
(litellm appends ``/v1/messages``) or ``server.gemini_base`` (``.../v1beta``: litellm builds
``{api_base}/models/{model}:generateContent``).

Behaviour is scripted per test::

    def responder(wire: str, body: dict) -> Reply | str | Fault: ...
    with FakeProvider(responder=responder) as server:
        server.push_faults(Fault.rate_limit(2), Fault.server_error())   # consumed in arrival order
        ...
        assert server.count("openai") == 3

Every request is recorded (:class:`RecordedRequest`: path, lower-cased headers, parsed body) and
malformed requests are rejected with 400 in the provider's error shape, so a wrong client shows up.
Responses go out as one ``sendall`` on a ``TCP_NODELAY`` socket (HTTP/1.1 keep-alive with a
correct ``Content-Length``): a handler that writes headers and body separately stalls ~40 ms per
keep-alive request on Nagle + delayed ACK. ``close()`` wakes hanging handlers, shuts every open
connection and joins every thread it started.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import math
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from loopback import LoopbackHandler, LoopbackServer

Wire = Literal["openai", "anthropic", "gemini"]

__all__ = [
    "FakeProvider",
    "Fault",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ToolCallReply",
    "default_embedder",
    "echo_responder",
    "last_user_text",
    "serve",
]


# --------------------------------------------------------------------------------------------
# Scripting types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCallReply:
    """One tool call the fake model makes."""

    name: str
    # A mapping, or (OpenAI only) raw text sent verbatim -- e.g. broken JSON from a weak model.
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def args(self) -> dict[str, Any]:
        return dict(self.arguments) if not isinstance(self.arguments, str) else {}

    def args_text(self) -> str:
        return (
            self.arguments if isinstance(self.arguments, str) else json.dumps(dict(self.arguments))
        )


@dataclass(frozen=True)
class Reply:
    """What the fake model answers: text, tool calls, or both."""

    text: str = ""
    tool_calls: Sequence[ToolCallReply] = ()
    prompt_tokens: int | None = None  # default: words in the request's messages
    completion_tokens: int | None = None  # default: words in the reply
    model: str | None = None  # default: the requested model
    finish_reason: str | None = None  # default: per wire format, from whether tools were called
    latency_ms: float = 0.0  # answer after this delay


@dataclass(frozen=True)
class Fault:
    """Something going wrong for one request. Combine ``latency_ms`` with any other fault."""

    latency_ms: float = 0.0
    status: int | None = None  # answer with this HTTP error status
    retry_after_s: float | None = None  # ``Retry-After`` header (with a 429/503) ...
    # ... or, on the Gemini wire, google.rpc.RetryInfo's retryDelay in the body, as Google does
    retry_in_body: bool = False
    message: str | None = None  # error message in the body
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until hang_s passes or the server closes)
    hang_s: float = 30.0
    reset: bool = False  # close the socket abruptly (RST) without answering
    # With ``reset``: RST (no FIN first) as soon as the headers are in, before reading the
    # body: the client sees ECONNRESET while it sends or waits. Only from the queue
    # (push_faults): the fault hook needs the body.
    before_body: bool = False
    malformed: bool = False  # 200 with a body that is not JSON
    # streamed answers only: reset the connection / stop sending after this many events
    cut_after: int | None = None
    stall_after: int | None = None

    @classmethod
    def delay(cls, ms: float) -> Fault:
        return cls(latency_ms=ms)

    @classmethod
    def rate_limit(cls, retry_after_s: float | None = 1.0, message: str | None = None) -> Fault:
        return cls(status=429, retry_after_s=retry_after_s, message=message)

    @classmethod
    def server_error(cls, status: int = 500, message: str | None = None) -> Fault:
        return cls(status=status, message=message)

    @classmethod
    def error(cls, status: int, message: str | None = None) -> Fault:
        return cls(status=status, message=message)

    @classmethod
    def hang_up(cls, hang_s: float = 30.0) -> Fault:
        return cls(hang=True, hang_s=hang_s)

    @classmethod
    def connection_reset(cls, *, before_body: bool = False) -> Fault:
        return cls(reset=True, before_body=before_body)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls(malformed=True)

    @classmethod
    def cut_stream(cls, after_events: int = 0) -> Fault:
        return cls(cut_after=after_events)

    @classmethod
    def stall_stream(cls, after_events: int = 0, hang_s: float = 30.0) -> Fault:
        return cls(stall_after=after_events, hang_s=hang_s)


Responder = Callable[[str, dict[str, Any]], "Reply | str | Fault"]
FaultHook = Callable[["RecordedRequest"], "Fault | None"]
Embedder = Callable[[str], list[float]]


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    wire: str | None  # "openai", "anthropic", "gemini" or None (unknown route)
    endpoint: str | None  # "chat", "embeddings", "models", "messages", "generateContent"
    status: int | None = None  # what the server answered (None: no answer, e.g. reset or hang)
    fault: Fault | None = None

    def text(self) -> str:
        """Everything the client sent, as text (for leak checks)."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        return f"{self.method} {self.path}?{self.query}\n{head}\n\n" + self.raw.decode(
            "utf-8", "replace"
        )


# --------------------------------------------------------------------------------------------
# Deterministic defaults
# --------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return " ".join(parts)
    return ""


def last_user_text(wire: str, body: Mapping[str, Any]) -> str:
    """The text of the last user message in a request of any wire format."""
    if wire == "gemini":
        for item in reversed(body.get("contents") or []):
            if isinstance(item, dict) and item.get("role", "user") == "user":
                return _content_text(item.get("parts"))
        return ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _content_text(message.get("content"))
    return ""


def echo_responder(wire: str, body: dict[str, Any]) -> Reply:
    """The default: answers ``echo: <last user text>``."""
    return Reply(text=f"echo: {last_user_text(wire, body)}")


_WORD = re.compile(r"\w+")


def default_embedder(text: str, dims: int = 32) -> list[float]:
    """Hashed bag of words, L2-normalised: equal texts embed equally, shared words score higher."""
    vector = [0.0] * dims
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode(), digest_size=4).digest()
        vector[int.from_bytes(digest, "little") % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:
        vector[0] = 1.0
        return vector
    return [v / norm for v in vector]


def _words(value: Any) -> int:
    return len(_WORD.findall(json.dumps(value) if not isinstance(value, str) else value))


# --------------------------------------------------------------------------------------------
# Request validation (400 like the real APIs)
# --------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    pass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise _BadRequest(message)


def _check_openai_chat(body: Any) -> None:
    _require(isinstance(body, dict), "request body must be a JSON object")
    _require(isinstance(body.get("model"), str) and body["model"] != "", "'model' is required")
    messages = body.get("messages")
    _require(
        isinstance(messages, list) and len(messages) > 0, "'messages' must be a non-empty array"
    )
    for i, message in enumerate(messages):
        _require(isinstance(message, dict), f"messages[{i}] must be an object")
        role = message.get("role")
        _require(
            role in ("system", "developer", "user", "assistant", "tool", "function"),
            f"messages[{i}].role: invalid value {role!r}",
        )
        content = message.get("content")
        _require(
            content is None or isinstance(content, str | list),
            f"messages[{i}].content must be a string or an array",
        )
        if role == "tool":
            _require(
                isinstance(message.get("tool_call_id"), str),
                f"messages[{i}].tool_call_id is required",
            )
    tools = body.get("tools")
    if tools is not None:
        _require(isinstance(tools, list), "'tools' must be an array")
        for i, tool in enumerate(tools):
            _require(
                isinstance(tool, dict) and tool.get("type") == "function",
                f"tools[{i}].type must be 'function'",
            )
            function = tool.get("function")
            _require(
                isinstance(function, dict) and isinstance(function.get("name"), str),
                f"tools[{i}].function.name is required",
            )
            params = function.get("parameters")
            _require(
                params is None or isinstance(params, dict),
                f"tools[{i}].function.parameters must be an object",
            )
    for key in ("temperature", "top_p"):
        if key in body:
            _require(isinstance(body[key], int | float), f"'{key}' must be a number")
    if "max_tokens" in body:
        _require(isinstance(body["max_tokens"], int), "'max_tokens' must be an integer")
    _require(isinstance(body.get("stream", False), bool), "'stream' must be a boolean")


def _check_openai_embeddings(body: Any) -> list[str]:
    _require(isinstance(body, dict), "request body must be a JSON object")
    _require(isinstance(body.get("model"), str) and body["model"] != "", "'model' is required")
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    _require(
        isinstance(value, list) and len(value) > 0 and all(isinstance(v, str) for v in value),
        "'input' must be a string or a non-empty array of strings",
    )
    encoding = body.get("encoding_format", "float")
    _require(encoding in ("float", "base64"), "'encoding_format' must be 'float' or 'base64'")
    return list(value)


def _check_anthropic(body: Any) -> None:
    _require(isinstance(body, dict), "request body must be a JSON object")
    _require(isinstance(body.get("model"), str) and body["model"] != "", "model: Field required")
    _require(
        isinstance(body.get("max_tokens"), int) and not isinstance(body.get("max_tokens"), bool),
        "max_tokens: Field required",
    )
    messages = body.get("messages")
    _require(
        isinstance(messages, list) and len(messages) > 0,
        "messages: at least one message is required",
    )
    for i, message in enumerate(messages):
        _require(isinstance(message, dict), f"messages.{i}: must be an object")
        _require(
            message.get("role") in ("user", "assistant"),
            f"messages.{i}.role: Input should be 'user' or 'assistant'",
        )
        content = message.get("content")
        _require(isinstance(content, str | list), f"messages.{i}.content: Field required")
        if isinstance(content, list):
            for j, block in enumerate(content):
                _require(
                    isinstance(block, dict) and isinstance(block.get("type"), str),
                    f"messages.{i}.content.{j}.type: Field required",
                )
    system = body.get("system")
    _require(
        system is None or isinstance(system, str | list), "system: must be a string or an array"
    )
    tools = body.get("tools")
    if tools is not None:
        _require(isinstance(tools, list), "tools: must be an array")
        for i, tool in enumerate(tools):
            _require(
                isinstance(tool, dict) and isinstance(tool.get("name"), str),
                f"tools.{i}.name: Field required",
            )
            _require(
                isinstance(tool.get("input_schema"), dict),
                f"tools.{i}.input_schema: Field required",
            )
    _require(isinstance(body.get("stream", False), bool), "'stream' must be a boolean")


def _check_gemini(body: Any) -> None:
    _require(isinstance(body, dict), "Invalid JSON payload received.")
    contents = body.get("contents")
    _require(
        isinstance(contents, list) and len(contents) > 0,
        "* GenerateContentRequest.contents: contents is not specified",
    )
    for i, item in enumerate(contents):
        _require(isinstance(item, dict), f"contents[{i}] must be an object")
        _require(
            item.get("role", "user") in ("user", "model", "function"),
            f"contents[{i}].role: invalid role",
        )
        parts = item.get("parts")
        _require(
            isinstance(parts, list) and len(parts) > 0,
            f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.",
        )
        for j, part in enumerate(parts):
            _require(
                isinstance(part, dict) and len(part) > 0,
                f"contents[{i}].parts[{j}] must be a non-empty object",
            )
    tools = body.get("tools")
    if tools is not None:
        _require(isinstance(tools, list), "tools must be an array")
        for i, tool in enumerate(tools):
            _require(isinstance(tool, dict), f"tools[{i}] must be an object")
            declarations = tool.get("function_declarations", tool.get("functionDeclarations"))
            if declarations is not None:
                _require(
                    isinstance(declarations, list),
                    f"tools[{i}].function_declarations must be an array",
                )
                for j, declaration in enumerate(declarations):
                    _require(
                        isinstance(declaration, dict) and isinstance(declaration.get("name"), str),
                        f"tools[{i}].function_declarations[{j}].name is required",
                    )


# --------------------------------------------------------------------------------------------
# Response bodies per wire format
# --------------------------------------------------------------------------------------------

_STATUS_NAMES = {
    400: ("invalid_request_error", "INVALID_ARGUMENT"),
    401: ("authentication_error", "UNAUTHENTICATED"),
    403: ("permission_error", "PERMISSION_DENIED"),
    404: ("not_found_error", "NOT_FOUND"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED"),
    500: ("api_error", "INTERNAL"),
    503: ("overloaded_error", "UNAVAILABLE"),
    529: ("overloaded_error", "UNAVAILABLE"),
}


def _error_body(wire: str | None, status: int, message: str) -> dict[str, Any]:
    kind, google_status = _STATUS_NAMES.get(status, ("api_error", "UNKNOWN"))
    if wire == "anthropic":
        return {"type": "error", "error": {"type": kind, "message": message}}
    if wire == "gemini":
        return {"error": {"code": status, "message": message, "status": google_status}}
    openai_type = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status, kind)
    return {"error": {"message": message, "type": openai_type, "param": None, "code": None}}


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------

_GEMINI_ROUTE = re.compile(
    r"^/(v1beta|v1alpha|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$"
)


class _Handler(LoopbackHandler):
    server: _HTTPServer

    # -- plumbing ------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        """Status line, headers and body in ONE sendall (see the module docstring)."""
        reason = (
            http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else ""
        )
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            f"Date: {self.date_time_string()}",
            "Server: knowngood-fakeprovider",
        ]
        lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
        if self.close_connection:
            lines.append("Connection: close")
        else:
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)
        self.wfile.flush()

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _route(self, method: str, path: str) -> tuple[str | None, str | None, str | None]:
        """(wire, endpoint, model-from-path)."""
        if path == "/v1/chat/completions" and method == "POST":
            return "openai", "chat", None
        if path == "/v1/embeddings" and method == "POST":
            return "openai", "embeddings", None
        if path == "/v1/models" and method == "GET":
            return "openai", "models", None
        if path == "/v1/messages" and method == "POST":
            return "anthropic", "messages", None
        match = _GEMINI_ROUTE.match(path)
        if match and method == "POST":
            return "gemini", match.group(3), match.group(2)
        return None, None, None

    # -- one request ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        server = self.server.owner
        path, _, query = self.path.partition("?")
        wire, endpoint, path_model = self._route(self.command, path)
        early = server._next_fault_before_body()
        if early is not None:  # the request counts as received: its headers are in
            record = RecordedRequest(
                method=self.command,
                path=path,
                query=query,
                headers={k.lower(): v for k, v in self.headers.items()},
                raw=b"",
                body=None,
                wire=wire,
                endpoint=endpoint,
            )
            server._record(record)
            self._apply_fault(early, record)
            return
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            body, bad_json = None, True
        record = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers={k.lower(): v for k, v in self.headers.items()},
            raw=raw,
            body=body,
            wire=wire,
            endpoint=endpoint,
        )
        server._record(record)

        fault = server._next_fault(record)
        if fault is not None and self._apply_fault(fault, record):
            return
        status, payload = self._answer(record, path_model, bad_json)
        if isinstance(payload, Fault):  # the responder asked for a fault
            if self._apply_fault(payload, record):
                return
            status, payload = self._answer(
                record, path_model, bad_json, reply=echo_responder(record.wire or "", record.body)
            )
        record.status = status
        if status == 200 and _streamed(record):
            self._send_stream(_stream_events(record, payload), record.fault)
            return
        self._send_json(status, payload)

    def _send_stream(self, events: list[bytes], fault: Fault | None) -> None:
        """Server-sent events in chunked transfer encoding; ``fault`` cuts or stalls them."""
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            f"Transfer-Encoding: chunked\r\nDate: {self.date_time_string()}\r\n"
            "Server: knowngood-fakeprovider\r\nConnection: keep-alive\r\n\r\n"
        )
        self.wfile.write(head.encode("latin-1"))
        self.wfile.flush()
        stop = self.server.owner._stop
        for i, event in enumerate(events):
            if fault is not None and fault.cut_after == i:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            if fault is not None and fault.stall_after == i:
                stop.wait(fault.hang_s)
                self.close_connection = True
                return
            self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _apply_fault(self, fault: Fault, record: RecordedRequest) -> bool:
        """Play ``fault``; True when it answered (or dropped) the request."""
        server = self.server.owner
        record.fault = fault
        if fault.latency_ms and server._stop.wait(fault.latency_ms / 1000.0):
            self.close_connection = True  # the server is closing
            return True
        if fault.hang:
            server._stop.wait(fault.hang_s)
            self.close_connection = True
            return True
        if fault.reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            if fault.before_body:  # RST now: socketserver would send a FIN first (SHUT_WR)
                self.wfile.close()
                self.rfile.close()
                self.connection.close()
            return True
        if fault.malformed:
            record.status = 200
            self._send(200, b'{"id": "broken", "choices": [{"message": {"content": "tru')
            return True
        if fault.status is not None:
            headers = dict(fault.headers)
            body = _error_body(
                record.wire, fault.status, fault.message or f"fake {fault.status} error"
            )
            if fault.retry_after_s is not None:
                value = float(fault.retry_after_s)
                shown = str(int(value)) if value.is_integer() else str(value)
                if fault.retry_in_body and record.wire == "gemini":
                    retry = {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{shown}s",
                    }
                    body["error"]["details"] = [retry]
                else:
                    headers["Retry-After"] = shown
            record.status = fault.status
            self._send_json(fault.status, body, headers)
            return True
        return False  # latency only: answer normally

    def _answer(
        self,
        record: RecordedRequest,
        path_model: str | None,
        bad_json: bool,
        reply: Reply | None = None,
    ) -> tuple[int, Any]:
        server = self.server.owner
        wire, endpoint, body = record.wire, record.endpoint, record.body
        if wire is None or endpoint is None:
            return 404, _error_body(None, 404, f"Unknown route {self.command} {record.path}")
        auth_error = server._check_auth(wire, record)
        if auth_error:
            return 401, _error_body(wire, 401, auth_error)
        if endpoint == "models":
            return 200, {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "knowngood-fake"}
                    for name in server.models
                ],
            }
        if bad_json or body is None:
            return 400, _error_body(wire, 400, "We could not parse the JSON body of your request.")
        if endpoint == "embeddings":
            try:
                texts = _check_openai_embeddings(body)
            except _BadRequest as e:
                return 400, _error_body(wire, 400, str(e))
            return 200, server._embeddings(body, texts)
        try:
            _validate(wire, endpoint, body)
        except _BadRequest as e:
            return 400, _error_body(wire, 400, str(e))
        if reply is None:
            answer = server.responder(wire, body)
            if isinstance(answer, Fault):
                return 0, answer
            reply = Reply(text=answer) if isinstance(answer, str) else answer
        if reply.latency_ms and server._stop.wait(reply.latency_ms / 1000.0):
            return 503, _error_body(wire, 503, "fake server closing")
        model = reply.model or (path_model if wire == "gemini" else body["model"]) or "unknown"
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = max(1, _words(body.get("contents" if wire == "gemini" else "messages")))
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = max(
                1, _words(reply.text) + sum(_words(c.args_text()) + 1 for c in reply.tool_calls)
            )
        return 200, server._render(wire, reply, model, prompt_tokens, completion_tokens)


def _streamed(record: RecordedRequest) -> bool:
    if record.endpoint == "streamGenerateContent":
        return True
    return (
        record.endpoint in ("chat", "messages")
        and isinstance(record.body, dict)
        and record.body.get("stream") is True
    )


def _pieces(text: str) -> list[str]:
    """The text in word-sized pieces (spaces kept) that join back to it."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data)
    return f"{head}data: {body}\n\n".encode()


def _stream_events(record: RecordedRequest, response: dict[str, Any]) -> list[bytes]:
    """The events that stream ``response`` (the non-streamed answer) in ``record``'s wire."""
    if record.wire == "anthropic":
        return _anthropic_events(response)
    if record.wire == "gemini":
        return _gemini_events(response)
    body = record.body if isinstance(record.body, dict) else {}
    usage_wanted = bool((body.get("stream_options") or {}).get("include_usage"))
    return _openai_events(response, usage_wanted)


def _openai_events(response: dict[str, Any], usage_wanted: bool) -> list[bytes]:
    choice = response["choices"][0]
    message = choice["message"]
    base = {k: response[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    events = [chunk({"role": "assistant", "content": ""})]
    if message.get("content"):
        events += [chunk({"content": piece}) for piece in _pieces(message["content"])]
    for i, call in enumerate(message.get("tool_calls") or []):
        events.append(chunk({"tool_calls": [{"index": i, **call}]}))
    events.append(chunk({}, choice["finish_reason"]))
    if usage_wanted:
        events.append(_sse({**base, "choices": [], "usage": response["usage"]}))
    events.append(_sse("[DONE]"))
    return events


def _anthropic_events(response: dict[str, Any]) -> list[bytes]:
    start = {**response, "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": response["usage"]["input_tokens"], "output_tokens": 1}
    events = [_sse({"type": "message_start", "message": start}, "message_start")]
    for i, block in enumerate(response["content"]):
        if block["type"] == "text":
            events.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {"type": "text", "text": ""},
                    },
                    "content_block_start",
                )
            )
            for piece in _pieces(block["text"]):
                delta = {"type": "text_delta", "text": piece}
                events.append(
                    _sse(
                        {"type": "content_block_delta", "index": i, "delta": delta},
                        "content_block_delta",
                    )
                )
        else:
            events.append(
                _sse(
                    {
                        "type": "content_block_start",
                        "index": i,
                        "content_block": {**block, "input": {}},
                    },
                    "content_block_start",
                )
            )
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events.append(
                _sse(
                    {"type": "content_block_delta", "index": i, "delta": delta},
                    "content_block_delta",
                )
            )
        events.append(_sse({"type": "content_block_stop", "index": i}, "content_block_stop"))
    events.append(
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": response["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": response["usage"]["output_tokens"]},
            },
            "message_delta",
        )
    )
    events.append(_sse({"type": "message_stop"}, "message_stop"))
    return events


def _gemini_events(response: dict[str, Any]) -> list[bytes]:
    candidate = response["candidates"][0]
    parts = candidate["content"]["parts"]
    events = []
    texts = [p["text"] for p in parts if "text" in p]
    pieces = _pieces("".join(texts)) if texts else []
    for piece in pieces:
        events.append(
            {"candidates": [{"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}]}
        )
    calls = [p for p in parts if "functionCall" in p]
    if calls or not events:
        events.append({"candidates": [{"content": {"role": "model", "parts": calls}, "index": 0}]})
    last = events[-1]["candidates"][0]
    last["finishReason"] = candidate["finishReason"]
    events[-1]["usageMetadata"] = response["usageMetadata"]
    events[-1]["modelVersion"] = response["modelVersion"]
    return [_sse(e) for e in events]


def _validate(wire: str, endpoint: str, body: Any) -> None:
    if wire == "openai" and endpoint == "chat":
        _check_openai_chat(body)
    elif wire == "anthropic":
        _check_anthropic(body)
    elif wire == "gemini":
        _check_gemini(body)


class _HTTPServer(LoopbackServer):
    def __init__(self, owner: FakeProvider) -> None:
        super().__init__(owner, _Handler)


class FakeProvider:
    """A loopback server speaking the OpenAI, Anthropic and Gemini wire formats on one port."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        fault_hook: FaultHook | None = None,
        embedder: Embedder | None = None,
        require_key: str | None = None,
        models: Sequence[str] = ("fake-model",),
    ) -> None:
        self.responder: Responder = responder or echo_responder
        self.fault_hook = fault_hook
        self.embedder: Embedder = embedder or default_embedder
        self.require_key = require_key  # when set: requests without this key get 401
        self.models = list(models)
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ids = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeProvider:
        if self._httpd is not None:
            return self
        self._stop.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fakeprovider-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stop.set()  # wakes hanging and slow handlers
        httpd.shutdown()
        httpd.shutdown_connections()  # wakes handlers idling on keep-alive reads
        httpd.server_close()  # closes the listening socket, joins handler threads
        if thread is not None:
            thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- addresses -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base(self) -> str:
        return self.url

    @property
    def gemini_base(self) -> str:
        return f"{self.url}/v1beta"

    def base_for(self, wire: str) -> str:
        return {
            "openai": self.openai_base,
            "anthropic": self.anthropic_base,
            "gemini": self.gemini_base,
        }[wire]

    # -- scripting -----------------------------------------------------------------------

    def push_faults(self, *faults: Fault) -> None:
        """Queue faults; each incoming request takes the next one (then requests succeed)."""
        with self._lock:
            self.faults.extend(faults)

    def _next_fault_before_body(self) -> Fault | None:
        with self._lock:
            if self.faults and self.faults[0].before_body:
                return self.faults.popleft()
        return None

    def _next_fault(self, record: RecordedRequest) -> Fault | None:
        with self._lock:
            if self.faults:
                return self.faults.popleft()
        return self.fault_hook(record) if self.fault_hook else None

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def reset(self) -> None:
        """Forget recorded requests and queued faults."""
        with self._lock:
            self.requests.clear()
            self.faults.clear()

    # -- assertions helpers --------------------------------------------------------------

    def count(self, wire: str | None = None, endpoint: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (wire is None or r.wire == wire) and (endpoint is None or r.endpoint == endpoint)
            )

    @property
    def last(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def leaks(self, secret: str) -> list[str]:
        """Where ``secret`` was sent other than in the provider's own auth header.

        Allowed: ``Authorization: Bearer <secret>`` (OpenAI; Anthropic OAuth tokens),
        ``x-api-key`` (Anthropic), ``x-goog-api-key`` (Gemini). Anything else -- the URL, the
        body, another header -- is returned as ``"<path>: <where>"``.
        """
        allowed = {"authorization", "x-api-key", "x-goog-api-key"}
        found = []
        with self._lock:
            requests = list(self.requests)
        for r in requests:
            if secret in r.path or secret in r.query:
                found.append(f"{r.path}: url")
            if secret.encode() in r.raw:
                found.append(f"{r.path}: body")
            for name, value in r.headers.items():
                if secret in value and name not in allowed:
                    found.append(f"{r.path}: header {name}")
        return found

    def _check_auth(self, wire: str, record: RecordedRequest) -> str | None:
        if self.require_key is None:
            return None
        headers = record.headers
        sent = {
            "openai": headers.get("authorization", "").removeprefix("Bearer "),
            "anthropic": headers.get("x-api-key")
            or headers.get("authorization", "").removeprefix("Bearer "),
            "gemini": headers.get("x-goog-api-key", ""),
        }[wire]
        if sent != self.require_key:
            return "Incorrect API key provided."  # never echo what was sent
        return None

    # -- rendering -----------------------------------------------------------------------

    def _embeddings(self, body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        base64_out = body.get("encoding_format") == "base64"
        data = []
        for i, text in enumerate(texts):
            vector = self.embedder(text)
            embedding: Any = vector
            if base64_out:
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(max(1, _words(t)) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _render(
        self, wire: str, reply: Reply, model: str, prompt_tokens: int, completion_tokens: int
    ) -> dict[str, Any]:
        n = self._next_id()
        if wire == "openai":
            tool_calls = [
                {
                    "id": call.id or f"call_{n}_{i}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.args_text()},
                }
                for i, call in enumerate(reply.tool_calls)
            ]
            message: dict[str, Any] = {
                "role": "assistant",
                "content": reply.text if reply.text or not tool_calls else None,
                "refusal": None,
            }
            if tool_calls:
                message["tool_calls"] = tool_calls
            return {
                "id": f"chatcmpl-fake{n}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": reply.finish_reason
                        or ("tool_calls" if tool_calls else "stop"),
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
                "system_fingerprint": "fp_fake",
            }
        if wire == "anthropic":
            content: list[dict[str, Any]] = []
            if reply.text or not reply.tool_calls:
                content.append({"type": "text", "text": reply.text})
            for i, call in enumerate(reply.tool_calls):
                content.append(
                    {
                        "type": "tool_use",
                        "id": call.id or f"toolu_fake{n}_{i}",
                        "name": call.name,
                        "input": call.args(),
                    }
                )
            return {
                "id": f"msg_fake{n}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": reply.finish_reason
                or ("tool_use" if reply.tool_calls else "end_turn"),
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            }
        parts: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            parts.append({"text": reply.text})
        for call in reply.tool_calls:
            parts.append({"functionCall": {"name": call.name, "args": call.args()}})
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": parts},
                    "finishReason": reply.finish_reason or "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            },
            "modelVersion": model,
            "responseId": f"fake{n}",
        }


@contextlib.contextmanager
def serve(responder: Responder | None = None, **kwargs: Any) -> Iterator[FakeProvider]:
    """``with serve() as server:`` -- or, in a fixture, ``with serve() as s: yield s``."""
    server = FakeProvider(responder, **kwargs)
    with server:
        yield server
