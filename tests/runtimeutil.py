"""A released and deployed knowngood repository for the runtime tests, with its providers on
loopback fake servers, and a real ``knowngood serve`` subprocess to drive over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakeproviders import FakeProvider, RecordedRequest
from gitutil import commit_all, init_repo

from pipeline.git import Git

AGENT = "support"
KEY = "fake-key-0123456789abcdef"  # knowngood: allow-secret
ENV = {"FAKE_KEY": KEY}

# name -> (litellm model, wire of the fake server that plays it, key variable)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "primary": ("openai/fake-model", "openai", "FAKE_KEY"),
    "backup": ("anthropic/claude-fake", "anthropic", "FAKE_KEY"),
    "last": ("gemini/gemini-fake", "gemini", "FAKE_KEY"),
    "doomed": ("openai/fake-doomed", "openai", "FAKE_KEY"),
    "keyless": ("openai/fake-keyless", "openai", "UNSET_KEY"),
    "flaky": ("openai/fake-flaky", "openai", "FAKE_KEY"),
    "fragile": ("anthropic/claude-fragile", "anthropic", "FAKE_KEY"),
}

RESILIENCE = """\
resilience:
  timeout_s: 0.5
  slow_call_s: 0.4
  retries: 0
  circuit_breaker:
    window: 10
    minimum_calls: 4
    failure_rate: 0.5
    slow_call_rate: 1.0
    open_s: 1.0
    half_open_calls: 1
  on_all_down: error
