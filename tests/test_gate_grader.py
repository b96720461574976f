"""A pull request that changes no expectation but changes who grades them: a judge provider that
says PASS to anything, other params for it, another embedding provider. The gate grades head's
answers with base's graders. Real git, real loopback providers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from evalutil import KEYS
from fakeproviders import FakeProvider, Reply, last_user_text
from gateutil import PR_SUITE, Project, gate, rows
from gateutil import responder as gate_responder
from gitutil import git

HELLO_EXPECT = "      - icontains: acme\n"  # the hello case's expectations in PR_SUITE
JUDGE = "      - judge: {rubric: Mentions acme.}\n"
JUDGE_V1 = (
    "Grade against <rubric>{{ rubric }}</rubric> the answer <answer>{{ answer }}</answer> "
    "to <conversation>{{ input }}</conversation>.\n"
)
ROW = "shop/pr/hello@openai"


def grading_responder(wire: str, body: dict[str, Any]) -> Reply:
    """gateutil's model, and a grader: an answer passes a rubric when it holds the rubric's last
    word. A tiny model, or one sampled with top_p, passes everything."""
    prompt = last_user_text(wire, body)
    rubric = re.search(r"<rubric>(.*?)</rubric>", prompt, re.S)
    answer = re.search(r"<answer>(.*?)</answer>", prompt, re.S)
    if rubric is None or answer is None:
        return gate_responder(wire, body)
    if body.get("model") == "tiny" or "top_p" in body:
        return Reply(text=json.dumps({"pass": True, "reason": "looks fine"}))
    word = rubric.group(1).strip().rstrip(".").split()[-1].lower()
    passed = word in answer.group(1).lower()
    return Reply(text=json.dumps({"pass": passed, "reason": f"looked for {word}"}))


@pytest.fixture
def grader() -> Iterator[FakeProvider]:
    with FakeProvider(responder=grading_responder) as srv:
        yield srv


def _provider(srv: FakeProvider, name: str, model: str) -> str:
    """A line under providers: on ``srv``'s OpenAI wire, with base's key variable."""
    return f"  {name}: {{model: {model}, api_base: '{srv.openai_base}', api_key_env: OPENAI_API_KEY}}\n"


def _project(
    tmp_path: Path, srv: FakeProvider, expect: str, config: str, providers: str = ""
) -> Project:
    """main's hello case expects ``expect`` (graded as main's knowngood.yaml says: ``config``
    under eval:, ``providers`` added); the feature branch breaks the agent (the company is no
    longer Acme, the answer says Bobco) and does nothing else yet."""
    p = Project(tmp_path, srv, suite=PR_SUITE.replace(HELLO_EXPECT, expect), config=config)
    git(p.top, "checkout", "-q", "main")
    p.edit("knowngood.yaml", "eval:\n", providers + "eval:\n")
    (p.root / "evals/_judge").mkdir(parents=True, exist_ok=True)
    (p.root / "evals/_judge/v1.md").write_text(JUDGE_V1)
    p.base = p.commit("graders")
    git(p.top, "push", "-q", "origin", "main")
    git(p.top, "checkout", "-q", "-B", "feature")
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    return p


def _lenient_default(p: Project, srv: FakeProvider) -> None:
    p.edit("knowngood.yaml", "eval:\n", _provider(srv, "lenient", "openai/tiny") + "eval:\n")
    p.edit("knowngood.yaml", "judge_provider: openai", "judge_provider: lenient")


def _tiny_model(p: Project, srv: FakeProvider) -> None:
    p.edit("knowngood.yaml", "model: openai/gpt-4o-mini", "model: openai/tiny")


def _sampled(p: Project, srv: FakeProvider) -> None:
    p.edit("knowngood.yaml", "api_key_env: OPENAI_API_KEY}", "api_key_env: OPENAI_API_KEY, "
           "params: {temperature: 2, top_p: 0.1}}")  # fmt: skip


def _named_redefined(p: Project, srv: FakeProvider) -> None:
    p.edit("knowngood.yaml", "strict: {model: openai/gpt-4o,", "strict: {model: openai/tiny,")


@pytest.mark.parametrize(
    ("expect", "change", "notice"),
    [
        pytest.param(JUDGE, _lenient_default, "eval.judge_provider is 'lenient' in this change "
                     "and 'openai' on base", id="judge-provider"),
        pytest.param(JUDGE, _tiny_model, "grader provider 'openai': this change alters its model "
                     "(openai/tiny on head, openai/gpt-4o-mini on base)", id="judge-model"),
        pytest.param(JUDGE, _sampled, "grader provider 'openai': this change alters its params",
                     id="judge-params"),
        pytest.param("      - judge: {rubric: Mentions acme., provider: strict}\n",
                     _named_redefined, "grader provider 'strict': this change alters its model",
                     id="named-judge-model"),
    ],
)  # fmt: skip
def test_a_pr_that_changes_its_judge_is_graded_by_base_s(
    tmp_path: Path,
    grader: FakeProvider,
    gate_env: None,
    capsys: pytest.CaptureFixture[str],
    expect: str,
    change: Callable[[Project, FakeProvider], None],
    notice: str,
) -> None:
    """The change breaks the hello case and gives its judge a grader that passes anything; no
    expectation changed: was "✅ knowngood: no regressions"."""
    strict = _provider(grader, "strict", "openai/gpt-4o")
    p = _project(tmp_path, grader, expect, "  judge_provider: openai\n", strict)
    change(p, grader)
    p.commit("rename the company, and grade it kindly")
    md = tmp_path / "gate.md"
    code, data, _, err = gate(p, capsys, "--markdown", str(md))
    assert code == 1, err
    assert rows(data)[ROW] == ("pass", "fail", "regression")
    row = next(c for c in data["cases"] if c["case"] == "hello" and c["agent"] == "shop")
    assert "looked for acme" in row["detail"], row
    assert any(n.startswith(notice) for n in data["notices"]), data["notices"]
    comment = md.read_text()
    assert notice in comment
    assert KEYS["OPENAI_API_KEY"] not in comment + json.dumps(data) + err


def test_a_grader_base_does_not_have_leaves_its_cases_unverified(
    tmp_path: Path, grader: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The change adds a lenient provider, makes it the default judge and names it in the case
    (base's expectations, judged again, are graded by the default judge too): was ✅. A new case
    it grades is not graded either."""
    p = _project(tmp_path, grader, JUDGE, "  judge_provider: openai\n")
    _lenient_default(p, grader)
    p.edit("evals/shop/pr.yaml", "rubric: Mentions acme.}", "rubric: Mentions acme., "
           "provider: lenient}")  # fmt: skip
    with (p.root / "evals/shop/pr.yaml").open("a") as fh:
        fh.write(
            "  - id: bye\n    input: Bye\n    expect:\n      - judge: {rubric: Says bye., provider: lenient}\n"
        )
    p.commit("rename the company, and bring a judge")
    calls = [r for r in grader.requests]
    md = tmp_path / "gate.md"
    code, data, _, err = gate(p, capsys, "--markdown", str(md))
    assert "or a grader the base branch does not have" in md.read_text()
    assert code == 1, err
    assert rows(data)[ROW] == ("pass", "skipped", "unverified")
    assert rows(data)["shop/pr/bye@openai"] == ("missing", "skipped", "skipped")
    row = next(c for c in data["cases"] if c["case"] == "hello" and c["agent"] == "shop")
    assert "provider 'lenient', which base's knowngood.yaml does not define" in row["detail"]
    assert row["blocking"] is True
    tiny = [r for r in grader.requests[len(calls) :] if (r.body or {}).get("model") == "tiny"]
    assert tiny == []  # the change's grader was never asked
    assert any("grader provider 'lenient' is not in base's" in n for n in data["notices"])


