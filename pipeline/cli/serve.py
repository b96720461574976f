"""``knowngood serve``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import repo_option, resolve_repo


@click.command("serve")
@click.option("--env", "env", default="production", show_default=True, help="The environment.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="0: any free port.",
)
@click.option(
    "--deployments",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Read bundles from this directory (<env>/<agent>/current.json) instead of the "
    "directory deploy target of knowngood.yaml.",
)
@click.option(
    "--state-store",
    "state_store",
    default=None,
    metavar="URL",
    help="Override runtime.state_store (sqlite:///path).",
)
@click.option(
    "--reuse-port",
    is_flag=True,
    help="Let several serve processes listen on the same port (SO_REUSEPORT).",
)
@click.option(
    "--no-backups",
    "no_backups",
    is_flag=True,
    help="Do not run the backup schedule of runtime.backup (e.g. a copy started by a drill).",
)
@repo_option
def command(
    env: str,
    host: str,
    port: int,
    deployments: Path | None,
    state_store: str | None,
    reuse_port: bool,
    no_backups: bool,
    repo: Path | None,
) -> int:
    """Serve the agents deployed to ENV over HTTP, in the OpenAI chat-completions format.

    `model` names the agent. What runs is the release the deploy target says is current,
    never the working tree; a deploy, rollback or auto-revert is picked up within a second.
    Each request fails over through the agent's chain as its `resilience` settings say;
    circuit breakers live in the state store, shared by every serve process using it.

    Endpoints: POST /v1/chat/completions (streaming too), GET /v1/models, /healthz,
    /readyz (503 while nothing is deployed), /metrics (Prometheus).

    With runtime.backup set in knowngood.yaml, one serve process per state store also backs
    it up on a schedule (journal every ship_every_s, a snapshot every snapshot_every_s, the
    retention); /metrics reports the achieved RPO as knowngood_backup_rpo_seconds.

    Keys come from the environment only (the providers' variables or api_key_env).
    SIGTERM or Ctrl-C stops it after the requests in flight finish.

    \b
    Examples:
      knowngood serve
      knowngood serve --env staging --port 8001
      curl localhost:8000/v1/chat/completions -d '{"model": "support",
        "messages": [{"role": "user", "content": "Where is my order?"}]}'
    """
    import asyncio

    from pipeline.runtime.server import serve

    root = resolve_repo(repo)

    def log(message: str) -> None:
        click.echo(f"knowngood serve: {message}", err=True)

    asyncio.run(
        serve(
            root,
            env=env,
            host=host,
            port=port,
            deployments=deployments,
            state_store=state_store,
            reuse_port=reuse_port,
            backups=not no_backups,
            log=log,
        )
    )
    return 0
