"""From a request (which agents, suites, providers, options) to an EvalRun over a validated repo.

Shared by ``knowngood eval``, the pull-request gate and post-deploy checks.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import CheckFailed, UsageError
from pipeline.evals.results import CaseResult, EvalRun
from pipeline.evals.runner import EvalOptions, Target, case_providers, run_eval
from pipeline.repo import Repo


@dataclass(slots=True)
class EvalRequest:
    agents: Sequence[str] = ()
    suites: Sequence[str] = ()
    kind: str | None = None  # "pull_request" | "post_deploy" | None: every suite
    changed_since: str | None = None
    providers: Sequence[str] = ()
    require: Sequence[str] = ()
    env: str | None = None
    repeat: int | None = None
    concurrency: int | None = None
    budget_usd: float | None = None
    use_cache: bool = True
    offline: bool = False
    shard: tuple[int, int] | None = None
    timeout_s: float | None = None
    retries: int | None = None
    cache_dir: Path | None = None
    processes: int | None = None  # None: lanes.auto_processes


def load_valid_repo(root: Path) -> Repo:
    """The typed repository, or CheckFailed listing the validation errors (exit 1)."""
    from pipeline.validate import validate_repo

    report = validate_repo(root, build=True)
    if report.errors or report.repo is None:
        shown = "\n".join("  " + f.render() for f in report.errors[:20])
        more = f"\n  ... and {len(report.errors) - 20} more" if len(report.errors) > 20 else ""
        raise CheckFailed(
            f"the repository does not validate ({len(report.errors)} errors):\n{shown}{more}",
            hint="run `knowngood validate` for every finding",
        )
    return report.repo


def select_targets(
    repo: Repo, request: EvalRequest, *, git_root: Path | None = None, empty_ok: bool = True
) -> list[Target]:
    """The agents and suites ``request`` selects. With ``empty_ok=False`` a selection that
    evaluates nothing (no agent, suite, case or provider left, or a ``--require`` provider that
    no selected case runs on) is a UsageError saying why: a run of nothing must never pass."""
    names = list(request.agents) or sorted(repo.agents)
    for name in names:
        if name not in repo.agents:
            known = ", ".join(sorted(repo.agents)) or "none"
            raise UsageError(f"no agent named {name!r} (agents: {known})")
    if request.changed_since:
        from pipeline.changes import affected_agents
        from pipeline.git import Git

        affected = affected_agents(Git(repo.root), repo.root, request.changed_since, "HEAD")
        names = [n for n in names if n in affected]
    for provider in (*request.providers, *request.require):
        if provider not in repo.settings.providers:
            known = ", ".join(sorted(repo.settings.providers))
            raise UsageError(
                f"no provider named {provider!r} in knowngood.yaml (providers: {known})"
            )
    targets: list[Target] = []
    found_suites: set[str] = set()
    for name in names:
        suites = repo.suites_for(name, request.kind)
        if request.suites:
            suites = [s for s in suites if s.name in request.suites]
        found_suites.update(s.name for s in suites)
        if suites:
            targets.append(Target(repo.agent(name, request.env), suites))
    missing = [s for s in request.suites if s not in found_suites]
    if missing and names:
        raise UsageError(f"no suite named {', '.join(map(repr, missing))} for the selected agents")
    if not empty_ok:
        nothing = _nothing_selected(repo, request, names, targets)
        if nothing is not None:
            raise UsageError(f"nothing to evaluate: {nothing[0]}", hint=nothing[1])
    return targets


_WIDEN = "widen the selection (`knowngood eval` alone evaluates every suite of every agent)"


def _nothing_selected(
    repo: Repo, request: EvalRequest, names: Sequence[str], targets: Sequence[Target]
) -> tuple[str, str] | None:
    """(why, what to do) when ``targets`` evaluate nothing under ``request``; None if they do."""
    if not repo.agents:
        return "the repository has no agents", "add agents/<name>/agent.yaml (see knowngood init)"
    if not names:
        return f"no agent changed since {request.changed_since}", "drop --changed-since"
    if not targets:
        kind = f"{request.kind} " if request.kind else ""
        where = ", ".join(f"agents/{n}/agent.yaml" for n in names)
        return (
            f"{', '.join(names)} {'has' if len(names) == 1 else 'have'} no {kind}suites",
            f"list suites under evals: in {where}, or {_WIDEN}",
        )
    used: dict[str, set[str]] = {}  # provider -> agents whose selected cases run on it
    for target in targets:
        for suite in target.suites:
            for case in suite.cases:
                for provider in case_providers(target.agent, suite, case):
                    used.setdefault(provider, set()).add(target.agent.name)
    if not used:
        return "the selected suites have no cases", _WIDEN
    chains = ", ".join(f"agents/{t.agent.name}/agent.yaml" for t in targets)
    wanted = [p for p in request.providers if p in used]
    if request.providers and not wanted:
        given = ", ".join(map(repr, request.providers))
        return (
            f"--provider {given} selects no case: the selected cases run on "
            f"{', '.join(sorted(used))}",
            f"pick one of those, or add the provider to the model chain in {chains} "
            "(or to a suite's or case's providers)",
        )
    reach = set(wanted) if request.providers else set(used)
    for provider in request.require:
        if provider not in reach:
            return (
                f"--require {provider}: no selected case runs on {provider!r} "
                f"(they run on {', '.join(sorted(reach))})",
                f"add {provider} to the model chain in {chains} (or to a suite's or case's "
                f"providers), or drop --require {provider}",
            )
    return None


def options_for(request: EvalRequest) -> EvalOptions:
    return EvalOptions(
        providers=tuple(request.providers),
        require=tuple(request.require),
        repeat=request.repeat,
        concurrency=request.concurrency,
        budget_usd=request.budget_usd,
        use_cache=request.use_cache,
        offline=request.offline,
        shard=request.shard,
        timeout_s=request.timeout_s,
        retries=request.retries,
        cache_dir=request.cache_dir,
        processes=request.processes,
    )


def run_request(
    root: Path, request: EvalRequest, *, progress: bool = False, commit: str | None = None
) -> EvalRun:
    repo = load_valid_repo(root)
    targets = select_targets(repo, request, empty_ok=False)
    return run_targets(repo, targets, request, progress=progress, commit=commit)


def run_targets(
    repo: Repo,
    targets: Sequence[Target],
    request: EvalRequest,
    *,
    progress: bool = False,
    commit: str | None = None,
) -> EvalRun:
    options = options_for(request)
    if options.budget_usd is None:
        options.budget_usd = repo.settings.eval.budget_usd
    with Progress(enabled=progress) as bar:
        return run_eval(
            repo.settings,
            targets,
            options,
            root=repo.root,
            judge_prompts=repo.judge_prompts,
            on_result=bar.update,
            commit=commit or _head(repo.root),
        )


def _head(root: Path) -> str | None:
    from pipeline.git import Git

    git = Git(root)
    result = git.try_run("rev-parse", "HEAD")
    return result.stdout.strip() if result.code == 0 else None


def plain_progress() -> bool:
    """Progress is one plain line per case (CI, pipes) rather than a live bar (a terminal)."""
    return not (sys.stderr.isatty() and not os.environ.get("CI"))


class Progress:
    """A rich progress bar on a TTY; one plain line per finished case in CI (or when piped)."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and not plain_progress()
        self._bar: Any = None
        self._task: Any = None
        self.done = 0

    def __enter__(self) -> Progress:
        return self

    def _start_bar(self) -> None:
        """The live bar, from the first finished case on: its refresh thread must not exist
        while the run forks its lanes (pipeline.evals.lanes)."""
        if self.tty and self._bar is None:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                TextColumn("[bold]eval"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=None)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def update(self, case: CaseResult) -> None:
        self.done += 1
        if not self.enabled:
            return
        from pipeline.report.evals import line, quiet_skip

        self._start_bar()
        if self._bar is not None:
            self._bar.update(
                self._task, advance=1, description=f"{case.agent}/{case.case} [{case.provider}]"
            )
        elif not quiet_skip(case):
            print(line(case), file=sys.stderr, flush=True)
