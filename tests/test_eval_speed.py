"""What makes `knowngood eval` fast, checked as behaviour (no timings: benchmarks print those).

litellm is imported before the run's event loop starts; its synchronous half runs on the loop's
thread; no tokenizer is loaded for calls; calls spread over forked lanes give the same results,
counts and budget as one process, and no lane outlives the run; package metadata is read only
for --version; JSON goes compact to a program and indented to a person.

Real litellm over real HTTP to the loopback fake provider (tests/fakeproviders.py). Runs that
fork lanes happen in a child process: pytest's process has threads (the fake servers'), and
knowngood never forks while another thread runs."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from evalutil import KEYS, MAX_OUTPUT, greedy, make_repo
from fakeproviders import FakeProvider, Reply

from pipeline.cli import main
from pipeline.evals import providers, trims
from pipeline.evals.providers import ProviderSpec

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "KG_SPEED_KEY"
SECRET = "sk-kgspeed-0123456789abcdef"  # knowngood: allow-secret


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)


def acme(wire: str, body: dict[str, Any]) -> Reply:
    return Reply(text="Hello from Acme! It ships today.")


def slow_acme(wire: str, body: dict[str, Any]) -> Reply:
    return Reply(text="Hello from Acme! It ships today.", latency_ms=150)


def suite_of(n: int) -> str:
    cases = "".join(
        f"  - id: c{i}\n    input: question {i}\n"
        f"    expect: [{{contains: {'Globex' if i % 10 == 9 else 'Acme'}}}, {{regex: 'ships'}}]\n"
        for i in range(n)
    )
    return f"agent: shop\nvars: {{customer: Ann}}\ncases:\n{cases}"


def bench_repo(tmp_path: Path, server: FakeProvider, n: int, extra_eval: str = "") -> Path:
    return make_repo(
        tmp_path, server, suites={"evals/shop/pr.yaml": suite_of(n)}, extra_eval=extra_eval
    )


def knowngood(
    *args: str, env: dict[str, str] | None = None, prelude: str = "", epilogue: str = ""
) -> subprocess.CompletedProcess[str]:
    """`knowngood ARGS` in a child process (this checkout's pipeline), stdout to a pipe."""
    script = (
        f"import sys\n{prelude}\nfrom pipeline.cli import main\n"
        f"code = main({list(args)!r})\n{epilogue}\nsys.exit(code)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def eval_args(root: Path, *more: str) -> list[str]:
    return ["eval", "--repo", str(root), "--suite", "pr", "--provider", "openai", *more]


# --- start-up: metadata and the litellm import ------------------------------------------------


def test_help_and_version_read_no_package_metadata_until_asked() -> None:
    """importlib.metadata scans every installed distribution (30-60 ms): only --version needs it."""
    probe = "print('metadata' if 'importlib.metadata' in sys.modules else 'none', file=sys.stderr)"
    helped = knowngood("--help", epilogue=probe)
    assert helped.returncode == 0, helped.stderr
    assert helped.stderr.strip().endswith("none")
    version = knowngood("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("knowngood, version ")
    import pipeline

    assert version.stdout.split()[-1] == pipeline.__version__ != ""


def test_litellm_is_imported_before_the_event_loop_starts(tmp_path: Path, keys: None) -> None:
    """No call waits for the import (seconds) inside the event loop."""
    prelude = (
        "import asyncio\nseen = []\n"
        "def hook(event, args):\n"
        "    if event == 'import' and args[0] == 'litellm':\n"
        "        seen.append(asyncio._get_running_loop() is not None)\n"
        "sys.addaudithook(hook)\n"
    )
    with FakeProvider(responder=acme) as server:
        root = bench_repo(tmp_path, server, 3)
        done = knowngood(
            *eval_args(root, "--no-cache"), prelude=prelude, epilogue="print(seen, file=sys.stderr)"
        )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[False]"


def test_a_fully_cached_run_imports_no_provider_layer_and_starts_no_event_loop(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=acme) as server:
        root = bench_repo(tmp_path, server, 3)
        assert main(eval_args(root)) == 0
        capsys.readouterr()
        probe = (
            "heavy = ('litellm', 'pipeline.evals.providers', 'importlib.metadata', 'asyncio')\n"
            "print([m for m in heavy if m in sys.modules], file=sys.stderr)"
        )
        done = knowngood(*eval_args(root, "--format", "json"), epilogue=probe)
        seen = server.count()
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"
    assert results_of(done)["summary"]["cache_hits"] == 3 and seen == 3


# --- litellm's per-call work ------------------------------------------------------------------


def test_litellms_synchronous_half_runs_on_the_loops_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """For handlers that take knowngood's client, litellm's run_in_executor makes no thread."""
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeProvider(responder=acme) as server:
        spec = ProviderSpec("openai", "openai/gpt-4o-mini", server.openai_base, KEY_ENV)

        async def calls() -> tuple[list[str], list[str]]:
            try:
                texts = [
                    (
                        await providers.complete(
                            spec, [{"role": "user", "content": "hi"}], None, {}, 5
                        )
                    ).text
                    for _ in range(3)
                ]
                threads = [t.name for t in threading.enumerate() if t.name.startswith("asyncio")]
                return texts, threads
            finally:
                await providers.aclose()

        texts, threads = asyncio.run(calls())
    assert texts == ["Hello from Acme! It ships today."] * 3
    assert threads == []


def test_inline_executor_hands_everything_else_to_its_threads() -> None:
    async def run() -> tuple[str, str, str]:
        loop = asyncio.get_running_loop()
        assert trims.install_executor(loop)
        here = threading.current_thread().name
        with trims.inline_first_submit():
            first = await loop.run_in_executor(None, lambda: threading.current_thread().name)
            second = await loop.run_in_executor(None, lambda: threading.current_thread().name)
        other = await asyncio.to_thread(lambda: threading.current_thread().name)
        assert first == here
        return first, second, other

    first, second, other = asyncio.run(run())
    assert second != first and other != first


def test_no_tokenizer_is_loaded_for_calls_whose_provider_reports_usage(
    tmp_path: Path, keys: None
) -> None:
    """litellm fetches tiktoken's cl100k_base for every chat call (~0.2 s to load), unused here;
    a budget bounds costs from bytes and prices, not tokens (pipeline/evals/budget.py)."""
    loaders = ("tiktoken.load", "tiktoken_ext.openai_public")  # what loading an encoding imports
    probe = f"print([m for m in {loaders!r} if m in sys.modules], file=sys.stderr)"
    with FakeProvider(responder=acme) as server:
        root = bench_repo(tmp_path, server, 3)
        done = knowngood(*eval_args(root, "--no-cache", "--budget", "1"), epilogue=probe)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_the_deferred_tokenizer_is_the_real_one_on_first_use() -> None:
    providers.ready()
    import litellm.main

    stand_in = litellm.main._get_encoding()
    real = litellm.main._load_default_encoding()
    assert isinstance(stand_in, trims.LazyTokenizer)
    assert stand_in.encode("hello world") == real.encode("hello world")
    assert stand_in.loaded()


# --- lanes ------------------------------------------------------------------------------------


class InFlight:
    """Counts the requests a fake provider is answering at once (its handler threads)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def responder(self, text: str, seconds: float) -> Any:
        def answer(wire: str, body: dict[str, Any]) -> Reply:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(seconds)
            with self._lock:
                self.now -= 1
            return Reply(text=text)

        return answer


def results_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_calls_spread_over_processes_give_the_same_results_counts_and_costs(
    tmp_path: Path, keys: None
) -> None:
    with FakeProvider(responder=acme) as server:
        root = bench_repo(tmp_path, server, 40)
        one = knowngood(*eval_args(root, "--no-cache", "--format", "json", "--processes", "1"))
        seen_one = server.count()
        three = knowngood(*eval_args(root, "--no-cache", "--format", "json", "--processes", "3"))
        seen_three = server.count() - seen_one
    assert one.returncode == three.returncode == 1, three.stderr  # every tenth case fails
    a, b = results_of(one), results_of(three)
    keep = ("case", "status", "cost_usd", "prompt_tokens", "completion_tokens")
    assert [{k: c[k] for k in keep} for c in a["cases"]] == [
        {k: c[k] for k in keep} for c in b["cases"]
    ]
    assert a["summary"] == b["summary"]
    assert a["summary"]["calls"] == b["summary"]["calls"] == seen_one == seen_three == 40


def test_every_lane_serves_calls_and_none_outlives_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through fork_lanes directly, as the runner uses it, in a child process (no threads)."""
    script = """
import asyncio, json, os, sys
from pipeline.evals import lanes, providers
providers.ready()
spec = providers.ProviderSpec("p", "openai/gpt-4o-mini", sys.argv[1], "KG_SPEED_KEY")
run = lanes.fork_lanes(providers, 2)
pids = [r.pid for r in run.remotes]
async def main():
    await run.start()
    sem = asyncio.Semaphore(8)  # the Sender's calls in progress: twice the slots
    async def one(i):
        async with sem:
            return await run.complete(spec, [{"role": "user", "content": str(i)}], None, {}, 5, 4)
    try:
        return await asyncio.gather(*(one(i) for i in range(30)))
    finally:
        await run.aclose()
        await providers.aclose()
try:
    done = asyncio.run(main())
finally:
    run.stop()
print(json.dumps({"texts": sorted({d.text for d in done}), "served": run.served, "pids": pids,
                  "requests": sum(d.requests for d in done)}))
"""
    monkeypatch.setenv(KEY_ENV, SECRET)
    meter = InFlight()
    with FakeProvider(responder=meter.responder("hi", 0.02)) as server:
        done = subprocess.run(
            [sys.executable, "-c", script, server.openai_base],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        seen = server.count()
    assert done.returncode == 0, done.stderr
    # the provider's 4 slots, shared by three processes, are never exceeded; whether all four
    # are in flight at one instant depends on the machine's load, so that is not asserted
    assert 2 <= meter.most <= 4
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["texts"] == ["hi"]
    assert out["requests"] == seen == 30
    assert len(out["served"]) == 3 and all(n > 0 for n in out["served"]), out["served"]
    assert sum(out["served"]) == 30
    for pid in out["pids"]:
        assert not Path(f"/proc/{pid}").exists()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "children") as f:
            found += [int(x) for x in f.read().split()]
    return found


def python(script: str) -> subprocess.CompletedProcess[str]:
    """``python -c script`` in this checkout, its output captured."""
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def _start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    script = f"import sys\nfrom pipeline.cli import main\nsys.exit(main({args!r}))\n"
    return subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def _lanes_of(proc: subprocess.Popen[str], server: FakeProvider, n: int) -> list[int]:
    """The eval's forked lanes, once the server has seen a request (they exist by then)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if server.count() > 0 and len(kids := _children(proc.pid)) >= n:
            return kids
        time.sleep(0.02)
    raise AssertionError(f"no {n} lanes (exit {proc.poll()}): {proc.stderr and proc.stderr.read()}")


@pytest.mark.skipif(sys.platform != "linux", reason="lanes are forked on Linux only")
def test_a_lane_that_dies_fails_only_its_calls_in_flight_which_are_retried(
    tmp_path: Path, keys: None
) -> None:
    with FakeProvider(responder=slow_acme) as server:
        root = bench_repo(tmp_path, server, 20, extra_eval="  budget_usd: 1\n")
        proc = _start(
            eval_args(root, "--no-cache", "--format", "json", "--processes", "2", "-j", "4")
        )
        (lane,) = _lanes_of(proc, server, 1)
        os.kill(lane, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
        seen = server.count()
    assert proc.returncode == 1, err  # the two failing cases; every other one passed
    results = json.loads(out)
    assert {c["status"] for c in results["cases"]} == {"pass", "fail"}
    assert [c["case"] for c in results["cases"] if c["status"] == "fail"] == ["c9", "c19"]
    summary = results["summary"]
    # the killed lane's calls in flight count as sent (they may have been) and were sent again
    assert seen <= summary["calls"]
    assert summary["calls"] > 20
    assert "lost their answer" in " ".join(results["notices"])


@pytest.mark.skipif(sys.platform != "linux", reason="lanes are forked on Linux only")
def test_ctrl_c_stops_the_run_and_its_lanes(tmp_path: Path, keys: None) -> None:
    with FakeProvider(responder=slow_acme) as server:
        root = bench_repo(tmp_path, server, 40)
        proc = _start(eval_args(root, "--no-cache", "--processes", "2", "-j", "2"))
        lanes = _lanes_of(proc, server, 1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    for pid in lanes:
        assert not Path(f"/proc/{pid}").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="lanes are forked on Linux only")
def test_the_budget_stays_a_hard_cap_across_processes(tmp_path: Path, keys: None) -> None:
    with FakeProvider(responder=greedy) as server:
        root = bench_repo(tmp_path, server, 12)
        done = knowngood(
            *eval_args(root, "--format", "json", "--budget", "0.05", "-j", "4", "--processes", "3")
        )
        seen = server.count()
    assert done.returncode == 3, done.stderr
    summary = results_of(done)["summary"]
    # each answer costs ~$0.0098: five fit in $0.05, whichever process sent them
    assert summary["calls"] == seen == 5
    assert summary["cost_usd"] <= 0.05
    assert 0.05 - summary["cost_usd"] < MAX_OUTPUT * 0.6e-6


# --- output -----------------------------------------------------------------------------------


def test_json_is_compact_for_a_program_and_indented_for_a_person(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=acme) as server:
        root = bench_repo(tmp_path, server, 3)
        assert main(eval_args(root)) == 0
    capsys.readouterr()
    piped = knowngood(*eval_args(root, "--offline", "--format", "json"))
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.count("\n") == 1 and '":' in piped.stdout and '": ' not in piped.stdout
    # a terminal: indented
    leader, follower = pty.openpty()
    script = (
        "import sys\nfrom pipeline.cli import main\n"
        f"sys.exit(main({eval_args(root, '--offline', '--format', 'json')!r}))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=follower, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    shown = b"".join(chunks).decode()
    assert '\n  "summary": {' in shown.replace("\r\n", "\n")
    assert json.loads(shown)["cases"] == json.loads(piped.stdout)["cases"]


def test_the_results_median_is_statistics_median() -> None:
    """results.py computes medians itself: importing statistics costs a warm run ~5 ms."""
    import random
    import statistics

    from pipeline.evals.results import _median

    rnd = random.Random(3)
    for _ in range(2000):
        values = [
            rnd.choice([rnd.random() * 1000, float(rnd.randint(0, 9))])
            for _ in range(rnd.randint(1, 9))
        ]
        assert _median(values) == statistics.median(values), values


@pytest.mark.parametrize("processes", ["1", "2"])
def test_at_most_j_requests_are_in_flight_while_the_next_calls_are_prepared(
    tmp_path: Path, keys: None, processes: str
) -> None:
    """-j bounds the requests the provider sees at once, whichever process sends them; the
    calls after them are prepared meanwhile (litellm's CPU is outside the request slots)."""
    meter = InFlight()
    with FakeProvider(responder=meter.responder("Hello from Acme! It ships today.", 0.05)) as srv:
        root = bench_repo(tmp_path, srv, 24)
        done = knowngood(*eval_args(root, "--no-cache", "-j", "3", "--processes", processes))
        seen = srv.count()
    assert done.returncode == 1, done.stderr  # c9 and c19 fail
    assert seen == 24
    assert meter.most == 3


def test_litellms_set_up_runs_before_the_loop_sends_nothing_and_is_frozen() -> None:
    """ready(models) imports litellm, runs its first-call set-up for those models (a mock
    completion: no socket is opened) and moves what it made out of the collector's sight."""
    script = (
        "import gc, sys\n"
        "connects = []\n"
        "sys.addaudithook(lambda e, a: connects.append(a) if e == 'socket.connect' else None)\n"
        "from pipeline.evals import providers\n"
        "before = gc.get_freeze_count()\n"
        "providers.ready(['openai/gpt-4o-mini', 'ollama/llama3'])\n"
        "import litellm.main\n"
        "from pipeline.evals.litellmload import WARMED\n"
        "print(before, gc.get_freeze_count() > 100000, sorted(WARMED), connects)\n"
    )
    done = python(script)
    assert done.returncode == 0, done.stderr
    # ollama's first call may ask its server for the model: it is left to the real call
    assert done.stdout.split("\n")[0] == "0 True ['openai'] []"


def test_litellms_import_is_frozen_before_the_collector_runs_again() -> None:
    """The import runs with the collector paused; what it loaded is frozen before the collector
    is switched back on, so the next collection does not walk litellm's objects (~0.12 s): the
    collector's generations hold a few objects, the permanent one hundreds of thousands."""
    script = (
        "import gc\n"
        "from pipeline.evals.litellmload import import_litellm\n"
        "import_litellm()\n"
        "seen = sum(len(gc.get_objects(generation)) for generation in (0, 1, 2))\n"
        "print(gc.get_freeze_count() > 100000, gc.isenabled(), seen < 20000)\n"
    )
    done = python(script)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]


def test_the_console_script_runs_exit_handlers_and_flushes_after_a_run_with_litellm(
    tmp_path: Path, keys: None
) -> None:
    """It ends the process itself (os._exit) once litellm was imported, after the exit
    handlers and with every byte of output written."""
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handlers ran', file=sys.stderr))\n"
        "from pipeline.cli import run\n"
        "run()\n"
    )
    with FakeProvider(responder=acme) as server:
        root = bench_repo(tmp_path, server, 12)
        done = subprocess.run(
            [sys.executable, "-c", script, *eval_args(root, "--no-cache", "--format", "json")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr  # c9 fails
    assert "exit handlers ran" in done.stderr
    assert len(results_of(done)["cases"]) == 12


def test_answers_cached_by_lanes_are_the_entries_one_process_writes(
    tmp_path: Path, keys: None
) -> None:
    def entries(root: Path) -> dict[str, dict[str, Any]]:
        found = {}
        for path in (root / ".knowngood" / "cache").rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                entry = json.loads(line)
                entry["value"].pop("latency_ms")  # each run measures its own
                found[entry["key"]] = entry["value"]
        return found

    with FakeProvider(responder=acme) as server:
        one = bench_repo(tmp_path / "one", server, 30)
        three = bench_repo(tmp_path / "three", server, 30)
        first = knowngood(*eval_args(one, "--processes", "1"))
        second = knowngood(*eval_args(three, "--processes", "3"))
        seen = server.count()
        again = knowngood(*eval_args(three, "--processes", "3", "--format", "json"))
        assert server.count() == seen == 60
    assert first.returncode == second.returncode == again.returncode == 1, second.stderr
    assert len(entries(one)) == 30
    assert entries(one) == entries(three)
    assert results_of(again)["summary"]["cache_hits"] == 30


def test_the_console_script_waits_for_a_running_thread_before_it_ends_the_process() -> None:
    """Ending the process itself skips the interpreter's join of non-daemon threads: with one
    still running, the console script exits the usual way."""
    script = (
        "import sys, threading, time\n"
        "sys.modules.setdefault('litellm', type(sys)('litellm'))  # as after a run with it\n"
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    print('thread finished', flush=True)\n"
        "threading.Thread(target=late).start()\n"
        "sys.argv = ['knowngood', '--version']\n"
        "from pipeline.cli import run\n"
        "run()\n"
    )
    done = python(script)
    assert done.returncode == 0, done.stderr
    assert "thread finished" in done.stdout
