"""Costs and counts that must be exact: the budget is a hard cap, attempts follow the settings,
the reported calls are the HTTP requests the server saw, a selection that runs nothing is a
usage error, and `results merge` refuses an incomplete or repeated set of shards.

Real litellm over real HTTP to the loopback fake provider (tests/fakeproviders.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from evalutil import KEYS, MAX_OUTPUT, greedy, make_repo, responder, run
from fakeproviders import FakeProvider, Fault
from gitutil import commit_all, init_repo

from pipeline.cli import main

# gpt-4o-mini in litellm 1.106.2's price table: $0.15 / $0.60 per million tokens, 16,384 output
# tokens at most.


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)


def suite_of(n: int) -> str:
    cases = "".join(
        f"  - id: c{i}\n    input: question {i}\n    expect: [{{contains: Acme}}]\n"
        for i in range(n)
    )
    return f"agent: shop\nvars: {{customer: Ann}}\ncases:\n{cases}"


# --- the budget -------------------------------------------------------------------------------


def test_budget_is_a_hard_cap_without_max_tokens(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=greedy) as srv:
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite_of(6)})
        code, results, err = run(
            root, capsys, "--suite", "pr", "--provider", "openai", "--budget", "0.03", "-j", "4"
        )
        sent = [r.body for r in srv.requests]
    summary = results["summary"]
    assert code == 3, err
    # every request carried a bound on its answer: the model's own maximum (no agent max_tokens)
    assert sent and all(b.get("max_tokens") == MAX_OUTPUT for b in sent)
    # each answer costs ~$0.0098 (16,384 output tokens): the calls that fit were sent, the next
    # one did not fit in what was left and was never sent, nor any after it
    calls = summary["calls"]
    assert calls == len(sent) == 3
    assert summary["cost_usd"] <= 0.03
    assert 0.03 - summary["cost_usd"] < MAX_OUTPUT * 0.6e-6
    cases = sum(c["cost_usd"] for c in results["cases"])
    assert summary["cost_usd"] == pytest.approx(cases, abs=1e-6)
    skipped = [c for c in results["cases"] if c["status"] == "skipped"]
    assert len(skipped) == 6 - calls and all("budget" in c["skipped_reason"] for c in skipped)
    # the notice reports the real spend, not what was spent when the first call was refused
    notice = next(n for n in results["incomplete"] if "budget" in n)
    spent = re.search(r"after spending \$([0-9.]+)", notice)
    assert spent is not None, notice
    assert float(spent.group(1)) == pytest.approx(summary["cost_usd"], abs=1e-6)
    assert f"{6 - calls} calls not sent" in notice
    assert notice in err


def test_a_request_that_lost_its_answer_stays_counted_against_the_budget(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A timed-out request may still be billed: its worst case is kept, apart from the spend."""
    with FakeProvider(responder=greedy) as srv:
        srv.push_faults(Fault.hang_up(3), Fault.hang_up(3))
        root = make_repo(
            tmp_path,
            srv,
            suites={"evals/shop/pr.yaml": suite_of(6)},
            extra_eval="  timeout_s: 0.3\n",
        )
        code, results, err = run(
            root, capsys, "--suite", "pr", "--provider", "openai", "--budget", "0.03", "-j", "1"
        )
        seen = srv.count()
    summary = results["summary"]
    assert code == 3, err
    # two timeouts hold two worst cases (~$0.01 each): a third does not fit in $0.03
    assert summary["calls"] == seen == 2
    assert summary["cost_usd"] == 0.0
    lost = next(n for n in results["notices"] if "lost their answer" in n)
    assert lost.startswith("2 requests lost their answer")
    worst = float(re.search(r"up to \$([0-9.]+)", lost).group(1))  # type: ignore[union-attr]
    assert summary["cost_usd"] + worst <= 0.03


def test_budget_keeps_the_agents_max_tokens(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=greedy) as srv:
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite_of(6)})
        agent = root / "agents/shop/agent.yaml"
        agent.write_text(
            agent.read_text().replace("  fallbacks:", "  params: {max_tokens: 50}\n  fallbacks:")
        )
        code, results, err = run(
            root, capsys, "--suite", "pr", "--provider", "openai", "--budget", "0.03"
        )
        sent = [r.body for r in srv.requests]
    assert code == 0, err
    assert len(sent) == 6 and all(b["max_tokens"] == 50 for b in sent)
    assert results["incomplete"] == []
    assert 0 < results["summary"]["cost_usd"] <= 0.03


def test_without_a_budget_the_request_is_unchanged(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=responder) as srv:
        root = make_repo(tmp_path, srv)
        code, _results, err = run(root, capsys, "--suite", "smoke", "--provider", "openai")
        assert code == 0, err
        assert "max_tokens" not in srv.last.body


