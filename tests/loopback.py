"""The HTTP server under the loopback fakes (providers, GitHub): 127.0.0.1 on a free port,
every handler thread joined on close, and open connections tracked so close() can end them."""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from typing import Any


class LoopbackServer(http.server.ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close(): no thread outlives the server
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, owner: Any, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), handler)

    def track(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def shutdown_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-request (timeouts, resets) are expected here; real handler
        # bugs still surface as a wrong status or a missing record in the test that hit them.
        pass


class LoopbackHandler(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive with TCP_NODELAY (no Nagle stalls), tracked by the server, quiet;
    every method goes to ``_dispatch``."""

    protocol_version = "HTTP/1.1"
    server: LoopbackServer
    timeout = 30  # idle keep-alive connections give up after this (close() wakes them earlier)

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()
