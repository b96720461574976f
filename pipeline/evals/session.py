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
from pipeline.evals.runner import EvalOptions, Target, run_eval
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
    repo: Repo, request: EvalRequest, *, git_root: Path | None = None
) -> list[Target]:
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
    return targets


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
    )


def run_request(
    root: Path, request: EvalRequest, *, progress: bool = False, commit: str | None = None
) -> EvalRun:
    repo = load_valid_repo(root)
    targets = select_targets(repo, request)
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
        if self.tty:
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
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def update(self, case: CaseResult) -> None:
        self.done += 1
        if not self.enabled:
            return
        from pipeline.report.evals import line, quiet_skip

        if self._bar is not None:
            self._bar.update(
                self._task, advance=1, description=f"{case.agent}/{case.case} [{case.provider}]"
            )
        elif not quiet_skip(case):
            print(line(case), file=sys.stderr, flush=True)