# --- attempts and counts ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resilience", "attempts"),
    [("", 4), ("resilience: {retries: 1}\n", 2), ("resilience: {retries: 0}\n", 1)],
)
def test_a_429_forever_makes_exactly_retries_plus_one_requests(
    tmp_path: Path,
    keys: None,
    capsys: pytest.CaptureFixture[str],
    resilience: str,
    attempts: int,
) -> None:
    """eval.retries is 3 in this repository; the agent's resilience.retries wins when present."""
    with FakeProvider(responder=responder, fault_hook=lambda r: Fault.rate_limit(0)) as srv:
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite_of(2)})
        agent = root / "agents/shop/agent.yaml"
        agent.write_text(agent.read_text() + resilience)
        code, results, err = run(root, capsys, "--suite", "pr", "--provider", "openai")
        assert code == 3, err
        assert srv.count() == 2 * attempts
    assert results["summary"]["calls"] == 2 * attempts
    for case in results["cases"]:
        assert case["status"] == "error"
        assert f"after {attempts} attempt" in case["error"]


def test_calls_after_connection_resets_are_the_requests_the_server_saw(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=responder) as srv:
        srv.push_faults(*[Fault.connection_reset(before_body=True) for _ in range(6)])
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite_of(4)})
        code, results, err = run(root, capsys, "--suite", "pr", "--provider", "openai", "-j", "2")
        seen = srv.count()
    assert results["summary"]["calls"] == seen
    assert seen == 6 + sum(c["status"] == "pass" for c in results["cases"])
    assert code in (0, 3), err


# --- selections that run nothing --------------------------------------------------------------


def _with_spare_provider(root: Path, srv: FakeProvider) -> None:
    config = root / "knowngood.yaml"
    config.write_text(
        config.read_text().replace(
            "providers:\n",
            f"providers:\n  spare: {{model: openai/gpt-4o-mini, api_base: '{srv.openai_base}',"
            " api_key_env: OPENAI_API_KEY}\n",
            1,
        )
    )


@pytest.mark.parametrize(
    ("args", "why"),
    [
        (["shop", "--provider", "spare", "--require", "spare"], "'spare'"),
        (["shop", "--provider", "spare"], "'spare'"),
        (["--require", "spare"], "--require spare"),
        (["--suite", "smoke", "--provider", "openai", "--require", "spare"], "--require spare"),
    ],
)
def test_a_selection_that_runs_nothing_is_a_usage_error(
    tmp_path: Path,
    keys: None,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    why: str,
) -> None:
    with FakeProvider(responder=responder) as srv:
        root = make_repo(tmp_path, srv)
        _with_spare_provider(root, srv)
        code = main(["eval", "--repo", str(root), *args])
        err = capsys.readouterr().err
        assert srv.requests == []
    assert code == 2, err
    assert "nothing to evaluate" in err and why in err


def test_no_agent_changed_is_nothing_to_evaluate(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=responder) as srv:
        root = make_repo(tmp_path, srv)
        init_repo(root)
        head = commit_all(root, "agents")
        code = main(["eval", "--repo", str(root), "--changed-since", head])
        assert srv.requests == []
    assert code == 2
    assert f"nothing to evaluate: no agent changed since {head}" in capsys.readouterr().err


def test_an_empty_shard_of_a_real_selection_is_not_an_error(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProvider(responder=responder) as srv:
        root = make_repo(tmp_path, srv, suites={"evals/shop/pr.yaml": suite_of(1)})
        codes = [
            main(["eval", "--repo", str(root), "--suite", "pr", "--shard", f"{k}/3"])
            for k in (1, 2, 3)
        ]
    assert codes == [0, 0, 0], capsys.readouterr().err


# --- results merge ----------------------------------------------------------------------------


@pytest.fixture
def shards(tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]) -> list[Path]:
    with FakeProvider(responder=responder) as srv:
        root = make_repo(tmp_path / "repo", srv, suites={"evals/shop/pr.yaml": suite_of(6)})
        paths = []
        for k in (1, 2):
            out = tmp_path / f"shard-{k}.json"
            args = ["eval", "--repo", str(root), "--suite", "pr", "--provider", "openai"]
            assert main([*args, "--shard", f"{k}/2", "--output", str(out)]) == 0
            paths.append(out)
    capsys.readouterr()
    return paths


def merge(capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, str]:
    code = main(["results", "merge", *map(str, files)])
    return code, capsys.readouterr().err


def test_merge_of_every_shard_once_passes(
    shards: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert merge(capsys, *shards)[0] == 0


def test_merge_refuses_a_missing_shard(
    shards: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = merge(capsys, shards[0])
    assert code == 2
    assert "shard 2/2 is missing" in err


def test_merge_refuses_the_same_shard_twice(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy.json"
    shutil.copy(shards[0], copy)
    code, err = merge(capsys, shards[0], shards[1], copy)
    assert code == 2
    assert "shard 1/2" in err and "shard-1.json" in err and "copy.json" in err
    code, err = merge(capsys, shards[0], shards[0], shards[1])
    assert code == 2
    assert "shard-1.json" in err


def test_merge_refuses_shards_of_different_splits(
    shards: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.json"
    data = json.loads(shards[1].read_text())
    data["shard"] = "2/3"
    other.write_text(json.dumps(data))
    code, err = merge(capsys, shards[0], other)
    assert code == 2
    assert "other.json" in err and "2/3" in err
