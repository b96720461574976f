"""The gate runs each case on HEAD at least as many times as BASE runs it: a pull request that
lowers ``repeat`` (on the case, its suite or ``eval.repeat``) cannot pass a flaky agent on one
lucky repeat."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Reply, last_user_text
from gateutil import Project, gate, rows
from gateutil import responder as gate_responder

BROKEN = "Answer in a hurry."  # what the pull request adds to shop's system prompt


class Flaky:
    """The gate's model, except that a system prompt saying BROKEN answers correctly only the
    first time it is asked a question: a flaky agent, right about one repeat in three."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()

    def __call__(self, wire: str, body: dict[str, Any]) -> Reply:
        system = str(body["messages"][0]["content"])
        user = last_user_text(wire, body)
        if BROKEN not in system or "Where is" in user:
            return gate_responder(wire, body)
        with self.lock:
            self.seen[(system, user)] += 1
            first = self.seen[(system, user)] == 1
        return gate_responder(wire, body) if first else Reply(text="Hello!")


@pytest.fixture
def model() -> Iterator[FakeProvider]:
    with FakeProvider(responder=Flaky()) as srv:
        yield srv


def _suite(*, suite: str = "", case: str = "") -> str:
    """The pull-request suite: ``suite`` and ``case`` are extra lines of the suite and of its
    case ``hello``."""
    return (
        f"agent: shop\nvars: {{customer: Ann}}\n{suite}cases:\n"
        f"  - id: hello\n    input: Hi\n{case}    expect:\n      - icontains: acme\n"
        "  - id: tool\n    input: Where is A1?\n    expect:\n"
        "      - tool_call: {name: lookup_order, arguments: {order_id: A1}}\n"
    )


def _case(data: dict[str, Any], case: str) -> dict[str, Any]:
    (found,) = [c for c in data["cases"] if f"{c['agent']}/{c['suite']}/{c['case']}" == case]
    assert isinstance(found, dict)
    return found


def _chats(model: FakeProvider) -> list[tuple[str, str]]:
    """(system prompt, question) of every chat request the model got."""
    return [
        (str(r.body["messages"][0]["content"]), last_user_text(str(r.wire), r.body))
        for r in model.requests
        if r.endpoint == "chat"
    ]


BASE_SETS = {  # where base sets repeat 3 -> (the file the PR edits, the text, the PR's text)
    "case": (
        {"suite": _suite(case="    repeat: 3\n")},
        ("evals/shop/pr.yaml", "    repeat: 3\n", "    repeat: 1\n"),
    ),
    "suite": (
        {"suite": _suite(suite="repeat: 3\n")},
        ("evals/shop/pr.yaml", "repeat: 3\n", "repeat: 1\n"),
    ),
    "eval.repeat": (
        {"config": "  repeat: 3\n"},
        ("knowngood.yaml", "  repeat: 3\n", "  repeat: 1\n"),
    ),
    "the case, below eval.repeat": (
        {"config": "  repeat: 3\n"},
        ("evals/shop/pr.yaml", "  - id: hello\n", "  - id: hello\n    repeat: 1\n"),
    ),
}


@pytest.mark.parametrize("where", list(BASE_SETS))
def test_the_pr_cannot_lower_the_repeats_its_cases_are_run(
    tmp_path: Path,
    model: FakeProvider,
    gate_env: None,
    capsys: pytest.CaptureFixture[str],
    where: str,
) -> None:
    """Base runs ``hello`` 3 times and needs 2 passes; the PR breaks the agent (right once in
    three) and runs it once: one lucky pass was "no regression"."""
    kw, (rel, old, new) = BASE_SETS[where]
    config = kw.get("config", "") + "  pass_rate: 0.6\n"
    p = Project(tmp_path, model, suite=kw.get("suite", _suite()), config=config)
    p.edit("agents/shop/prompts/system.md", "{{ customer }}.\n", "{{ customer }}.\n" + BROKEN)
    p.edit(rel, old, new)
    p.commit("answer in a hurry, once")
    code, data, _, err = gate(p, capsys, "--markdown", str(tmp_path / "gate.md"))
    assert code == 1, err  # was 0: the one repeat run passed
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "fail", "regression")
    hello = _case(data, "shop/pr/hello")
    assert (hello["base_passes"], hello["head_passes"]) == ("3/3", "1/3")
    note = "run 3 times as base does (this change lowers it to 1, which applies once merged)"
    assert note in hello["detail"]
    assert note in (tmp_path / "gate.md").read_text()
    hurried = Counter(q for s, q in _chats(model) if BROKEN in s)
    assert hurried["Hi"] == 3


def test_a_pr_raising_repeat_is_run_as_often_as_it_says(
    tmp_path: Path, model: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, model, suite=_suite(case="    repeat: 2\n"))
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.edit("evals/shop/pr.yaml", "    repeat: 2\n", "    repeat: 4\n")
    p.commit("rename the company, and test it more")
    code, data, _, err = gate(p, capsys)
    assert code == 1, err
    hello = _case(data, "shop/pr/hello")
    assert (hello["base_passes"], hello["head_passes"]) == ("2/2", "0/4")
    assert "as base does" not in hello["detail"]


def test_a_pr_that_keeps_repeat_makes_no_extra_call(
    tmp_path: Path, model: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, model, suite=_suite(suite="repeat: 2\n"))
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit("rename the company")
    code, data, _, err = gate(p, capsys)
    assert code == 1, err
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "fail", "regression")
    assert all("as base does" not in c["detail"] for c in data["cases"])
    # each side: hello and tool twice each (the system prompt differs: no cache hit)
    chats = _chats(model)
    assert Counter(q for _, q in chats) == {"Hi": 4, "Where is A1?": 4}
    assert len({s for s, _ in chats}) == 2
