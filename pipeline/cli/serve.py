"""``knowngood serve``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pipeline.cli.options import (
    format_option,
    repo_option,
    resolve_repo,
    show,
    state_store_option,
    with_options,
)

OPTIONS = (
    click.option("--env", "env", default="production", show_default=True, help="The environment."),
    click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on."),
    click.option(
        "--port",
        type=click.IntRange(0, 65535),
        default=8000,
        show_default=True,
        help="0: any free port.",
    ),
    click.option(
        "--deployments",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Read bundles from this directory (<env>/<agent>/current.json) instead of the "
        "directory deploy target of knowngood.yaml.",
    ),
    state_store_option(
        "Override runtime.state_store (sqlite:///path, or postgresql://user@host/db for "
        "several workers).",
    ),
    click.option(
        "--reuse-port",
        is_flag=True,
        help="Let several serve processes listen on the same port (SO_REUSEPORT).",
    ),
    click.option(
        "--receive-deploys",
        "receive_deploys",
        is_flag=True,
        help="Be the http deploy target of knowngood.yaml: accept signed bundles at POST "
        "/knowngood/deploy and report what runs at GET /knowngood/current (kept in "
        "--deployments, default .knowngood/received).",
    ),
    click.option(
        "--workflows",
        "workflows",
        multiple=True,
        metavar="MODULE",
        help="Import MODULE (importable from the repository root) for the durable workflows it "
        "declares, and run them: this process becomes the state store's worker and resumes the "
        "workflows a killed worker left pending. Repeatable.",
    ),
    click.option(
        "--access-log",
        "access_log",
        metavar="FILE",
        default=None,
        help="Append one JSON line per request to FILE (- : standard output): id, route, "
        "status, time, agent, release, provider, attempts; never messages, answers or session "
        "ids. Reopened when rotated.",
    ),
    click.option(
        "--trust-forwarded-from",
        "trusted_proxies",
        multiple=True,
        metavar="CIDR",
        help="In the access log, believe X-Forwarded-For when the peer is in this network "
        "(your load balancer, e.g. 10.0.0.0/8): the client is then the address it forwarded "
        "for. Repeatable. Without it the client is the TCP peer.",
    ),
    click.option(
        "--drain-s",
        "drain_s",
        type=click.FloatRange(0, 3600),
        default=0.0,
        show_default=True,
        metavar="SECONDS",
        help="On SIGTERM or Ctrl-C, first answer /readyz with 503 this long while still serving "
        "(the load balancer takes the process out of rotation), then stop accepting and finish "
        "the requests in flight. A second signal skips the rest of it.",
    ),
    click.option(
        "--idle-timeout-s",
        "idle_timeout_s",
        type=click.FloatRange(1, 86400),
        default=75.0,
        show_default=True,
        metavar="SECONDS",
        help="Close a connection that has not sent a whole request head (request line and "
        "headers) this long after it opened or after its last response: a client sending half "
        "a header and waiting, or an idle keep-alive connection. Keep it above the idle "
        "timeout of the load balancer in front (60 s on AWS ALB and nginx).",
    ),
    click.option(
        "--no-backups",
        "no_backups",
        is_flag=True,
        help="Do not run the backup schedule of runtime.backup (e.g. a copy started by a drill).",
    ),
    repo_option,
    format_option("text", "json"),
)


HELP = """Serve the agents deployed to ENV over HTTP, in the OpenAI chat-completions format.

`model` names the agent. What runs is the release the deploy target says is current,
never the working tree; a deploy, rollback or auto-revert is picked up within a second.
Each request fails over through the agent's chain as its `resilience` settings say;
circuit breakers live in the state store, shared by every serve process using it, and
their transitions are kept runtime.breaker_events_keep_days (default 90).

Endpoints: POST /v1/chat/completions (streaming too), GET /v1/models, /healthz,
/readyz (503 while nothing is deployed), /metrics (Prometheus), GET /v1/queued/ID,
GET and DELETE /v1/sessions/ID. Every response says its X-Request-Id (the client's own,
or a new one); --access-log logs it with each request. A request sent again with the same
Idempotency-Key header is answered once: the retry gets the first one's answer.

A request naming a session (`session` in the body or the X-Knowngood-Session header)
sends only its new messages: the conversation so far comes from the state store, and
the turn is stored once answered (runtime.sessions_keep_days deletes those left unused).
With `on_all_down: queue`, a request made while every
provider is down gets 202 (the holding message, an id, a status URL) and is answered
when a provider is back, at GET /v1/queued/ID and POSTed to its `callback` URL if given;
this runs the durable engine like --workflows does.

With runtime.backup set in knowngood.yaml, one serve process per state store also backs
it up on a schedule (journal every ship_every_s, a snapshot every snapshot_every_s, the
retention); /metrics reports the achieved RPO as knowngood_backup_rpo_seconds.

Keys come from the environment only (the providers' variables or api_key_env).
With runtime.api_key_env set, clients must send one of that variable's keys as
`Authorization: Bearer KEY` (an OpenAI client's api_key) on the /v1/ routes; serve
does not start while it is unset. Without it, serve takes every request.
SIGTERM or Ctrl-C stops it after the requests in flight finish.
What serve says goes to stderr, one line each: `knowngood serve: ...`, or with
--format json one JSON object per line (at, pid, message) for a log collector.

With --workflows, serve also runs durable workflows (DBOS, in the state store): on a
SQLite store only one such worker may run (a second is refused, naming the first's
pid); on PostgreSQL any number may. A worker deletes the workflows that ended
runtime.workflows_keep_days (default 30) ago.

\b
Examples:
  knowngood serve
  knowngood serve --env staging --port 8001
  knowngood serve --host 0.0.0.0 --receive-deploys   (deploy.target: {type: http, ...})
  knowngood serve --workflows flows.refunds
  curl localhost:8000/v1/chat/completions -d '{"model": "support",
    "messages": [{"role": "user", "content": "Where is my order?"}]}'
"""


@click.command("serve", help=HELP)
@with_options(OPTIONS)
def command(
    env: str,
    host: str,
    port: int,
    deployments: Path | None,
    state_store: str | None,
    reuse_port: bool,
    receive_deploys: bool,
    workflows: tuple[str, ...],
    no_backups: bool,
    access_log: str | None,
    trusted_proxies: tuple[str, ...],
    drain_s: float,
    idle_timeout_s: float,
    repo: Path | None,
    fmt: str,
) -> int:
    from pipeline.errors import KnowngoodError
    from pipeline.report.serve import LINES, REPORTERS, refused
    from pipeline.runtime.serving import ServeRequest, run

    line = LINES[fmt]

    def say(message: str) -> None:
        click.echo(line(message), err=True)

    request = ServeRequest(
        env=env,
        host=host,
        port=port,
        deployments=deployments,
        state_store=state_store,
        reuse_port=reuse_port,
        receive_deploys=receive_deploys,
        workflows=workflows,
        backups=not no_backups,
        access_log=access_log,
        trusted_proxies=trusted_proxies,
        drain_s=drain_s,
        idle_timeout_s=idle_timeout_s,
        say=say,
    )
    try:
        outcome = run(resolve_repo(repo), request)
    except KnowngoodError as e:
        if fmt != "json":
            raise  # the error boundary's text, as for every command
        show(refused(e))  # a log collector reading JSON lines reads this one too
        return e.exit_code
    show(REPORTERS[fmt](outcome))
    if outcome.steps_left:  # their workflows are pending in the store: the restart resumes them
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(outcome.exit_code)  # do not wait on the DBOS threads still running them
    return outcome.exit_code
