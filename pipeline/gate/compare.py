"""Base against head, case by case: regression, fixed, still failing, new, removed, ...

Rules (one row per agent, suite, case and provider):

* base evaluated it (pass or fail) and head did not: ``unverified``. Head skipped it (provider
  key missing, budget, ``--offline`` miss), or the case is still on head but no longer on this
  provider (renamed, or dropped from the agent's chain). It blocks unless the repository allows
  unverified cases (``gate.allow_unverified``): a change must not pass by making its cases
  unrunnable.
* head skipped and base has no result either: ``skipped``.
* head error (the provider kept failing): ``error``; the gate is incomplete (exit 3).
* no such case on base: ``new``; a failing new case blocks.
* base result unknown (base unavailable, or skipped or errored there): ``no_baseline``; a head
  failure blocks, because nothing shows it failed before.
* pass/fail on both: ``unchanged``, ``regression`` (blocks), ``fixed``, ``still_failing``
  (shown, does not block).
* on base only, and the case is gone from head's suites: ``removed``. A case still in its suite
  file on head whose suite head no longer runs for pull requests (taken out of the agent's
  ``evals.pull_request``) is ``unverified``: unlisting a suite is no way to drop its cases.
* a case whose expectations the change altered (its ``expect``, a judge's rubric, or a grading
  prompt base's judges use) and that passes on head is judged again by base's expectations,
  on the same answer; failing them makes it ``expectations_changed``: the change loosened its
  own test. A case base passed that is gone from head's suites (``removed``) loosens it too.
  Both block unless ``gate.allow_expectation_changes`` (read from base).
* a case whose request the change altered (its ``input``, or its ``vars`` merged over its
  suite's) and that passes on head is run again: head's agent on base's input and vars, judged
  by base's expectations; failing that makes it ``expectations_changed`` too, passing it is a
  plain pass.
* a case that head asks less of than base (a lower ``pass_rate``, set on the case, its suite or
  ``eval.pass_rate``) is judged on head by base's pass rate: the change cannot lower the bar of
  its own check; the lower one applies once it is merged.

``flaky`` marks rows whose repeats disagreed on either side.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pipeline.evals.results import CaseResult, EvalRun
from pipeline.gate.model import CaseDiff, Comparison, SideStatus
from pipeline.words import printable

if TYPE_CHECKING:
    from pipeline.gate.expectations import CaseId, ExpectChange
    from pipeline.gate.inputs import InputChange

DETAIL_ACTUAL = 160  # characters of the actual answer shown in "what differs"


@dataclass(slots=True)
class ExpectationCheck:
    """What the change did to its tests: the cases whose expectations it altered (or dropped),
    and head's answers to them judged by base's expectations; the cases whose input or vars it
    altered, and head's agent on base's input and vars."""

    changes: Mapping[CaseId, ExpectChange] = field(default_factory=dict)
    judged: Mapping[tuple[str, str, str, str], CaseResult] = field(default_factory=dict)
    allowed: bool = False  # gate.allow_expectation_changes (base's)
    inputs: Mapping[CaseId, InputChange] = field(default_factory=dict)
    sent: Mapping[tuple[str, str, str, str], CaseResult] = field(default_factory=dict)

    def by_base(self, h: CaseResult) -> CaseResult | None:
        """Head's answers to ``h`` judged by base's expectations (run on base's input when
        the change altered it), at ``h``'s pass rate."""
        moved = (h.agent, h.suite, h.case) in self.inputs
        found = (self.sent if moved else self.judged).get(h.key)
        return replace(found, pass_rate=h.pass_rate) if found is not None else None


