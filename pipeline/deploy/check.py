"""Post-deploy checks: the agent's post_deploy suites against the bundle that is deployed.

What runs is what was deployed, not the working tree: the system prompt as the bundle holds it
(rendered, or the template plus each case's variables when the bundle lists runtime_vars), the
bundle's tools and model chain, and the post_deploy suites of the bundle's commit (read from git
objects). Answers are never taken from the eval cache: a check talks to the providers.

Verdict: the share of passing case-provider pairs, over the pairs that ran (a provider skipped
for a missing key is a notice, not a failure), against ``evals.pass_rate`` of the deployed
config (default 1.0). When no case could run, or only provider errors stand in the way, the
outcome is ``error`` (exit 3): the check could not tell, so nothing is reverted.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.bundle import export_revision, verify_bundle
from pipeline.deploy.context import Bundle, Context
from pipeline.errors import ConfigError, DeployError, KnowngoodError, UsageError
from pipeline.records import utc_now
from pipeline.recordtypes import CheckRecord, Deployed
from pipeline.repo import Agent, Provider, Repo, Settings, Suite, Tool
from pipeline.targets import DirectoryTarget

if TYPE_CHECKING:
    from pipeline.evals.plan import Target
    from pipeline.evals.results import EvalRun
    from pipeline.evals.session import Progress

__all__ = ["CheckOutcome", "deployed_bundle", "run_check"]


@dataclass(slots=True)
class CheckOutcome:
    agent: str
    env: str
    deployment: str  # the id of the deployment record that was checked
    release: str | None
    commit: str
    content_hash: str
    outcome: str  # passed | failed | error
    message: str
    detected_at: str  # when the verdict was reached (an incident's detection time)
    duration_s: float
    detected_clock: float = 0.0  # time.perf_counter() at the verdict: recovery times start here
    suites: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    failing: list[str] = field(default_factory=list)  # suite/case@provider
    notices: list[str] = field(default_factory=list)
    record: CheckRecord | None = None
    run: EvalRun | None = None

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"

    @property
    def exit_code(self) -> int:
        return {"passed": 0, "failed": 1}.get(self.outcome, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "env": self.env,
            "outcome": self.outcome,
            "message": self.message,
            "deployment": self.deployment,
            "release": self.release,
            "commit": self.commit,
            "content_hash": self.content_hash,
            "suites": self.suites,
            "summary": self.summary,
            "failing": self.failing,
            "notices": self.notices,
            "detected_at": self.detected_at,
            "duration_s": self.duration_s,
            "record": self.record["id"] if self.record else None,
            "cases": [c.to_json() for c in self.run.cases] if self.run else [],
        }


def deployed_bundle(ctx: Context, agent: str, env: str) -> tuple[Deployed, Bundle, list[str]]:
    """(the current deployment record, the bundle that runs, warnings)."""
    run = ctx.running(agent, env)
    if run.state == "unknown":
        raise DeployError(
            f"cannot tell what runs of {agent} in {env}: {run.note()}",
            hint=f"settle it: knowngood deploy {agent} --env {env}, or knowngood rollback",
        )
    deployment = run.deployment
    if deployment is None:
        raise UsageError(
            f"nothing to check: no successful deployment of {agent} to {env} is recorded",
            hint=f"deploy it first: knowngood deploy {agent} --env {env}",
        )
    warnings: list[str] = []
    if not isinstance(ctx.target, DirectoryTarget):
        return deployment, ctx.bundle_for_record(deployment), warnings
    bundle = ctx.target.read_current(agent, env)
    if bundle is None:
        raise DeployError(
            f"{ctx.target.folder(agent, env)}/current.json is missing, but the records say "
            f"{deployment.get('release') or deployment['commit'][:12]} was deployed there",
            hint=f"redeploy: knowngood deploy {agent} --env {env}",
        )
    try:
        verify_bundle(bundle)
    except ConfigError as e:
        raise DeployError(f"the bundle deployed for {agent} in {env}: {e.message}") from e
    if bundle["content_hash"] != deployment["content_hash"]:
        warnings.append(
            f"what runs in {env} ({bundle['content_hash'][:12]}) is not what the records say was "
            f"deployed ({deployment['content_hash'][:12]}): checking what runs"
        )
    return deployment, bundle, warnings


def run_check(
    ctx: Context,
    bundle: Mapping[str, Any],
    deployment: Deployed,
    *,
    why: str = "",
    progress: Progress | None = None,
) -> CheckOutcome:
    """Run the post-deploy suites against ``bundle`` and record the check; never raises for a
    check that could not run (that is outcome ``error``, recorded too)."""
    start = time.perf_counter()
    outcome = CheckOutcome(
        agent=bundle["agent"],
        env=bundle["env"],
        deployment=deployment["id"],
        release=bundle.get("release"),
        commit=bundle["commit"],
        content_hash=bundle["content_hash"],
        outcome="error",
        message="",
        detected_at="",
        duration_s=0.0,
    )
    try:
        _evaluate(ctx, bundle, outcome, progress=progress)
    except KnowngoodError as e:
        outcome.outcome = "error"
        outcome.message = f"the check could not run: {e.message}"
    outcome.detected_at = utc_now()
    outcome.detected_clock = time.perf_counter()
    outcome.duration_s = round(time.perf_counter() - start, 6)
    what = outcome.release or outcome.commit[:12]
    details: dict[str, Any] = {"message": outcome.message}
    if outcome.failing:
        details["failing"] = outcome.failing
    if outcome.notices:
        details["notices"] = outcome.notices
    outcome.record = ctx.record(
        "check",
        agent=outcome.agent,
        env=outcome.env,
        at=outcome.detected_at,
        what=f"check {what} in {outcome.env}",
        why=why,
        outcome=outcome.outcome,
        deployment=outcome.deployment,
        release=outcome.release,
        commit=outcome.commit,
        content_hash=outcome.content_hash,
        suites=outcome.suites,
        summary={k: v for k, v in outcome.summary.items() if k in _SUMMARY_KEYS},
        duration_s=outcome.duration_s,
        details=details,
    )
    return outcome


_SUMMARY_KEYS = ("total", "passed", "failed", "errors", "skipped", "pass_rate", "threshold")


def _evaluate(
    ctx: Context, bundle: Mapping[str, Any], outcome: CheckOutcome, *, progress: Progress | None
) -> None:
    from pipeline.evals.session import EvalRequest, load_valid_repo, run_targets

    config: Mapping[str, Any] = bundle["config"]
    evals: Mapping[str, Any] = config.get("evals") or {}
    threshold = float(evals.get("pass_rate", 1.0))
    names = [str(s) for s in evals.get("post_deploy") or []]
    outcome.suites = names
    outcome.summary = {
        "total": 0,
        "passed": 0,
        "failed": 0,
        "pass_rate": 1.0,
        "threshold": threshold,
    }
    if not names:
        outcome.outcome = "passed"
        outcome.message = "no post_deploy suites: nothing to check"
        outcome.notices.append(f"{outcome.agent} lists no evals.post_deploy suites")
        return
    with tempfile.TemporaryDirectory(prefix="knowngood-check-") as tmp:
        export = Path(tmp)
        export_revision(ctx.git, outcome.commit, _prefix(ctx), export)
        repo = load_valid_repo(export)
        available = repo.suites.get(outcome.agent, {})
        missing = [n for n in names if n not in available]
        if missing:
            raise ConfigError(
                f"post_deploy suite(s) {', '.join(missing)} of {outcome.agent} do not exist at "
                f"{outcome.commit[:12]} (evals/{outcome.agent}/<suite>.yaml)"
            )
        suites: list[Suite] = [available[n] for n in names]
        deployed = dataclasses.replace(repo, settings=_settings(repo, bundle))
        run = run_targets(
            deployed,
            [deployed_target(bundle, export, suites)],
            EvalRequest(agents=(outcome.agent,), use_cache=False),
            progress=progress,
            commit=outcome.commit,
        )
    outcome.run = run
    _verdict(outcome, run, threshold)


def _verdict(outcome: CheckOutcome, run: EvalRun, threshold: float) -> None:
    ran = [c for c in run.cases if c.status != "skipped"]
    passed = [c for c in ran if c.status == "pass"]
    failed = [c for c in ran if c.status == "fail"]
    errors = [c for c in ran if c.status == "error"]
    skipped = len(run.cases) - len(ran)
    rate = len(passed) / len(ran) if ran else 0.0
    outcome.failing = [f"{c.suite}/{c.case}@{c.provider}" for c in (*failed, *errors)]
    outcome.notices.extend(run.notices)
    outcome.summary.update(
        total=len(ran),
        passed=len(passed),
        failed=len(failed),
        errors=len(errors),
        skipped=skipped,
        pass_rate=round(rate, 6),
    )
    shown = (
        f"{len(passed)}/{len(ran)} case-provider pairs passed ({rate:.0%}, needs {threshold:.0%})"
    )
    if run.incomplete:
        outcome.outcome = "error"
        outcome.message = "the check could not complete: " + "; ".join(run.incomplete)
    elif not ran:
        outcome.outcome = "error"
        outcome.message = f"no case could run ({skipped} skipped): " + "; ".join(run.notices)
    elif rate >= threshold - 1e-9:
        outcome.outcome = "passed"
        outcome.message = shown
    elif failed:
        outcome.outcome = "failed"
        outcome.message = shown
    else:  # only provider errors: the check cannot tell whether the release is at fault
        outcome.outcome = "error"
        outcome.message = f"{shown}; the rest are provider errors: {errors[0].error}"


def deployed_target(bundle: Mapping[str, Any], export: Path, suites: list[Suite]) -> Target:
    """The agent as ``bundle`` deployed it, with ``suites``: the bundle's tools, and its system
    prompt as a plain value, final unless it needs runtime variables (then it is the template,
    rendered with each case's variables)."""
    from pipeline.evals.plan import Target

    config: Mapping[str, Any] = bundle["config"]
    tools = tuple(
        Tool(
            name=fn["name"],
            description=fn.get("description", ""),
            parameters=fn.get("parameters") or {"type": "object", "properties": {}},
            path=f"bundle:{bundle['content_hash'][:12]}",
            strict=bool(fn.get("strict", False)),
        )
        for fn in (t["function"] for t in bundle["tools"])
    )
    agent = Agent(
        name=bundle["agent"],
        dir=export / "agents" / bundle["agent"],
        raw=config,
        prompt_path=str(config["prompt"]["system"]),
        prompt_source=bundle["system_prompt"],
        tools=tools,
        environment=bundle["env"],
    )
    final = None if bundle["runtime_vars"] else str(bundle["system_prompt"])
    return Target(agent, suites, prompt=final)


def _settings(repo: Repo, bundle: Mapping[str, Any]) -> Settings:
    """The repository's settings with the providers of the bundle's model chain as deployed."""
    providers: dict[str, Provider] = dict(repo.settings.providers)
    for entry in bundle["model_chain"]:
        name = entry["provider"]
        known = providers.get(name)
        same_model = known is not None and known.model == entry["model"]
        providers[name] = Provider(
            name=name,
            model=entry["model"],
            api_base=entry.get("api_base"),
            api_key_env=entry.get("api_key_env"),
            params=dict(entry.get("params") or {}),
            timeout_s=known.timeout_s if known else None,
            concurrency=known.concurrency if known else None,
            serve=known.serve if known and same_model else None,
        )
    return dataclasses.replace(repo.settings, providers=providers)


def _prefix(ctx: Context) -> str:
    top = ctx.git.toplevel().resolve()
    rel = ctx.root.resolve().relative_to(top)
    return "" if rel == Path() else rel.as_posix() + "/"
