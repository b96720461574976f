"""The other part of the test a pull request writes itself: what its cases send.

A change that breaks an agent can, in the same commit, change what the failing case sends so
the broken agent answers as expected: its ``input`` becomes "Reply with exactly: 30 days", or
the ``vars`` its system prompt is rendered with (its own, or its suite's, merged under them) say
as much. The expectations stay untouched, so ``gate.expectations`` sees nothing. So, for every
case BASE also has whose input or effective vars differ between BASE's and HEAD's suite files
(read as each commit has them, ``gate.policy.committed_data``), HEAD's agent is also given
BASE's test: BASE's input and vars, judged by BASE's expectations (and grading prompts), on
the providers the case passed on in HEAD. Unlike re-judging an answer, that is a model call,
made like any eval's: through the cache, within the gate's budget, and with ``offline`` only
from the cache. ``compare`` makes a case that passes HEAD's test and fails BASE's
*expectations_changed*, as a loosened expectation is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pipeline.evals.results import EvalRun
from pipeline.gate.expectations import CaseId, Expectations
from pipeline.gate.suites import CommittedSuites

if TYPE_CHECKING:
    from pipeline.evals.graders import Graders
    from pipeline.repo import Case, Repo, Suite

Sent = tuple[Any, Mapping[str, Any]]  # a case's input, and its vars merged over its suite's


@dataclass(frozen=True, slots=True)
class InputChange:
    """What a case sends on both sides: its input and its effective vars."""

    base_input: Any
    base_vars: Mapping[str, Any]
    head_input: Any
    head_vars: Mapping[str, Any]

    @property
    def base_text(self) -> str:
        return _text(self.base_input, self.base_vars, self.head_vars)

    @property
    def head_text(self) -> str:
        return _text(self.head_input, self.head_vars, self.base_vars)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def _text(sent: Any, variables: Mapping[str, Any], other: Mapping[str, Any]) -> str:
    """The input as JSON, and the vars when they are what differs."""
    out = _json(sent)
    if _json(dict(variables)) != _json(dict(other)):
        out += " with vars " + _json(dict(variables))
    return out


def input_changes(
    suites: CommittedSuites, base: str, head: str, agents: Iterable[str]
) -> dict[CaseId, InputChange]:
    """Every case of ``agents``' suites that both BASE and HEAD have and whose input or
    effective vars differ (1, 1.0 and true differ: they render differently). An agent whose
    suite files are the same blobs on both sides is not read."""
    changes: dict[CaseId, InputChange] = {}
    for agent in agents:
        if suites.files(base, agent) == suites.files(head, agent):
            continue
        head_cases = _sent(suites.documents(head, agent))
        for key, (sent, variables) in _sent(suites.documents(base, agent)).items():
            mine = head_cases.get(key)
            if mine is not None and _json([sent, dict(variables)]) != _json(
                [mine[0], dict(mine[1])]
            ):
                changes[key] = InputChange(sent, variables, *mine)
    return changes


def _sent(documents: Mapping[str, Mapping[str, Any]]) -> dict[CaseId, Sent]:
    out: dict[CaseId, Sent] = {}
    for rel, data in documents.items():
        path = PurePosixPath(rel)
        shared = _vars(data)
        cases = data.get("cases")
        for case in cases if isinstance(cases, list) else ():
            if not isinstance(case, Mapping) or "input" not in case:
                continue
            own = _vars(case)
            key = (path.parent.name, path.stem, str(case.get("id")))
            out[key] = (case["input"], {**shared, **own})
    return out


def _vars(data: Mapping[str, Any]) -> Mapping[str, Any]:
    found = data.get("vars")
    return found if isinstance(found, Mapping) else {}


def run_by_base(
    repo: Repo,
    head: EvalRun,
    changes: Mapping[CaseId, InputChange],
    expectations: Expectations,
    *,
    budget_usd: float | None,
    cache_dir: Path | None,
    offline: bool = False,
    concurrency: int | None = None,
    graders: Graders | None = None,
) -> EvalRun:
    """HEAD's agent on BASE's test of each case in ``changes`` that passed on HEAD: BASE's
    input and vars, BASE's expectations (from ``expectations`` when the change altered them
    too, with BASE's grading prompts), on the providers the case passed on. An eval like any
    other: the cache, ``budget_usd``, ``offline`` (a call the cache lacks is skipped, so the
    case is not a plain pass). ``graders``: who grades (the gate passes base's)."""
    from pipeline.evals.plan import EvalOptions, Target
    from pipeline.evals.runner import run_eval

    passed: dict[CaseId, list[str]] = {}
    for case in head.cases:
        key = (case.agent, case.suite, case.case)
        if case.status == "pass" and key in changes:
            passed.setdefault(key, []).append(case.provider)
    if not passed:
        return EvalRun()
    suites: dict[str, dict[str, list[Case]]] = {}
    for key, providers in passed.items():
        agent, suite, _ = key
        mine = _case(repo.suites[agent][suite], key[2])
        change, expect = changes[key], expectations.changes.get(key)
        suites.setdefault(agent, {}).setdefault(suite, []).append(
            replace(
                mine,
                input=change.base_input,
                vars=dict(change.base_vars),  # merged: the suite's are cleared below
                expect=expect.base if expect is not None else mine.expect,
                providers=tuple(providers),
            )
        )
    targets = [
        Target(
            repo.agent(agent),
            [replace(repo.suites[agent][s], cases=tuple(c), vars={}) for s, c in named.items()],
        )
        for agent, named in suites.items()
    ]
    options = EvalOptions(
        budget_usd=budget_usd, cache_dir=cache_dir, offline=offline, concurrency=concurrency
    )
    prompts = {**repo.judge_prompts, **expectations.base_prompts}
    return run_eval(
        repo.settings, targets, options, root=repo.root, judge_prompts=prompts, graders=graders
    )


def _case(suite: Suite, case_id: str) -> Case:
    return next(c for c in suite.cases if c.id == case_id)
