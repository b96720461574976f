"""The values ``knowngood gate`` computes. Plain data: ``pipeline.report.gate`` renders them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.changes import AgentDiff, Bump, DiffReport, ToolChange
    from pipeline.evals.results import EvalRun
    from pipeline.findings import Finding

# What one (agent, suite, case, provider) did from base to head.
Comparison = Literal[
    "regression",  # passed on base, fails on head: blocks
    "fixed",  # failed on base, passes on head
    "still_failing",  # fails on both: shown, does not block
    "new",  # not on base; blocks when it fails on head
    "removed",  # on base, gone from head
    "unchanged",  # passes on both
    "skipped",  # not run on head, and no base result either
    "unverified",  # evaluated on base, not on head (skipped, provider renamed or dropped): blocks
    # unless gate.allow_unverified
    "expectations_changed",  # passes head's expectations, fails base's: blocks unless
    # gate.allow_expectation_changes
    "no_baseline",  # base result unknown (base unavailable, skipped or errored there); a failure blocks
    "error",  # the provider kept failing on head: the gate is incomplete
]
# A side's status for one row: an eval status, or why there is none.
SideStatus = Literal["pass", "fail", "error", "skipped", "missing", "unavailable"]
BaseSource = Literal["record", "evaluated", "none"]
Verdict = Literal["pass", "fail", "incomplete"]
Level = Literal["error", "warning", "notice"]

COMPARISONS: tuple[Comparison, ...] = (
    "regression", "new", "no_baseline", "unverified", "expectations_changed", "error", "fixed",
    "still_failing", "skipped", "removed", "unchanged",
)  # fmt: skip


@dataclass(slots=True)
class CaseDiff:
    """One row of the gate: a case on one provider, base against head."""

    agent: str
    suite: str
    case: str
    provider: str
    base: SideStatus
    head: SideStatus
    comparison: Comparison
    blocking: bool
    flaky: bool = False  # repeats disagreed on either side
    detail: str = ""  # what differs: the failing assertion (expected vs actual), or why not run
    base_passes: str | None = None  # "2/3" (passing repeats / repeats run)
    head_passes: str | None = None
    head_cost_usd: float = 0.0
    head_tokens: int = 0
    base_tokens: int | None = None
    # The case's expectations on each side, when the change altered them (head None: deleted)
    base_expect: str | None = None
    head_expect: str | None = None
    # What the case sends on each side (its input, and its vars when they differ), when the
    # change altered that
    base_input: str | None = None
    head_input: str | None = None
    # Loosens the test: passes head's expectations and fails base's, or a case base passed that
    # the change deleted (blocks unless gate.allow_expectation_changes)
    loosened: bool = False

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.agent, self.suite, self.case, self.provider)

    @property
    def is_new_failure(self) -> bool:
        return self.comparison == "new" and self.head == "fail"


@dataclass(frozen=True, slots=True)
class Annotation:
    """A workflow annotation: a message on a file and line (paths relative to the knowngood root)."""

    level: Level
    title: str
    message: str
    path: str | None = None
    line: int | None = None
    column: int | None = None


@dataclass(slots=True)
class AgentGate:
    """One affected agent: its bump, why, and its rows."""

    name: str
    status: str  # added | modified | affected (repo-wide change) | removed
    paths: list[str] = field(default_factory=list)  # changed paths that affect it
    diff: AgentDiff | None = None
    rows: list[CaseDiff] = field(default_factory=list)

    @property
    def bump(self) -> Bump | None:
        return self.diff.bump if self.diff is not None else None

    @property
    def reasons(self) -> list[str]:
        return list(self.diff.reasons) if self.diff is not None else []

    @property
    def tool_changes(self) -> list[ToolChange]:
        return list(self.diff.tool_changes) if self.diff is not None else []


@dataclass(slots=True)
class Side:
    """One side of the comparison. ``available`` False: its results could not be had (``reason``)."""

    rev: str
    commit: str
    run: EvalRun | None = None
    source: BaseSource = "none"
    available: bool = True
    reason: str | None = None


@dataclass(slots=True)
class GateResult:
    base: Side
    head: Side
    findings: list[Finding] = field(default_factory=list)  # HEAD's validation findings
    files_checked: int = 0
    agents: dict[str, AgentGate] = field(default_factory=dict)
    diff: DiffReport | None = None
    annotations: list[Annotation] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    requested_base: str | None = None  # set when --base was not an ancestor (merge base used)
    allow_unverified: bool = False  # gate.allow_unverified in BASE's knowngood.yaml
    allow_expectation_changes: bool = False  # gate.allow_expectation_changes, BASE's too
    opt_out: str | None = None  # where the change opts out of automatic revert, if it does

    # -- derived -------------------------------------------------------------------------------
    @property
    def validation_errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def rows(self) -> list[CaseDiff]:
        return [r for a in self.agents.values() for r in a.rows]

    @property
    def blocking(self) -> list[CaseDiff]:
        return [r for r in self.rows if r.blocking]

    @property
    def unverified(self) -> list[CaseDiff]:
        """Rows evaluated on base and not on head (blocking unless ``allow_unverified``)."""
        return [r for r in self.rows if r.comparison == "unverified"]

    @property
    def loosened(self) -> list[CaseDiff]:
        """Rows whose test the change loosened (blocking unless ``allow_expectation_changes``)."""
        return [r for r in self.rows if r.loosened]

    @property
    def incomplete(self) -> list[str]:
        """Why the HEAD eval could not complete (exit 3 unless something already blocks)."""
        run = self.head.run
        if run is None:
            return []
        reasons = list(run.incomplete)
        errors = [r for r in self.rows if r.comparison == "error"]
        if errors:
            first = errors[0]
            reasons.append(
                f"{plural(len(errors), 'case')} could not be evaluated on head "
                f"({first.agent}/{first.suite}/{first.case} [{first.provider}]: {first.detail})"
            )
        return reasons

    @property
    def verdict(self) -> Verdict:
        """fail on what the change did; incomplete when HEAD's eval could not finish (which also
        leaves cases unverified: the budget, an --offline miss); fail on unverified cases."""
        blocking = self.blocking
        if self.validation_errors or any(r.comparison != "unverified" for r in blocking):
            return "fail"
        if self.incomplete:
            return "incomplete"
        return "fail" if blocking else "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": 0, "fail": 1, "incomplete": 3}[self.verdict]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(COMPARISONS, 0)
        for row in self.rows:
            out[row.comparison] += 1
        out["new_failing"] = sum(1 for r in self.rows if r.is_new_failure)
        out["flaky"] = sum(1 for r in self.rows if r.flaky)
        out["blocking"] = sum(1 for r in self.rows if r.blocking)
        return out
