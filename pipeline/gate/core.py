"""``run_gate``: validate HEAD, evaluate the affected agents on HEAD, get BASE's results, compare.

BASE's results come from the records branch (named by BASE's knowngood.yaml, see
``pipeline.gate.policy``) when the pipeline recorded them for that commit (``knowngood eval
--record`` on every main-branch commit), else from evaluating BASE in a
temporary worktree with the same request and the same cache directory as HEAD, so every case
whose messages, tools and params did not change is answered from the cache for free.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import GitError, KnowngoodError
from pipeline.evals.results import EvalRun
from pipeline.gate.compare import ExpectationCheck, compare_runs, filter_run
from pipeline.gate.graders import base_graders
from pipeline.gate.locate import gate_annotations, validation_annotations
from pipeline.gate.model import AgentGate, GateResult, Side
from pipeline.gate.policy import (
    BasePolicy,
    base_policy,
    base_pull_request_suites,
    endpoint,
    revert_opt_out,
)
from pipeline.gate.repeats import base_repeats, note_raised, raise_repeats
from pipeline.gate.suites import CommittedSuites
from pipeline.git import Git
from pipeline.repo import CONFIG_FILE, Repo
from pipeline.source import uncommitted
from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.evals.graders import Graders
    from pipeline.evals.session import EvalRequest, Progress

KIND = "pull_request"
# The key variable of a provider whose api_base is new in the change: never set, so the
# provider is skipped (as a fork's pull request skips one without a key).
NO_KEY_FOR_NEW_API_BASE = "KNOWNGOOD_GATE_NO_KEY_FOR_A_NEW_API_BASE"


@dataclass(slots=True)
class GateOptions:
    base: str
    head: str = "HEAD"
    providers: Sequence[str] = ()
    require: Sequence[str] = ()
    concurrency: int | None = None
    budget_usd: float | None = None  # for the whole gate: HEAD first, BASE gets what is left
    offline: bool = False
    use_records: bool = True
    progress: Progress | None = None
    pr_body: str | None = None  # the pull request's description (for the revert opt-out marker)


def run_gate(root: Path, options: GateOptions) -> GateResult:
    """The pull-request check. Never prints: eval progress goes to ``options.progress``.

    Raises UsageError for an unknown revision or provider; everything else the gate finds
    (invalid HEAD, a BASE that cannot be evaluated, failing cases) is in the result.
    """
    from pipeline.changes.revision import at_root, resolve

    started = time.perf_counter()
    root = root.resolve()
    git = at_root(Git(root), root)
    base_rev, head_rev = resolve(git, options.base, options.head)
    base_commit, requested = base_rev.commit, None
    if not git.is_ancestor(base_commit, head_rev.commit):
        merge_base = git.merge_base(base_commit, head_rev.commit)
        if merge_base is not None and merge_base != base_commit:
            base_commit, requested = merge_base, base_rev.commit
    policy = base_policy(git, base_commit)  # never HEAD's: a change must not loosen its own check
    result = GateResult(
        base=Side(options.base, base_commit),
        head=Side(options.head, head_rev.commit),
        requested_base=requested,
        allow_unverified=policy.allow_unverified,
        allow_expectation_changes=policy.allow_expectation_changes,
        opt_out=revert_opt_out(git, base_commit, head_rev.commit, options.pr_body),
    )
    if requested is not None:
        result.notices.append(
            f"{options.base} ({requested[:10]}) is not an ancestor of {options.head}: compared with "
            f"their merge base {base_commit[:10]}, so only this branch's changes count"
        )
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="knowngood-gate-")))
        head_root = root
        if _current_head(git) != head_rev.commit or uncommitted(git):  # the commit, exactly
            head_root = stack.enter_context(_checkout(git, root, head_rev.commit, tmp / "head"))
        _Gate(result, options, git, root, tmp, policy).run(head_root)
    result.duration_s = time.perf_counter() - started
    return result


@dataclass(slots=True)
class _Gate:
    result: GateResult
    options: GateOptions
    git: Git
    root: Path  # the knowngood root of the checkout (its cache is the one both sides use)
    tmp: Path
    policy: BasePolicy
    names: list[str] = field(default_factory=list)  # affected agents that exist on HEAD
    suites: dict[str, set[str]] = field(default_factory=dict)  # their pull-request suites
    present: set[tuple[str, str, str]] = field(default_factory=set)  # cases in HEAD's suites
    cache_dir: Path | None = None
    graders: Graders | None = None  # who grades head's answers: base's (gate.graders)
    committed: CommittedSuites = field(init=False)  # both sides' suite files, each read once

    def __post_init__(self) -> None:
        self.committed = CommittedSuites(self.git)

    def run(self, head_root: Path) -> None:
        from pipeline.validate import validate_repo

        result = self.result
        report = validate_repo(head_root, build=True)
        result.findings, result.files_checked = report.findings, report.files_checked
        result.annotations += validation_annotations(report.findings)
        if report.repo is None:  # built unless HEAD's agents or settings have errors
            result.head.available = False
            result.head.reason = f"HEAD does not validate ({plural(len(report.errors), 'error')})"
            return
        repo = self._keys_stay_home(report.repo)
        self._affected()
        # run on head at least as many times as base does: fewer repeats would be less testing
        repeats = base_repeats(self.committed, result.base.commit, self.names)
        repo, raised = raise_repeats(repo, self.names, repeats)
        self.graders, notices = base_graders(self.policy, report.repo, self.names)
        result.notices += notices
        budget = self.options.budget_usd
        if budget is None:  # BASE's cap: a change must not lift what its own check may spend
            mine = repo.settings.eval.budget_usd
            budget = self.policy.budget_usd if self.policy.configured else mine
            if mine != budget:
                result.notices.append(
                    f"eval.budget_usd is {_usd(mine)} in this change and {_usd(budget)} on base: "
                    "the gate spends at most base's (the change's applies once it is merged)"
                )
        self.cache_dir = self.root / repo.settings.eval.cache_dir
        head_run = self._evaluate_head(repo, budget)
        base_suites = base_pull_request_suites(self.git, result.base.commit, self.names)
        for name, named in base_suites.items():  # compared even when HEAD unlisted them
            self.suites[name] = self.suites.get(name, set()) | named
        if head_run.cases or any(base_suites.values()):
            left = None if budget is None else max(0.0, budget - head_run.spent_usd)
            if not (self.options.use_records and self._from_record(self.policy.records_branch)):
                self._from_worktree(left)
        base_run = result.base.run if result.base.available else None
        rows = compare_runs(
            head_run,
            base_run,
            allow_unverified=result.allow_unverified,
            present=self.present,
            tests=self._tests(repo, head_run, budget),
        )
        note_raised(rows, raised)
        for row in rows:
            result.agents[row.agent].rows.append(row)
        # BASE evaluated here ran in the same environment (the same keys); a record did not
        sides = "both sides" if result.base.source == "evaluated" else "head"
        for name, status in sorted(head_run.providers.items()):
            if status.status == "skipped":
                result.notices.append(f"provider {name!r} skipped on {sides}: {status.reason}")
        result.annotations += gate_annotations(repo, result.agents.values())

    def _tests(self, repo: Repo, head_run: EvalRun, budget: float | None) -> ExpectationCheck:
        """The expectations, inputs and vars this change altered; head's answers judged by
        base's expectations, and head's agent run on base's inputs (their calls within what is
        left of the budget after both sides' evals)."""
        from pipeline.gate.expectations import Expectations, expectation_changes, judge_by_base
        from pipeline.gate.inputs import input_changes, run_by_base

        result, names = self.result, self.names
        found = expectation_changes(self.committed, result.base.commit, result.head.commit, names)
        moved = input_changes(self.committed, result.base.commit, result.head.commit, names)
        tests = ExpectationCheck(found.changes, allowed=result.allow_expectation_changes)
        tests.inputs = moved
        if not (found.changes or moved) or not head_run.cases:
            return tests
        spent = head_run.spent_usd
        if result.base.source == "evaluated" and result.base.run is not None:
            spent += result.base.run.spent_usd
        left = None if budget is None else max(0.0, budget - spent)
        opts = self.options
        # a case whose input changed is judged on base's input, with base's expectations
        kept = {k: v for k, v in found.changes.items() if k not in moved}
        judged = judge_by_base(
            repo, head_run, Expectations(kept, found.base_prompts), budget_usd=left,
            cache_dir=self.cache_dir, offline=opts.offline, concurrency=opts.concurrency,
            graders=self.graders,
        )  # fmt: skip
        sent = run_by_base(
            repo, head_run, moved, found,
            budget_usd=None if left is None else max(0.0, left - judged.spent_usd),
            cache_dir=self.cache_dir, offline=opts.offline, concurrency=opts.concurrency,
            graders=self.graders,
        )  # fmt: skip
        for extra in (judged, sent):  # part of the head's evaluation
            head_run.spent_usd += extra.spent_usd
            head_run.calls_made += extra.calls_made
            head_run.cache_hits += extra.cache_hits
        tests.judged = {c.key: c for c in judged.cases}
        tests.sent = {c.key: c for c in sent.cases}
        return tests

    def _keys_stay_home(self, repo: Repo) -> Repo:
        """``repo`` with every provider that would send a key to an api_base BASE does not use
        (this change's own, or one with another key variable) given a key variable that is never
        set: it is skipped on HEAD, its cases unverified, and no key leaves for that host."""
        if not self.policy.configured:  # knowngood arrives with this change: nothing to keep
            return repo
        changed = {}
        for name, provider in repo.settings.providers.items():
            pair = endpoint(provider)
            if pair is not None and pair not in self.policy.endpoints:
                changed[name] = replace(provider, api_key_env=NO_KEY_FOR_NEW_API_BASE)
                self.result.notices.append(
                    f"provider {name!r} is not called on head: this change sends {pair[1]} to "
                    f"{pair[0]}, which base's knowngood.yaml does not; its cases are unverified "
                    "(the change's endpoint applies once it is merged)"
                )
        if not changed:
            return repo
        providers = {**repo.settings.providers, **changed}
        return replace(repo, settings=replace(repo.settings, providers=providers))

    def _affected(self) -> None:
        """The agents the change affects (with their diff and bump), and the removed ones."""
        from pipeline.changes import affected_agents, diff_revisions

        result = self.result
        base, head = result.base.commit, result.head.commit
        result.diff = diff_revisions(self.git, self.root, base, head)
        affected = affected_agents(self.git, self.root, base, head)
        self.names = sorted(affected)
        for name in self.names:
            diff = result.diff.agents.get(name)
            status = diff.status if diff else "affected"
            result.agents[name] = AgentGate(name, status, affected[name], diff)
        for name, diff in result.diff.agents.items():
            if diff.status == "removed":
                paths = [f.path for f in diff.files]
                result.agents[name] = AgentGate(name, "removed", paths, diff)

    def _request(self, repo: Repo, budget: float | None) -> EvalRequest:
        """The affected agents' pull-request suites, with the options (limited to the providers
        ``repo`` knows: a provider added by the change does not exist on BASE)."""
        from pipeline.evals.session import EvalRequest

        known = repo.settings.providers
        opts = self.options
        return EvalRequest(
            agents=[n for n in self.names if n in repo.agents],
            kind=KIND,
            providers=tuple(p for p in opts.providers if p in known),
            require=tuple(p for p in opts.require if p in known),
            concurrency=opts.concurrency,
            budget_usd=budget,
            offline=opts.offline,
            cache_dir=self.cache_dir,
        )

    def _evaluate_head(self, repo: Repo, budget: float | None) -> EvalRun:
        from pipeline.evals.session import EvalRequest, run_targets, select_targets

        head = self.result.head
        opts = self.options
        request = EvalRequest(  # unknown --provider/--require names are usage errors here
            agents=self.names, kind=KIND, providers=tuple(opts.providers),
            require=tuple(opts.require), concurrency=opts.concurrency, budget_usd=budget,
            offline=opts.offline, cache_dir=self.cache_dir, graders=self.graders,
        )  # fmt: skip
        targets = select_targets(repo, request) if self.names else []  # no agents means all
        self.suites = {t.agent.name: {s.name for s in t.suites} for t in targets}
        self.present = {
            (name, suite.name, case.id)
            for name in self.names
            for suite in repo.suites.get(name, {}).values()
            for case in suite.cases
        }
        head.run = EvalRun(commit=head.commit)
        if targets:
            head.run = run_targets(
                repo, targets, request, progress=opts.progress, commit=head.commit
            )
        head.source = "evaluated"
        return head.run

    def _from_record(self, branch: str) -> bool:
        """Use the results recorded for BASE's commit, when they cover the affected agents."""
        from pipeline.evals.resultsfile import results_from_data
        from pipeline.records import RecordStore

        result, short = self.result, self.result.base.commit[:10]
        store = RecordStore(self.git, branch)
        fetch_error = None
        try:
            store.fetch()
        except GitError as e:  # e.g. no credentials for the remote: local records may do
            fetch_error = e.message
        try:
            data = store.get_results(result.base.commit)
            run = results_from_data(data, f"the record of {short}") if data is not None else None
        except (KnowngoodError, ValueError, KeyError, TypeError) as e:
            result.notices.append(f"the record of {short} is unreadable ({e}); evaluating base")
            return False
        if run is None:
            if fetch_error is not None:
                result.notices.append(
                    f"no record of {short} (could not fetch {branch}: {fetch_error})"
                )
            return False
        if run.shard is not None:
            result.notices.append(
                f"the record of {short} is one shard ({run.shard}); evaluating base"
            )
            return False
        present = {c.agent for c in run.cases}
        missing = [n for n in self.names if result.agents[n].status != "added" and n not in present]
        if missing:
            result.notices.append(
                f"the record of {short} has no results for {', '.join(missing)}; evaluating base"
            )
            return False
        result.base.run = filter_run(run, self.names, self.suites, self.options.providers)
        result.base.source = "record"
        return True

    def _from_worktree(self, budget: float | None) -> None:
        """Evaluate BASE in a temporary worktree; unavailable (with the reason) when it fails."""
        base = self.result.base
        base.source = "evaluated"
        try:
            with _checkout(self.git, self.root, base.commit, self.tmp / "base") as base_root:
                base.run = self._evaluate_base(base_root, budget)
        except KnowngoodError as e:
            base.available, base.run = False, None
            base.reason = f"base {base.commit[:10]} could not be evaluated: {e.message}"

    def _evaluate_base(self, base_root: Path, budget: float | None) -> EvalRun:
        from pipeline.evals.session import load_valid_repo, run_targets, select_targets

        commit = self.result.base.commit
        if not (base_root / CONFIG_FILE).is_file():  # knowngood arrives with this change: all new
            return EvalRun(commit=commit)
        repo = load_valid_repo(base_root)  # CheckFailed when BASE does not validate
        request = self._request(repo, budget)
        if self.options.providers and not request.providers:  # none existed on BASE
            return EvalRun(commit=commit)
        targets = select_targets(repo, request) if request.agents else []
        if not targets:
            return EvalRun(commit=commit)
        return run_targets(repo, targets, request, progress=self.options.progress, commit=commit)


def _usd(amount: float | None) -> str:
    return "unset (no limit)" if amount is None else f"${amount:g}"


@contextmanager
def _checkout(git: Git, root: Path, commit: str, path: Path) -> Iterator[Path]:
    """A temporary worktree of ``commit``; yields the knowngood root inside it (a subfolder of
    the git repository stays a subfolder)."""
    top = Path(git.run("rev-parse", "--show-toplevel").strip()).resolve()
    try:
        prefix = root.resolve().relative_to(top)
    except ValueError as e:
        raise GitError(f"{root} is not inside the git repository {top}") from e
    with git.worktree(commit, path) as tree:
        yield tree / prefix


def _current_head(git: Git) -> str | None:
    result = git.try_run("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    return result.stdout.strip() if result.code == 0 else None
