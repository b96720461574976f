"""The one part of the test a pull request writes itself: its cases' expectations.

A change that breaks an agent can, in the same commit, loosen the failing case (``contains:
refund`` becomes ``contains: ""``, an assertion goes, one is wrapped in ``not``, a regex becomes
``.*``, a judge's rubric or grading prompt says yes to anything). Changing an expectation is
legitimate, so it is not refused; but it must never pass as "no regressions". So, for every
case BASE also has whose expectations differ between BASE's and HEAD's suite files (read as each
commit has them, ``gate.policy.committed_data``), HEAD's answer -- the same answer, no new call
-- is judged again by BASE's expectations (with BASE's grading prompts); ``compare`` makes a
case that passes HEAD's and fails BASE's *expectations_changed*.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pipeline.evals.results import CaseResult, EvalRun, RunResult
from pipeline.git import Git

if TYPE_CHECKING:
    from pipeline.evals.graders import Graders
    from pipeline.evals.plan import Job
    from pipeline.evals.runner import Runner
    from pipeline.gate.suites import CommittedSuites
    from pipeline.repo import Repo

CaseId = tuple[str, str, str]  # agent, suite, case
JUDGE_DIR = "evals/_judge"


@dataclass(frozen=True, slots=True)
class ExpectChange:
    """A case's expectations on both sides. ``head`` None: the case is gone from HEAD's suite."""

    base: tuple[Mapping[str, Any], ...]
    head: tuple[Mapping[str, Any], ...] | None
    prompts: tuple[str, ...] = ()  # grading prompts BASE's judges use that the change edited

    @property
    def base_text(self) -> str:
        return _text(self.base, self.prompts)

    @property
    def head_text(self) -> str | None:
        return None if self.head is None else _text(self.head, self.prompts)


def _text(expect: tuple[Mapping[str, Any], ...], prompts: tuple[str, ...]) -> str:
    out = json.dumps(list(expect), ensure_ascii=False, default=str)
    if prompts:
        out += " with " + ", ".join(f"{JUDGE_DIR}/{v}.md" for v in prompts) + " as each side has it"
    return out


@dataclass(slots=True)
class Expectations:
    """What the change did to the expectations of the affected agents' cases."""

    changes: dict[CaseId, ExpectChange]
    base_prompts: dict[str, str]  # grading prompt version -> BASE's text


def expectation_changes(
    suites: CommittedSuites, base: str, head: str, agents: Iterable[str]
) -> Expectations:
    """Every case of ``agents``' suites on BASE whose expectations HEAD changed or dropped (a
    case that only HEAD has is new, nothing to compare)."""
    git = suites.git
    base_prompts, head_prompts = _prompts(git, base), _prompts(git, head)
    edited = {v for v in base_prompts.keys() | head_prompts.keys()}
    edited = {v for v in edited if base_prompts.get(v) != head_prompts.get(v)}
    changes: dict[CaseId, ExpectChange] = {}
    for agent in agents:
        if suites.files(base, agent) == suites.files(head, agent) and not edited:
            continue  # the same blobs: nothing to compare
        head_cases = _cases(suites.documents(head, agent))
        for key, expect in _cases(suites.documents(base, agent)).items():
            mine = head_cases.get(key)
            used = tuple(sorted(_judge_prompts(expect) & edited))
            if mine != expect or used:
                changes[key] = ExpectChange(expect, mine, used)
    return Expectations(changes, base_prompts)


def _cases(
    documents: Mapping[str, Mapping[str, Any]],
) -> dict[CaseId, tuple[Mapping[str, Any], ...]]:
    out: dict[CaseId, tuple[Mapping[str, Any], ...]] = {}
    for rel, data in documents.items():
        path = PurePosixPath(rel)
        cases = data.get("cases")
        for case in cases if isinstance(cases, list) else ():
            if isinstance(case, Mapping) and isinstance(case.get("expect"), list):
                out[(path.parent.name, path.stem, str(case.get("id")))] = tuple(case["expect"])
    return out


def _prompts(git: Git, commit: str) -> dict[str, str]:
    from pipeline.changes.revision import list_tree

    out: dict[str, str] = {}
    for rel in list_tree(git, commit, [JUDGE_DIR + "/"]):
        path = PurePosixPath(rel)
        blob = git.show(commit, f"./{rel}") if path.suffix == ".md" else None
        if blob is not None:
            out[path.stem] = blob.decode("utf-8", errors="replace")
    return out