def compare_runs(
    head: EvalRun,
    base: EvalRun | None,
    *,
    allow_unverified: bool = False,
    present: Collection[tuple[str, str, str]] = (),
    tests: ExpectationCheck | None = None,
) -> list[CaseDiff]:
    """Rows for every case of ``head`` and every case of ``base`` that head no longer has
    (sorted by agent, suite, case, provider). ``base`` None: the base side is unavailable.
    ``allow_unverified``: unverified rows are shown but do not block. ``present``: the
    (agent, suite, case) of every case in head's suite files, evaluated or not. ``tests``:
    the expectations the change altered (none when not given)."""
    tests = tests or ExpectationCheck()
    base_cases = {c.key: c for c in base.cases} if base is not None else {}
    rows = []
    for h in head.cases:
        b = base_cases.pop(h.key, None)
        row = _row(h, b, base is not None, allow_unverified)
        bar = max(h.pass_rate, b.pass_rate) if b is not None else h.pass_rate  # as _row judges
        rows.append(_expected(row, replace(h, pass_rate=bar), tests))
    on_head = {(c.agent, c.suite, c.case) for c in head.cases}
    for b in sorted(base_cases.values(), key=lambda c: c.key):
        comparison: Comparison = "removed"
        detail = "no longer on head"
        if (b.agent, b.suite, b.case) in on_head:  # the case is there, this provider is not
            detail = f"not evaluated on head: provider {b.provider!r} is no longer in the chain"
            if b.status in ("pass", "fail"):
                comparison = "unverified"
        elif (b.agent, b.suite, b.case) in present:  # in its suite, which head does not run
            detail = (
                f"not evaluated on head: suite {b.suite!r} is no longer one of {b.agent}'s "
                "pull-request suites (evals.pull_request), but the case is still in it"
            )
            if b.status in ("pass", "fail"):
                comparison = "unverified"
        change = tests.changes.get((b.agent, b.suite, b.case))
        loosened = comparison == "removed" and b.status == "pass"
        if loosened:
            detail = "deleted from its suite by this change; it passed on base"
        rows.append(
            CaseDiff(
                b.agent,
                b.suite,
                b.case,
                b.provider,
                base=b.status,
                head="missing",
                comparison=comparison,
                blocking=(comparison == "unverified" and not allow_unverified)
                or (loosened and not tests.allowed),
                flaky=b.flaky,
                detail=detail,
                base_passes=_passes(b),
                base_tokens=_tokens(b),
                base_expect=change.base_text if change is not None else None,
                loosened=loosened,
            )
        )
    rows.sort(key=lambda r: r.key)
    return rows


def _expected(row: CaseDiff, h: CaseResult, tests: ExpectationCheck) -> CaseDiff:
    """``row`` when the change kept the case's test (its expectations, its input and vars);
    else with both versions, and *expectations_changed* when head passes its own test and
    fails base's."""
    case = (h.agent, h.suite, h.case)
    change, moved = tests.changes.get(case), tests.inputs.get(case)
    if change is None and moved is None:
        return row
    if change is not None:
        row.base_expect, row.head_expect = change.base_text, change.head_text
    if moved is not None:
        row.base_input, row.head_input = moved.base_text, moved.head_text
    if row.head != "pass":  # failing its own test: already shown for what it is
        return row
    what = (
        "expectations" if moved is None else "input" if change is None else "input and expectations"
    )
    judged = tests.by_base(h)
    if judged is not None and judged.status == "pass":
        passes = "the answer passes base's too" if moved is None else f"it passes base's {what} too"
        row.detail = _join(row.detail, f"{what} changed; {passes}")
        return row
    missing = (
        "not run on base's input" if moved is not None else "not judged by base's expectations"
    )
    why = _why(judged) if judged is not None else missing
    row.comparison, row.loosened, row.blocking = "expectations_changed", True, not tests.allowed
    row.detail = printable(
        _join(f"passes this change's {what}, fails base's: {why}", _lowered(row.detail))
    )
    return row


def _lowered(detail: str) -> str:
    """The pass-rate note of ``detail``, if it has one."""
    note = detail.find("judged by base's pass rate")
    return detail[note:] if note >= 0 else ""


def _row(
    h: CaseResult,
    b: CaseResult | None,
    base_available: bool,
    allow_unverified: bool,
) -> CaseDiff:
    lowered = h.pass_rate if b is not None and h.pass_rate < b.pass_rate - 1e-9 else None
    if b is not None and lowered is not None:  # judged by base's bar
        h = replace(h, pass_rate=b.pass_rate)
    head: SideStatus = h.status
    base: SideStatus = (
        b.status if b is not None else ("missing" if base_available else "unavailable")
    )
    comparison, blocking, detail = _compare(h, b, head, base, allow_unverified)
    if b is not None and lowered is not None and head in ("pass", "fail"):
        detail = _join(
            detail,
            f"judged by base's pass rate {b.pass_rate:g} (this change lowers it to {lowered:g}, "
            "which applies once merged)",
        )
    detail = printable(detail)  # a model's answer or a PR's expected string: one safe line
    flaky = h.flaky or (b.flaky if b is not None else False)
    if flaky and not detail:
        detail = "flaky: " + ", ".join(
            f"{side} {p}"
            for side, p, c in (("base", _passes(b), b), ("head", _passes(h), h))
            if c is not None and c.flaky
        )
    return CaseDiff(
        h.agent,
        h.suite,
        h.case,
        h.provider,
        base=base,
        head=head,
        comparison=comparison,
        blocking=blocking,
        flaky=flaky,
        detail=detail,
        base_passes=_passes(b) if b else None,
        head_passes=_passes(h),
        head_cost_usd=sum(r.cost_usd for r in h.runs if not r.cached),
        head_tokens=_tokens(h),
        base_tokens=_tokens(b) if b is not None else None,
    )


