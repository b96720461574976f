"""From a request (which agents, suites, providers, options) to an EvalRun over a validated repo.

Shared by ``knowngood eval``, the pull-request gate and post-deploy checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.errors import CheckFailed, UsageError
from pipeline.evals.graders import Graders
from pipeline.evals.plan import EvalOptions, Target, case_providers
from pipeline.evals.results import CaseResult, EvalRun
from pipeline.evals.runner import run_eval
from pipeline.repo import Repo


class Progress(Protocol):
    """Whoever watches an eval run: entered when a run starts, told each finished case, exited
    when the run ends. The command line passes one in (:mod:`pipeline.report.progress` draws a
    bar or a line per case); the core only calls it, so it never imports a reporter."""

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> None: ...

    def update(self, case: CaseResult) -> None: ...


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
    graders: Graders | None = None  # who grades judge and similar; None: the repository's own


def load_valid_repo(root: Path) -> Repo:
    """The typed repository, or CheckFailed listing the validation errors (exit 1)."""
    from pipeline.validate import valid_repo

    what, hint = "the repository does not validate", "run `knowngood validate` for every finding"
    return valid_repo(root, what, hint=hint, error=CheckFailed, show=20)


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
    root: Path,
    request: EvalRequest,
    *,
    progress: Progress | None = None,
    commit: str | None = None,
) -> EvalRun:
    repo = load_valid_repo(root)
    targets = select_targets(repo, request, empty_ok=False)
    return run_targets(repo, targets, request, progress=progress, commit=commit)


def run_targets(
    repo: Repo,
    targets: Sequence[Target],
    request: EvalRequest,
    *,
    progress: Progress | None = None,
    commit: str | None = None,
) -> EvalRun:
    """Evaluate ``targets``; each finished case goes to ``progress`` (None: nobody watches)."""
    options = options_for(request)
    if options.budget_usd is None:
        options.budget_usd = repo.settings.eval.budget_usd
    watching: AbstractContextManager[object] = progress if progress is not None else nullcontext()
    with watching:
        return run_eval(
            repo.settings,
            targets,
            options,
            root=repo.root,
            judge_prompts=repo.judge_prompts,
            on_result=progress.update if progress is not None else None,
            commit=commit or _head(repo.root),
            graders=request.graders,
        )


def _head(root: Path) -> str | None:
    from pipeline.git import Git

    git = Git(root)
    result = git.try_run("rev-parse", "HEAD")
    return result.stdout.strip() if result.code == 0 else None
