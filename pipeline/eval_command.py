"""``knowngood eval``: :func:`run` evaluates what the request selects, writes the files it asks
for and, with ``record``, stores the results for HEAD's commit on the records branch.

The evaluation itself is :mod:`pipeline.evals.session`; this module is the command around it.
(It sits beside ``pipeline/evals/`` rather than in it while the eval path is being reworked;
``pipeline/evals/command.py`` is where it belongs once that lands.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import EXIT_INCOMPLETE, GitError, UsageError
from pipeline.outcome import OutFile, Say, silent

if TYPE_CHECKING:
    from pipeline.evals.results import EvalRun
    from pipeline.evals.session import EvalRequest, Progress

# What an eval reads (the cache folder and other untracked files do not count as changes).
_EVALUATED = ("knowngood.yaml", "agents", "evals", "schemas")


@dataclass(frozen=True, slots=True)
class EvalCommand:
    request: EvalRequest  # what to evaluate, and how
    record: bool = False  # store the results for HEAD's commit and push them
    files: tuple[OutFile[EvalOutcome], ...] = ()  # --output, --junit, --markdown
    progress: Progress | None = None
    say: Say = silent


@dataclass(slots=True)
class EvalOutcome:
    run: EvalRun
    data: dict[str, Any] = field(default_factory=dict)  # the run's JSON, built once
    record_error: int = 0  # 3 when the record could not be pushed
    messages: list[str] = field(default_factory=list)  # what recording did, shown after the run

    @property
    def exit_code(self) -> int:
        return self.record_error or self.run.exit_code

    def to_json(self) -> dict[str, Any]:
        """``schemas/results.schema.json``."""
        return self.data


def run(root: Path, command: EvalCommand) -> EvalOutcome:
    """Evaluate, write the requested files, record. A selection that runs nothing is exit 2,
    and so is a file that could not be written (checked before anything is spent)."""
    from pipeline.evals.session import load_valid_repo, run_targets, select_targets
    from pipeline.outputs import check_files, write_files
    from pipeline.source import working_tree

    check_files(command.files)
    working_tree(root).tell(command.say)
    request = command.request
    commit = _check_record(root, request) if command.record else None
    valid = load_valid_repo(root)
    targets = select_targets(valid, request, empty_ok=False)  # running nothing never passes
    result = run_targets(valid, targets, request, progress=command.progress, commit=commit)
    outcome = EvalOutcome(result, result.to_json())
    write_files(command.files, outcome)
    if commit is not None:
        outcome.record_error = _record(root, valid.settings.records_branch, commit, outcome)
    return outcome


def _check_record(root: Path, request: EvalRequest) -> str:
    """HEAD's commit, after checking the run can stand for it: every pull-request suite of every
    agent on every provider (the gate treats what a record lacks as new), and a clean tree."""
    from pipeline.git import Git

    narrowed = [
        name
        for name, value in (
            ("AGENT arguments", request.agents),
            ("--suite", request.suites),
            ("--changed-since", request.changed_since),
            ("--provider", request.providers),
            ("--env", request.env),
            ("--shard", request.shard),
            ("--kind post_deploy", request.kind == "post_deploy"),
        )
        if value
    ]
    if narrowed:
        raise UsageError(
            f"--record stores the results of a whole commit: drop {', '.join(narrowed)}",
            hint="record with `knowngood eval --record` (optionally --kind pull_request)",
        )
    git = Git(root)
    commit = git.head()
    dirty = git.run("status", "--porcelain", "--", *_EVALUATED).strip()
    if dirty:
        first = dirty.splitlines()[0]
        raise UsageError(
            f"--record: the working tree differs from {commit[:10]} ({first.strip()} ...)",
            hint="commit or stash the changes: a record must describe the commit",
        )
    return commit


def _record(root: Path, branch: str, commit: str, outcome: EvalOutcome) -> int:
    """Store the results for ``commit`` and push when there is an ``origin``; 3 when that fails."""
    from pipeline.git import Git
    from pipeline.records import RecordStore

    say = outcome.messages.append
    store = RecordStore(Git(root), branch)
    try:
        store.fetch()  # build on the remote's records: the push is then a fast-forward
    except GitError as e:
        say(f"knowngood: warning: could not fetch {branch}: {e.message}")
    store.put_results(commit, outcome.data)
    say(f"knowngood: recorded the results of {commit[:10]} on {branch}")
    if not store.data.has_remote():
        return 0
    try:
        pushed = store.push()
    except GitError as e:
        say(f"knowngood: error: {e}")
        return EXIT_INCOMPLETE
    say(f"knowngood: {pushed.message}")
    return 0


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """``knowngood results merge``: the shards' results files, and the files to write."""

    paths: tuple[Path, ...]
    files: tuple[OutFile[EvalOutcome], ...] = ()


def merge_results(request: MergeRequest) -> EvalOutcome:
    """One run from every shard of one split (each once), or from whole runs with no case in
    common; a file that is not a results file, or a missing or repeated shard, is exit 2."""
    from pipeline.evals.results import check_shards, merge
    from pipeline.evals.resultsfile import read_results
    from pipeline.outputs import check_files, write_files

    check_files(request.files)
    runs: dict[str, EvalRun] = {}
    for path in request.paths:
        run = read_results(path)  # bounded, and checked against the schema: a shard is untrusted
        if str(path) in runs:
            what = f"shard {run.shard}" if run.shard else "the run"
            raise UsageError(f"{what} is given twice: {path} twice on the command line")
        runs[str(path)] = run
    check_shards(runs)  # every shard of one split, each once; no case twice
    merged = merge(runs.values())
    outcome = EvalOutcome(merged, merged.to_json())
    write_files(request.files, outcome)
    return outcome