def _compare(
    h: CaseResult, b: CaseResult | None, head: SideStatus, base: SideStatus, allow_unverified: bool
) -> tuple[Comparison, bool, str]:
    """(how head compares with base, whether that blocks the change, the detail to show)."""
    comparison: Comparison
    blocking = False
    if head == "skipped":
        detail = h.skipped_reason or "not run"
        comparison = "skipped"
        if base in ("pass", "fail"):  # evaluated on base: nothing shows the change keeps it
            comparison, blocking = "unverified", not allow_unverified
            detail = f"not evaluated on head: {detail}"
    elif head == "error":
        comparison, detail = "error", h.error or "provider error"
    elif base == "missing":
        comparison, blocking = "new", head == "fail"
        detail = _why(h) if head == "fail" else ""
    elif base in ("unavailable", "skipped", "error"):
        comparison, blocking = "no_baseline", head == "fail"
        # An unavailable base is explained once, above the table; a per-case gap here.
        known = (
            "base unavailable" if b is None else f"on base: {b.skipped_reason or b.error or base}"
        )
        detail = _join(_why(h) if head == "fail" else "", f"no base result ({known})")
    elif base == "pass":
        comparison = "unchanged" if head == "pass" else "regression"
        blocking = head == "fail"
        detail = _why(h) if head == "fail" else ""
    elif head == "pass":  # base failed
        comparison, detail = "fixed", _join("", f"was: {_why(b)}" if b else "")
    else:
        comparison = "still_failing"
        now, was = _why(h), _why(b) if b else ""
        detail = now if was in ("", now) else f"{now} (was: {was})"
    return comparison, blocking, detail


def _why(c: CaseResult | None) -> str:
    """What went wrong, in one line: the first failing assertion, expected against actual."""
    if c is None:
        return ""
    if c.skipped_reason and not c.runs:
        return c.skipped_reason
    if c.error:
        return c.error
    for run in c.runs:
        for a in run.assertions if not run.passed else ():
            if not a.passed:
                what = a.message or f"expected {a.expected}"
                actual = " ".join(a.actual.split())
                if len(actual) > DETAIL_ACTUAL:
                    actual = actual[: DETAIL_ACTUAL - 1] + "…"
                return f"{a.kind}: {what}" + (f"; got {actual!r}" if actual else "")
    return ""


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _passes(c: CaseResult | None) -> str | None:
    if c is None or not c.runs:
        return None
    return f"{c.passes}/{len(c.runs)}"


def _tokens(c: CaseResult | None) -> int:
    if c is None:
        return 0
    return sum(r.prompt_tokens + r.completion_tokens for r in c.runs)


def filter_run(
    run: EvalRun,
    agents: Iterable[str],
    suites: dict[str, set[str]] | None,
    providers: Collection[str] = (),
) -> EvalRun:
    """``run`` restricted to ``agents`` (and per agent ``suites``, and ``providers`` when given)."""
    wanted = set(agents)
    cases = [
        c
        for c in run.cases
        if c.agent in wanted
        and (suites is None or c.suite in suites.get(c.agent, set()))
        and (not providers or c.provider in providers)
    ]
    used = {c.provider for c in cases}
    out = EvalRun(
        cases=cases,
        providers={n: p for n, p in run.providers.items() if n in used},
        commit=run.commit,
        started_at=run.started_at,
        duration_s=run.duration_s,
        budget_usd=run.budget_usd,
        incomplete=list(run.incomplete),
        notices=list(run.notices),
        shard=run.shard,
    )
    return out