"""
# The same, for providers that answer slowly on purpose: no timeout or slow call within 10 s.
STEADY = RESILIENCE.replace("timeout_s: 0.5", "timeout_s: 10").replace(
    "slow_call_s: 0.4", "slow_call_s: 10"
)


def settings_yaml(servers: Mapping[str, FakeProvider], extra: str = "") -> str:
    lines = ["version: 1", "providers:"]
    for name, server in servers.items():
        model, wire, var = PROVIDERS[name]
        lines.append(
            f"  {name}: {{model: {model}, api_base: '{server.base_for(wire)}', api_key_env: {var}}}"
        )
    lines += [
        "deploy:",
        "  target: {type: directory, path: .knowngood/deployments}",
        "  environments: [staging, production]",
    ]
    return "\n".join(lines) + "\n" + extra


def agent_yaml(chain: list[str], resilience: str = RESILIENCE, name: str = AGENT) -> str:
    fallbacks = ", ".join(chain[1:])
    return (
        f"name: {name}\nmodel:\n  provider: {chain[0]}\n  fallbacks: [{fallbacks}]\n"
        "  params: {max_tokens: 50}\n"
        "prompt:\n  system: prompts/system.md\n  vars: {company: Acme}\ntools: []\n" + resilience
    )


@dataclass
class World:
    root: Path
    servers: dict[str, FakeProvider]
    deployments: Path = field(init=False)

    def __post_init__(self) -> None:
        self.deployments = self.root / ".knowngood" / "deployments"

    @property
    def git(self) -> Git:
        return Git(self.root)

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def commit(self, message: str) -> str:
        return commit_all(self.root, message)

    def release(self) -> list[str]:
        from pipeline.release import create_releases

        return create_releases(self.git, self.root).created

    def deploy(
        self, agent: str = AGENT, version: str | None = None, env: str = "production"
    ) -> str:
        from pipeline.deploy import deploy

        out = deploy(self.git, self.root, agent, version=version, env=env)
        assert out.status == "deployed", out.message
        return out.content_hash

    def rollback(self, agent: str = AGENT, to: str | None = None, env: str = "production") -> None:
        from pipeline.deploy import rollback

        rollback(self.git, self.root, agent, env=env, to=to)

    def prompt(self, text: str, agent: str = AGENT) -> None:
        """A new prompt, committed and released."""
        self.write(f"agents/{agent}/prompts/system.md", text)
        self.commit(f"{agent}: prompt")
        assert self.release(), "nothing released"

    def current(self, agent: str = AGENT, env: str = "production") -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.deployments / env / agent / "current.json").read_text()
        )
        return data


def make_world(
    root: Path,
    servers: Mapping[str, FakeProvider],
    *,
    chain: list[str] | None = None,
    resilience: str = RESILIENCE,
    extra_settings: str = "",
    deploy: bool = True,
    agents: Mapping[str, tuple[list[str], str]] | None = None,
) -> World:
    """A repository whose agents (default: ``support`` over every server) are released and
    deployed to production. ``agents``: name -> (chain, resilience block)."""
    agents = agents or {AGENT: (chain or list(servers), resilience)}
    world = World(root, dict(servers))
    world.write("knowngood.yaml", settings_yaml(servers, extra_settings))
    for name, (agent_chain, agent_resilience) in agents.items():
        world.write(f"agents/{name}/agent.yaml", agent_yaml(agent_chain, agent_resilience, name))
        world.write(f"agents/{name}/prompts/system.md", "You work for {{ company }}.\n")
    world.write(".gitignore", ".knowngood/\n")
    init_repo(root)
    world.commit("agents")
    assert sorted(world.release()) == sorted(f"{name}/v0.1.0" for name in agents)
    if deploy:
        for name in agents:
            world.deploy(name)
    return world


def priced_world(
    root: Path,
    servers: Mapping[str, FakeProvider],
    agents: Mapping[str, tuple[list[str], str]],
) -> World:
    """:func:`make_world` with the OpenAI-wire providers named ``openai/gpt-4o-mini``, a model
    litellm has a price for ($0.15 per million prompt tokens, $0.60 per million completion
    tokens), so that answers cost something."""
    world = make_world(root, servers, deploy=False, agents=agents)
    settings = (root / "knowngood.yaml").read_text()
    world.write("knowngood.yaml", settings.replace("openai/fake-model", "openai/gpt-4o-mini"))
    world.commit("priced")
    assert world.release()
    for agent in agents:
        world.deploy(agent)
    return world


def system_text(wire: str, body: Mapping[str, Any]) -> str:
    """The system prompt a provider received, in any wire format."""
    if wire == "anthropic":
        system = body.get("system")
        if isinstance(system, list):
            return " ".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
        return str(system or "")
    if wire == "gemini":
        parts = (body.get("system_instruction") or body.get("systemInstruction") or {}).get("parts")
        if not parts:  # litellm puts it before the first user text for unknown models
            parts = ((body.get("contents") or [{}])[0].get("parts") or [])[:1]
        return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    messages = body.get("messages") or []
    return " ".join(
        str(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "system"
    )


def naming_responder(name: str) -> Callable[[str, dict[str, Any]], str]:
    """Answers ``<name>: <system prompt>`` so a test sees who served and which release."""

    def respond(wire: str, body: dict[str, Any]) -> str:
        return f"{name}: {system_text(wire, body)}"

    return respond


class Clock:
    """Arrival times (unix time, like the state store's) of the requests a fake server received,
    as its fault_hook; ``fault``: what every request gets while it is set."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.fault: Any = None  # a Fault for every request while set

    def __call__(self, record: RecordedRequest) -> Any:
        with self.lock:
            self.times.append(time.time())
        return self.fault

    def after(self, moment: float) -> int:
        with self.lock:
            return sum(1 for t in self.times if t > moment)


# -- knowngood serve as a subprocess ---------------------------------------------------------------

_LISTENING = re.compile(r"listening on (http://\S+)")


class Serve:
    """``python -m pipeline serve`` on a free port; ``url`` once it listens."""

    def __init__(self, root: Path, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.args = args
        self.env = {**os.environ, **ENV, **(env or {})}
        self.env.pop("OPENAI_API_KEY", None)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr_lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> Serve:
        cmd = [sys.executable, "-m", "pipeline", "serve", "--repo", str(self.root)]
        cmd += ["--port", "0", *self.args]
        self.proc = subprocess.Popen(
            cmd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        found = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                match = _LISTENING.search(line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()
            found.set()

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        found.wait(timeout_s)
        if not self.url:
            self.stop()
            raise AssertionError(f"serve did not start:\n{self.stderr}")
        return self

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._done()

    def _done(self) -> None:
        if self._reader is not None:
            self._reader.join(5)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self._done()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._done()
        return code

    def __enter__(self) -> Serve:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
) -> HttpAnswer:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(
        url,
        data=data,
        method=method or ("POST" if data is not None else "GET"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return HttpAnswer(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as e:
        return HttpAnswer(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def chat(url: str, text: str, agent: str = AGENT, **extra: Any) -> HttpAnswer:
    return http(
        f"{url}/v1/chat/completions",
        {"model": agent, "messages": [{"role": "user", "content": text}], **extra},
    )


def metric(url: str, name: str, **labels: str) -> float | None:
    """The value of one sample on serve's /metrics (``labels`` exactly, in any order), or None."""
    text = http(f"{url}/metrics").body.decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    sample = re.escape(name) + (re.escape("{" + want + "}") if labels else "")
    found = re.search(rf"^{sample} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def wait_for(condition: Callable[[], Any], timeout_s: float = 5.0, every_s: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(every_s)


@contextlib.contextmanager
def servers(*names: str, **kwargs: Any) -> Iterator[dict[str, FakeProvider]]:
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(FakeProvider(naming_responder(name), **kwargs))
            for name in names
        }


# A worker process that drives one breaker: argv = state store (file or URL), provider, outcome
# ("f" fails, anything else succeeds), calls, window. Prints "refused" if the breaker refuses a
# call, then the breaker's state.
BREAKER_WORKER = """
import sys
from pipeline.runtime.breaker import Breakers
from pipeline.runtime.settings import BreakerSettings
from pipeline.runtime.store import StateStore
store, provider, outcome, n, window = sys.argv[1:6]
settings = BreakerSettings(window=int(window), minimum_calls=4, failure_rate=0.5,
                           slow_call_rate=1.0, open_s=60, half_open_calls=1)
breakers = Breakers(StateStore(store))
for _ in range(int(n)):
    ticket = breakers.acquire(provider, settings)
    if ticket is None:
        print("refused"); break
    breakers.record(ticket, settings, failed=outcome == "f", slow=False)
print(breakers.state(provider))
"""


def breaker_worker(store: str, *args: str) -> subprocess.Popen[str]:
    """:data:`BREAKER_WORKER` on ``store`` with ``args`` (provider, outcome, calls, window)."""
    return subprocess.Popen(
        [sys.executable, "-c", BREAKER_WORKER, store, *args],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        text=True,
    )


def leave_at_once(
    url: str, text: str, headers: Mapping[str, str] | None = None, **extra: Any
) -> None:
    """Send a streaming request for ``text`` (and ``extra`` in its body), then reset the
    connection (SO_LINGER 0) before any answer."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": AGENT, "stream": True, "messages": [{"role": "user", "content": text}], **extra}
    ).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            + head
            + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
