"""``knowngood drill KIND [AGENT]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import (
    eval_progress,
    format_option,
    repo_option,
    resolve_repo,
    say,
    state_store_option,
    with_options,
)
from pipeline.deploy.drills import KINDS

OPTIONS = (
    click.argument(
        "kind",
        type=click.Choice(KINDS),
    ),
    click.argument("agent", required=False),
    click.option(
        "--env",
        "env",
        default=None,
        help="Where to drill. rollback: the scratch environment 'drill' of the deploy target "
        "(production overlay) by default, or a real environment. failover: the environment whose "
        "deployed release the runtime serves (default production; nothing is deployed).",
    ),
    state_store_option(
        "failover: drill this state store (every runtime sharing it fails over too); default "
        "a scratch one. fault: the store to set the fault in (default knowngood.yaml's). "
        "restore: the store whose backups are drilled (default knowngood.yaml's).",
    ),
    click.option(
        "--for",
        "seconds",
        type=float,
        default=300.0,
        show_default=True,
        help="fault: how long the provider fails.",
    ),
    click.option("--lift", is_flag=True, help="fault: end the provider's fault now."),
    click.option(
        "--keep", is_flag=True, help="rebuild: keep the scratch directory (its path is printed)."
    ),
    click.option(
        "--remote", default="origin", show_default=True, help="The git remote of the records."
    ),
    repo_option,
    format_option("text", "json"),
)


HELP = """Rehearse a recovery and record the measured figures.

rollback: for AGENT (default: every agent with two releases), deploy its last known good
release, roll back to an older one, run its post-deploy check, then put back what ran
before (an environment that ran nothing is emptied again). The recovery time runs from the
start of the rollback to the passed check. By default the drill uses the scratch
environment 'drill', so production is never disturbed.

failover: for AGENT (default: every deployed agent with a fallback), run the runtime on
the deployed release, make its primary provider fail (an injected fault), send requests,
and measure the time to the first fallback answer, requests that failed, the time to the
breaker opening, and the time for the primary to serve again once the fault is lifted.
It sends real requests to the providers (at most 1000, 5 a second while the breaker is
open).

crash: for AGENT (default: every deployed agent), start a worker (serve --workflows) on a
scratch state store (or --state-store), run a workflow that asks the agent and calls a
tool with an effect, kill the worker with SIGKILL after the effect and before its
checkpoint, restart it, and measure the time to resume (goal < 5 s), the time to finish
and the effects made twice (goal 0). It sends one real request to the providers.

restore: restore the latest backup of the state store (runtime.backup.target) into a
scratch store, verify it (checksums, integrity, row counts, canary) and measure RTO (to
the verified copy) and RPO (the age of the newest restorable point). The live store is
never touched. Recorded for every agent; a failed verification is a failed drill.

rebuild: build the whole runtime in a fresh scratch directory from the remote and the
latest backup alone: clone, install (.ci/install), restore the state, deploy every agent's
last known good release (to a scratch target), serve, answer one request per agent. Each
stage is timed; the total is recorded for every agent. Real targets are never touched.

fault: AGENT is a provider name: every runtime sharing the state store treats it as down
(each call fails at once) for --for seconds, or until --lift.

Exit 0 every drill passed; 1 a drill failed; 2 AGENT cannot be drilled (too few
releases, no known good release, no fallback); 3 what runs in ENV is unknown.

\b
Examples:
  knowngood drill rollback
  knowngood drill rollback support --env staging --format json
  knowngood drill failover support
  knowngood drill crash support
  knowngood drill restore
  knowngood drill rebuild --keep
  knowngood drill fault openai-main --for 120
  knowngood drill fault openai-main --lift
"""


@click.command("drill", help=HELP)
@with_options(OPTIONS)
def command(
    kind: str,
    agent: str | None,
    env: str | None,
    state_store: str | None,
    seconds: float,
    lift: bool,
    keep: bool,
    remote: str,
    repo: Path | None,
    fmt: str,
) -> int:
    from pipeline.deploy.drills import DrillRequest, run
    from pipeline.report.drills import render_drill_outcome

    request = DrillRequest(
        kind, agent, env, state_store, seconds, lift, keep, remote,
        say=say, progress=eval_progress(fmt == "text") if kind == "rollback" else None,
    )  # fmt: skip
    outcome = run(resolve_repo(repo), request)
    render_drill_outcome(outcome, fmt)
    return int(outcome.exit_code)