def _judge_prompts(expect: Iterable[Any]) -> set[str]:
    """The grading prompt versions the judge assertions of ``expect`` use (inside ``not`` too)."""
    found: set[str] = set()
    for assertion in expect:
        if not isinstance(assertion, Mapping):
            continue
        if isinstance(judge := assertion.get("judge"), Mapping):
            found.add(str(judge.get("prompt", "v1")))
        if "not" in assertion:
            found |= _judge_prompts([assertion["not"]])
    return found


def judge_by_base(
    repo: Repo,
    head: EvalRun,
    expectations: Expectations,
    *,
    budget_usd: float | None,
    cache_dir: Path | None,
    offline: bool = False,
    concurrency: int | None = None,
    graders: Graders | None = None,
) -> EvalRun:
    """HEAD's passing cases whose expectations changed, their answers judged again by BASE's
    expectations and grading prompts. Pure assertions need no call; a judge (or ``similar``)
    asks its model through the cache and within ``budget_usd``, like any eval call (with
    ``offline``, only the cache: a judgement it lacks fails, so the case is not a plain pass).
    ``graders``: who grades (the gate passes base's; None: ``repo``'s own)."""
    from pipeline.evals.plan import EvalOptions
    from pipeline.evals.runner import Runner
    from pipeline.evals.verdict import judge_found, needs_no_model

    cases = [
        (case, change)
        for case in head.cases
        if case.status == "pass"
        and (change := expectations.changes.get((case.agent, case.suite, case.case))) is not None
        and change.head is not None
    ]
    if not cases:
        return EvalRun()
    options = EvalOptions(
        budget_usd=budget_usd, cache_dir=cache_dir, offline=offline, concurrency=concurrency
    )
    prompts = {**repo.judge_prompts, **expectations.base_prompts}
    runner = Runner(repo.settings, options, _cache(cache_dir), prompts, None, graders)
    out = runner.run
    pending: list[tuple[Job, dict[str, Any]]] = []
    pure: dict[int, bool] = {}
    for case, change in cases:
        judged = CaseResult(
            case.agent, case.suite, case.case, case.provider, case.pass_rate, case.repeats
        )
        out.cases.append(judged)
        for run, job in _jobs(repo, case, change, judged):
            if job is None:
                judged.runs.append(run)  # an error stays an error
            elif needs_no_model(job, pure):
                judge_found(job, _answer(run))
            else:
                pending.append((job, _answer(run)))
    try:
        if pending:
            import asyncio

            asyncio.run(_judge_all(runner, pending))
    finally:
        runner.close()
    out.spent_usd = runner.budget.spent
    return out


def _jobs(
    repo: Repo, case: CaseResult, change: ExpectChange, judged: CaseResult
) -> Iterable[tuple[RunResult, Job | None]]:
    from pipeline.evals.plan import Job

    suite = repo.suites[case.agent][case.suite]
    mine = next(c for c in suite.cases if c.id == case.case)
    agent = repo.agent(case.agent)
    provider = repo.settings.providers[case.provider]
    base_case = replace(mine, expect=change.base)
    for run in case.runs:
        if run.error:
            yield run, None
        else:
            yield run, Job(agent, suite, base_case, provider, [], None, {}, run.repeat, judged, "")


def _answer(run: RunResult) -> dict[str, Any]:
    """The answer as the cache holds it, from what HEAD's run recorded of it."""
    return {
        "text": run.text,
        "tool_calls": run.tool_calls,
        "latency_ms": run.latency_ms,
        "cost_usd": run.cost_usd,
        "prompt_tokens": run.prompt_tokens,
        "completion_tokens": run.completion_tokens,
    }


async def _judge_all(runner: Runner, pending: list[tuple[Job, dict[str, Any]]]) -> None:
    import asyncio

    from pipeline.evals.verdict import judge

    try:
        await asyncio.gather(*(judge(job, answer, True, runner) for job, answer in pending))
    finally:
        try:
            if runner.caller is not None:
                await runner.caller.aclose()
        finally:
            runner.store.flush(raise_errors=False)


def _cache(cache_dir: Path | None) -> Any:
    from pipeline.evals.cache import Cache

    return Cache(cache_dir) if cache_dir is not None else None
