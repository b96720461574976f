"""A real headless Chromium driven over the Chrome DevTools Protocol (no Selenium, no Playwright).

:class:`Browser` starts ``chromium --headless=new --remote-debugging-port=0`` with a throwaway
profile, reads the DevTools websocket URL from its stderr, and :meth:`Browser.visit` opens one
page in a new target over aiohttp's websocket client: every request the page makes is paused
(``Fetch``) and only ``file:``/``data:``/``about:`` ones go on, the others are failed and
counted; console errors, uncaught exceptions and log errors are collected; when the page has
loaded, ``script`` is evaluated in it and its value returned (JSON-serialisable).

Chromium's own background traffic is switched off by flags; what the tests judge is the page's.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
LOCAL_SCHEMES = ("file:", "data:", "about:")
START_TIMEOUT_S = 30.0
PAGE_TIMEOUT_S = 30.0
_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")
FLAGS = (
    "--headless=new",
    "--remote-debugging-port=0",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--metrics-recording-only",
    "--allow-file-access-from-files",
)


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    """The browser's path; the test is skipped, saying why, when it is not installed."""
    found = find_chromium()
    if found is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it): "
            "the report's browser tests need a real headless browser"
        )
    return found


@dataclass
class Visit:
    """What one page did while it loaded."""

    url: str
    value: Any = None
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    blocked: list[str] = field(default_factory=list)  # the ones that would have left the machine

    @property
    def problems(self) -> list[str]:
        return (
            [f"console error: {m}" for m in self.console_errors]
            + [f"exception: {m}" for m in self.exceptions]
            + [f"blocked request: {u}" for u in self.blocked]
        )


class Browser:
    """One headless Chromium for a test module; stopped (its process group) by :meth:`close`."""

    def __init__(self, executable: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self.log = profile / "stderr.log"
        args = [executable, *FLAGS, f"--user-data-dir={profile}"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to sandbox as root
        with self.log.open("wb") as err:
            self.process = subprocess.Popen(
                [*args, "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        self.endpoint = self._endpoint()
        self._ids = itertools.count(1)

    def _endpoint(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            found = _DEVTOOLS.search(self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"chromium gave no DevTools URL; its stderr:\n{self.log.read_text()}")

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def visit(self, url: str, script: str = "null") -> Visit:
        return asyncio.run(asyncio.wait_for(self._visit(url, script), PAGE_TIMEOUT_S))

    async def _visit(self, url: str, script: str) -> Visit:
        visit = Visit(url)
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(self.endpoint, max_msg_size=0) as ws,
        ):
            session = _Session(ws, self._ids, visit)
            target = (await session.call("Target.createTarget", url="about:blank"))["targetId"]
            attached = await session.call("Target.attachToTarget", targetId=target, flatten=True)
            session.session_id = attached["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                await session.call(f"{domain}.enable")
            await session.call("Fetch.enable", patterns=[{"urlPattern": "*"}])
            session.loaded.clear()
            await session.call("Page.navigate", url=url)
            await session.loaded.wait()
            result = await session.call(
                "Runtime.evaluate", expression=script, returnByValue=True, awaitPromise=True
            )
            if "exceptionDetails" in result:
                raise AssertionError(f"script failed: {result['exceptionDetails']}")
            visit.value = result["result"].get("value")
            session.session_id = None
            await session.call("Target.closeTarget", targetId=target)
        return visit


class _Session:
    """Commands and events over one websocket; a flat session once ``session_id`` is set."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, ids: Iterator[int], visit: Visit):
        self.ws = ws
        self.ids = ids
        self.visit = visit
        self.session_id: str | None = None
        self.loaded = asyncio.Event()
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params}
        if self.session_id:
            message["sessionId"] = self.session_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        await self.ws.send_json(message)
        return await future

    async def _read(self) -> None:
        async for frame in self.ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = frame.json()
            if "id" in message and message["id"] in self.pending:
                future = self.pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(AssertionError(f"CDP error: {message['error']}"))
                else:
                    future.set_result(message.get("result", {}))
            elif "method" in message:
                await self._event(message["method"], message.get("params", {}))

    async def _event(self, method: str, params: dict[str, Any]) -> None:
        visit = self.visit
        if method == "Page.loadEventFired":
            self.loaded.set()
        elif method == "Fetch.requestPaused":
            url = params["request"]["url"]
            if url.startswith(LOCAL_SCHEMES):
                await self._send("Fetch.continueRequest", requestId=params["requestId"])
            else:
                visit.blocked.append(url)
                await self._send(
                    "Fetch.failRequest",
                    requestId=params["requestId"],
                    errorReason="BlockedByClient",
                )
        elif method == "Network.requestWillBeSent":
            visit.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            visit.console_errors.append(
                " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            )
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            visit.exceptions.append(
                str(details.get("exception", {}).get("description") or details.get("text"))
            )
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            visit.console_errors.append(f"{entry.get('text')} ({entry.get('url', '')})")

    async def _send(self, method: str, **params: Any) -> None:
        """A command whose answer nobody waits for (sent from the reader itself)."""
        message = {"id": next(self.ids), "method": method, "params": params}
        if self.session_id:
            message["sessionId"] = self.session_id
        await self.ws.send_json(message)


@contextmanager
def browser(profile: Path) -> Iterator[Browser]:
    """A headless Chromium (skips the test when none is installed), closed on exit."""
    running = Browser(require_chromium(), profile)
    try:
        yield running
    finally:
        running.close()