def test_base_s_judge_grades_base_s_expectations_when_the_change_alters_both(
    tmp_path: Path, grader: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rubric changes too: head's answer, judged again by base's rubric, was graded by the
    change's lenient judge and passed."""
    p = _project(tmp_path, grader, JUDGE, "  judge_provider: openai\n")
    _lenient_default(p, grader)
    p.edit("evals/shop/pr.yaml", "rubric: Mentions acme.", "rubric: Says hello.")
    p.commit("rename the company, and grade something else, kindly")
    code, data, _, err = gate(p, capsys)
    assert code == 1, err
    assert rows(data)[ROW] == ("pass", "pass", "expectations_changed")


def _constant(text: str) -> list[float]:
    return [1.0] + [0.0] * 31


SIMILAR = '      - similar: {text: "Hello from Acme!", threshold: 0.95}\n'


@pytest.mark.parametrize("change", ["setting", "definition"])
def test_a_pr_that_changes_its_embedding_provider_is_graded_by_base_s(
    tmp_path: Path,
    grader: FakeProvider,
    gate_env: None,
    capsys: pytest.CaptureFixture[str],
    change: str,
) -> None:
    """An embedding model that embeds every text alike (on an endpoint base already uses)
    makes every answer similar: was ✅."""
    with FakeProvider(responder=gate_responder, embedder=_constant) as alike:
        emb = _provider(grader, "emb", "openai/text-embedding-3-small")
        spare = _provider(alike, "spare", "openai/text-embedding-3-small")
        p = _project(tmp_path, grader, SIMILAR, "  embedding_provider: emb\n", emb + spare)
        if change == "setting":
            p.edit("knowngood.yaml", "embedding_provider: emb", "embedding_provider: spare")
        else:
            p.edit("knowngood.yaml", emb, emb.replace(grader.openai_base, alike.openai_base))
        p.commit("rename the company, and compare kindly")
        code, data, _, err = gate(p, capsys)
    assert code == 1, err
    assert rows(data)[ROW] == ("pass", "fail", "regression")
    assert any("graded by base's" in n for n in data["notices"]), data["notices"]


def test_a_judge_switched_on_purpose_grades_once_it_is_merged(
    tmp_path: Path, grader: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same switch, merged first: base's grader is now the new one, and it grades."""
    p = _project(tmp_path, grader, JUDGE, "  judge_provider: openai\n")
    p.commit("rename the company")
    git(p.top, "checkout", "-q", "main")
    _lenient_default(p, grader)
    p.commit("a new judge")
    git(p.top, "push", "-q", "origin", "main")
    git(p.top, "checkout", "-q", "feature")
    git(p.top, "rebase", "-q", "main")
    code, data, _, err = gate(p, capsys)
    assert code == 0, err
    assert rows(data)[ROW] == ("pass", "pass", "unchanged")
    assert not any("judge_provider" in n or "grader" in n for n in data["notices"])


def test_an_embedding_provider_base_does_not_set_grades_nothing(
    tmp_path: Path, grader: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """Base compares with the local embedding model; the change brings a provider that embeds
    every text alike and a new case for it: the case is not graded on head."""
    with FakeProvider(responder=gate_responder, embedder=_constant) as alike:
        spare = _provider(alike, "spare", "openai/text-embedding-3-small")
        p = _project(tmp_path, grader, HELLO_EXPECT, "", spare)
        p.edit("agents/shop/agent.yaml", "vars: {company: Bobco}", "vars: {company: Acme}")
        p.edit("knowngood.yaml", "  retries: 0\n", "  retries: 0\n  embedding_provider: spare\n")
        with (p.root / "evals/shop/pr.yaml").open("a") as fh:
            fh.write("  - id: alike\n    input: Hi\n    expect:\n" + SIMILAR)
        p.commit("compare answers")
        code, data, _, err = gate(p, capsys)
        assert [r for r in alike.requests if r.endpoint == "embeddings"] == []
    assert code == 0, err
    assert rows(data)["shop/pr/alike@openai"] == ("missing", "skipped", "skipped")
    assert any(
        n.startswith("eval.embedding_provider is 'spare' in this change and unset on base: "
                     "similar assertions are not graded on head") for n in data["notices"]
    ), data["notices"]  # fmt: skip


def test_a_judgement_made_with_the_change_s_params_is_not_taken_for_base_s(
    tmp_path: Path, grader: FakeProvider, gate_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The change's params for its judge, and an eval of the branch before the gate (its CI job,
    the same cache): judge calls were cached without the grader's params, so base's grader got
    the change's lenient judgement from the cache."""
    from pipeline.cli import main

    p = _project(tmp_path, grader, JUDGE, "  judge_provider: openai\n")
    _sampled(p, grader)
    p.commit("rename the company, and grade it kindly")
    assert main(["eval", "--repo", str(p.root), "--kind", "pull_request"]) == 0  # lenient
    capsys.readouterr()
    code, data, _, err = gate(p, capsys)
    assert code == 1, err
    assert rows(data)[ROW] == ("pass", "fail", "regression")
