"""`knowngood eval` end to end: real litellm over real HTTP to loopback servers that speak the
OpenAI, Anthropic and Gemini wire formats, with faults on demand."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evalutil import KEYS, make_repo, responder, run
from fakeproviders import FakeProvider, Fault, Reply
from jsonschema import Draft202012Validator

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider(responder=responder) as srv:
        yield srv


def statuses(results: dict[str, Any]) -> dict[str, str]:
    return {f"{c['suite']}/{c['case']}@{c['provider']}": c["status"] for c in results["cases"]}


def test_every_wire_format_and_tool_calls_normalised(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    code, results, err = run(
        root,
        capsys,
        "--junit",
        str(tmp_path / "junit.xml"),
        "--markdown",
        str(tmp_path / "summary.md"),
    )
    assert code == 0, err
    assert set(statuses(results).values()) == {"pass"}
    # the tool-call case ran on all three wire formats and litellm normalised each answer
    assert {k for k in statuses(results) if k.startswith("pr/tool")} == {
        "pr/tool@openai",
        "pr/tool@anthropic",
        "pr/tool@gemini",
    }
    assert {server.count(w) > 0 for w in ("openai", "anthropic", "gemini")} == {True}
    schema = json.loads((ROOT / "schemas" / "results.schema.json").read_text())
    assert not list(Draft202012Validator(schema).iter_errors(results))
    assert "<testsuites" in (tmp_path / "junit.xml").read_text()
    assert "all cases passed" in (tmp_path / "summary.md").read_text()
    # the agent's rendered system prompt (with each suite's or case's vars) and its tools went
    # with every call; the calls run concurrently, so in no particular order
    systems = {
        json.dumps(r.body["messages"][0], sort_keys=True)
        for r in server.requests
        if r.wire == "openai"
    }
    assert systems == {
        json.dumps(
            {"role": "system", "content": f"You work for Acme.\nYou are talking to {who}."},
            sort_keys=True,
        )
        for who in ("Ann", "Bob")
    }
    body = next(r.body for r in server.requests if r.wire == "openai")
    assert {t["function"]["name"] for t in body["tools"]} == {"lookup_order", "issue_refund"}
    # keys never reach results or caches
    everything = json.dumps(results) + "".join(
        p.read_text() for p in (root / ".knowngood").rglob("*.json*")
    )
    assert not any(v in everything for v in KEYS.values())


def test_second_run_is_fully_cached_and_never_imports_litellm(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    assert run(root, capsys)[0] == 0
    calls = len(server.requests)
    script = (
        "import sys\nfrom pipeline.cli import main\n"
        f"code = main(['eval', '--repo', {str(root)!r}])\n"
        "assert 'litellm' not in sys.modules, 'a fully cached run imported litellm'\n"
        "assert 'dbos' not in sys.modules, 'eval imported the durable engine'\n"
        "sys.exit(code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 calls, 11 cached" in proc.stderr
    assert len(server.requests) == calls


def test_no_cache_calls_again(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    run(root, capsys)
    calls = len(server.requests)
    code, results, _ = run(root, capsys, "--no-cache", "--provider", "openai")
    assert code == 0
    assert len(server.requests) == calls + results["summary"]["calls"] == calls + 3


def test_offline_miss_is_exit_3_naming_the_case(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    code, _results, err = run(root, capsys, "--offline")
    assert code == 3
    assert "--offline: no cached answer for shop/pr/hello on local" in err
    assert server.requests == []


def test_missing_key_skips_visibly_and_require_fails(
    tmp_path: Path,
    server: FakeProvider,
    keys: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    root = make_repo(tmp_path, server)
    code, results, err = run(root, capsys)
    assert code == 0
    assert results["providers"]["anthropic"] == {
        "model": "anthropic/claude-3-5-haiku-20241022",
        "status": "skipped",
        "reason": "ANTHROPIC_API_KEY is not set",
    }
    assert "provider 'anthropic' skipped: ANTHROPIC_API_KEY is not set" in err
    assert statuses(results)["pr/hello@anthropic"] == "skipped"
    assert server.count("anthropic") == 0
    code, results, err = run(root, capsys, "--require", "anthropic", "--no-cache")
    assert code == 3
    assert "required but ANTHROPIC_API_KEY is not set" in err
    # only that provider asked for: not a failure, and not shown as a pass either
    assert main(["eval", "--provider", "anthropic", "--no-cache", "--repo", str(root)]) == 0
    err = capsys.readouterr().err
    assert "notice: nothing was evaluated: every case was skipped" in err
    assert "0 passed, 0 failed, " in err


def test_429_storm_slows_the_run_but_does_not_fail_it(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    server.push_faults(*[Fault.rate_limit(0.2) for _ in range(6)])
    started = time.monotonic()
    code, results, err = run(root, capsys, "--provider", "openai", "-j", "2")
    assert code == 0, err
    assert set(statuses(results).values()) == {"pass"}
    assert results["summary"]["calls"] == 3 + 6  # every 429 was retried
    assert time.monotonic() - started >= 0.2  # Retry-After was honoured


def test_transient_faults_are_retried(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    server.push_faults(Fault.server_error(503), Fault.connection_reset(), Fault.malformed_json())
    code, results, err = run(root, capsys, "--provider", "openai", "-j", "1")
    assert code == 0, err
    assert results["summary"]["calls"] == 3 + 3


def test_a_provider_that_keeps_failing_fails_its_cases_with_exit_3(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    server.push_faults(*[Fault.server_error(500) for _ in range(20)])
    code, results, _err = run(root, capsys, "--provider", "openai", "--suite", "smoke", "-j", "1")
    assert code == 3
    case = results["cases"][0]
    assert case["status"] == "error"
    assert "after 4 attempts" in case["error"]
    assert "500" in case["error"]


def test_timeout_is_retried(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server, extra_eval="  timeout_s: 0.5\n")
    server.push_faults(Fault.hang_up(3))
    code, results, err = run(root, capsys, "--provider", "openai", "--suite", "smoke")
    assert code == 0, err
    assert results["summary"]["calls"] == 2


def test_budget_is_a_hard_cap(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    code, results, err = run(
        root, capsys, "--provider", "openai", "--budget", "0.0000001", "-j", "1"
    )
    assert code == 3
    assert "budget of $1e-07 reached" in err
    assert results["summary"]["cost_usd"] <= 0.0000001
    assert server.count("openai") == results["summary"]["calls"]
    assert any(c["status"] == "skipped" for c in results["cases"])


def test_failures_show_expected_and_actual(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = "agent: shop\nvars: {customer: Ann}\ncases:\n  - id: wants-bye\n    input: Hi\n    expect:\n      - contains: Goodbye\n"
    root = make_repo(tmp_path, server, suites={"evals/shop/pr.yaml": suite})
    code, results, err = run(root, capsys, "--provider", "openai", "--suite", "pr")
    assert code == 1
    assertion = results["cases"][0]["runs"][0]["assertions"][0]
    assert assertion["passed"] is False
    assert "Goodbye" in assertion["expected"] and "Hello from Acme!" in assertion["actual"]
    assert "FAIL" in err and "shop/pr/wants-bye [openai]" in err


def test_repeats_are_independent_calls_and_mixed_repeats_are_flaky(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["yes", "no", "yes", "yes"])

    def flip(wire: str, body: dict[str, Any]) -> Reply:
        return Reply(text=next(answers))

    suite = (
        "agent: shop\nvars: {customer: Ann}\ncases:\n  - id: coin\n    input: Flip\n    repeat: 4\n"
        "    pass_rate: 0.75\n    expect:\n      - equals: 'yes'\n"
    )
    with FakeProvider(responder=flip) as srv:
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite})
        code, results, _ = run(root, capsys, "--provider", "openai", "--suite", "pr", "-j", "1")
    case = results["cases"][0]
    assert (case["passes"], case["repeats"], case["flaky"], case["status"]) == (3, 4, True, "pass")
    assert code == 0
    assert srv.count("openai") == 4


def test_shards_partition_the_cases_and_merge_back(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    full = run(root, capsys)[1]
    seen: list[str] = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard-{k}.json"
        assert main(["eval", "--repo", str(root), "--shard", f"{k}/3", "--output", str(out)]) == 0
        seen += statuses(json.loads(out.read_text()))
    assert sorted(seen) == sorted(statuses(full))  # a partition: every case once
    capsys.readouterr()
    merged = tmp_path / "merged.json"
    code = main(
        [
            "results",
            "merge",
            *(str(tmp_path / f"shard-{k}.json") for k in (1, 2, 3)),
            "--output",
            str(merged),
        ]
    )
    assert code == 0
    assert statuses(json.loads(merged.read_text())) == statuses(full)


def test_bad_shard_and_unknown_agent_are_usage_errors(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    assert main(["eval", "--repo", str(root), "--shard", "4/3"]) == 2
    assert main(["eval", "nobody", "--repo", str(root)]) == 2
    assert main(["eval", "--repo", str(root), "--provider", "nope"]) == 2


def test_invalid_repository_is_refused_before_any_call(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path, server)
    (root / "evals/shop/pr.yaml").write_text(
        "agent: shop\ncases:\n  - id: x\n    input: Hi\n    expect: [{containz: a}]\n"
    )
    code = main(["eval", "--repo", str(root)])
    assert code == 1
    assert "unknown assertion type 'containz'" in capsys.readouterr().err
    assert server.requests == []


def test_a_run_killed_with_sigkill_repeats_no_finished_call(tmp_path: Path, keys: None) -> None:
    """SIGKILL mid-run, then rerun: every call that had finished comes from the cache."""
    cases = "".join(
        f"  - id: c{i}\n    input: q{i}\n    expect: [{{contains: Acme}}]\n" for i in range(12)
    )
    suite = f"agent: shop\nvars: {{customer: Ann}}\ncases:\n{cases}"
    with FakeProvider(responder=responder) as srv:
        srv.push_faults(*[Fault.delay(150) for _ in range(100)])
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite})
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "eval",
                "--repo",
                str(root),
                "--suite",
                "pr",
                "--provider",
                "openai",
                "-j",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        deadline = time.monotonic() + 60
        while srv.count("openai") < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        packs = (root / ".knowngood" / "cache").rglob("*.jsonl")
        cached = sum(p.read_bytes().count(b"\n") for p in packs)  # whole entries
        before = srv.count("openai")
        assert 4 <= cached <= before
        srv.reset()  # no more delays needed
        rerun = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "eval",
                "--repo",
                str(root),
                "--suite",
                "pr",
                "--provider",
                "openai",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            env={**os.environ},
        )
        results = json.loads(rerun.stdout)
    assert rerun.returncode == 0, rerun.stderr
    assert results["summary"]["cache_hits"] == cached
    assert results["summary"]["calls"] == 12 - cached


def test_progress_is_a_line_per_case_on_stderr_and_none_with_json(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command line hands the core a progress callback; off a terminal it writes one line per
    # finished case to stderr as the run goes (CI logs). JSON output gets no progress at all.
    root = make_repo(tmp_path, server)
    code, results, err = run(root, capsys, "--no-cache")
    assert code == 0, err
    labels = [f"{c['agent']}/{c['suite']}/{c['case']} [{c['provider']}]" for c in results["cases"]]
    assert labels
    lines = err.splitlines()
    for label in labels:
        assert sum(line.startswith("PASS") and label in line for line in lines) == 1, err
    code, results, err = run(root, capsys, "--no-cache", "--format", "json")
    assert code == 0, err
    assert not any(line.startswith("PASS") for line in err.splitlines()), err
