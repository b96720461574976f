"""The last two stages of ``knowngood drill rebuild`` (:mod:`pipeline.deploy.rebuild_drill`):
start the clone's own ``knowngood serve`` until ``/readyz`` says ready, then ask each deployed
agent one question through it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.deploy.rebuild_drill import RebuildDrill

__all__ = ["Serve", "StageFailed", "answer"]

SERVE_TIMEOUT_S = 180.0
MESSAGE = "This is a knowngood rebuild drill. Answer with the single word OK."
_LISTENING = re.compile(r"listening on (http://\S+)")


class StageFailed(Exception):
    """A stage of the drill failed: the message says how."""


class Serve:
    def __init__(self, clone: Path, env: str, deployments: Path) -> None:
        self.argv = [
            str(clone / ".venv" / "bin" / "knowngood"), "serve", "--repo", str(clone),
            "--env", env, "--port", "0", "--deployments", str(deployments), "--no-backups",
        ]  # fmt: skip
        self.clone = clone
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.lines: list[str] = []
        self.reader: threading.Thread | None = None

    def start(self) -> str:
        self.proc = subprocess.Popen(
            self.argv, cwd=self.clone, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        found = threading.Event()
        self.reader = threading.Thread(target=self._read, args=(found,), daemon=True)
        self.reader.start()
        found.wait(SERVE_TIMEOUT_S)
        if not self.url:
            raise StageFailed("serve did not listen: " + "".join(self.lines)[-1500:])
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/readyz", timeout=5) as r,
            ):
                if r.status == 200:
                    return f"ready at {self.url}"
            time.sleep(0.1)
        raise StageFailed("serve never became ready")

    def _read(self, found: threading.Event) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if (m := _LISTENING.search(line)) and not found.is_set():
                self.url = m.group(1)
                found.set()
        found.set()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(35)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.reader is not None:
            self.reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def answer(url: str, clone: Path, scratch: Path, drill: RebuildDrill) -> str:
    from pipeline.runtime.auth import bearer

    key = bearer(clone)  # runtime.api_key_env: the clone's serve wants the key too
    for agent in drill.deployed:
        current = json.loads(
            (scratch / "deployments" / drill.env / agent / "current.json").read_text()
        )
        body = {
            "model": agent,
            "messages": [{"role": "user", "content": MESSAGE}],
            "vars": {name: "knowngood drill" for name in current.get("runtime_vars") or []},
        }
        request = urllib.request.Request(
            f"{url}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **key},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as r:
                answer = json.loads(r.read())
                provider = r.headers.get("X-Knowngood-Provider") or "?"
        except urllib.error.HTTPError as e:
            raise StageFailed(f"{agent}: HTTP {e.code}: {e.read()[:300]!r}") from e
        text = ((answer.get("choices") or [{}])[0].get("message") or {}).get("content")
        if not text:
            raise StageFailed(f"{agent}: an empty answer")
        drill.answered[agent] = provider
    return ", ".join(f"{a} by {p}" for a, p in drill.answered.items())
