"""``knowngood workflows list|show|resume|cancel|prune``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import (
    STORE_HELP,
    format_option,
    older_than_option,
    repo_option,
    resolve_repo,
    state_store_option,
)

# DBOS's workflow statuses (dbos._sys_db.WorkflowStatusString, DBOS 3.4), spelt out so that
# `--help` does not import DBOS; tests/test_durable_engine.py holds them equal.
STATUSES = (
    "PENDING",
    "ENQUEUED",
    "DELAYED",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
)


class _Status(click.Choice[str]):
    """One of STATUSES, in any case (``pending`` works), shown as DBOS spells them."""

    def normalize_choice(self, choice: object, ctx: click.Context | None) -> str:
        return str(choice).upper()


@click.group("workflows")
def command() -> None:
    """See and steer the durable workflows of the state store.

    They run in a worker (`knowngood serve --workflows MODULE`, or `Worker` in the Python
    API); these commands only read and change the store, so they work beside the worker and
    while none runs. resume puts a workflow back on the queue: the worker continues it from
    its last checkpointed step. cancel stops it before its next step. prune deletes the
    workflows that ended long ago (every worker also does, per runtime.workflows_keep_days).

    \b
    Examples:
      knowngood workflows list --status PENDING
      knowngood workflows show 6f1c2e80-... --format json
      knowngood workflows resume 6f1c2e80-...
      knowngood workflows prune --older-than 90
    """


@command.command("list")
@click.option(
    "--status",
    type=_Status(STATUSES),
    default=None,
    help="Only workflows in this status.",
)
@click.option("--name", default=None, help="Only workflows of this name.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def list_command(
    status: str | None,
    name: str | None,
    limit: int,
    state_store: str | None,
    repo: Path | None,
    fmt: str,
) -> int:
    """The newest workflows, newest first."""
    from pipeline.report.workflows import render
    from pipeline.runtime.flowclient import WorkflowsRequest, run

    request = WorkflowsRequest("list", None, status, name, limit, state_store)
    render(run(resolve_repo(repo), request), fmt)
    return 0


@command.command("show")
@click.argument("workflow_id")
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def show_command(workflow_id: str, state_store: str | None, repo: Path | None, fmt: str) -> int:
    """One workflow: its status, inputs, result and every checkpointed step.

    WORKFLOW_ID: its id, or a unique prefix of 4 or more characters (also for resume and
    cancel)."""
    return _one("show", workflow_id, state_store, repo, fmt)


@command.command("resume")
@click.argument("workflow_id")
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def resume_command(workflow_id: str, state_store: str | None, repo: Path | None, fmt: str) -> int:
    """Continue a cancelled or failed workflow from its last checkpointed step."""
    return _one("resume", workflow_id, state_store, repo, fmt)


@command.command("cancel")
@click.argument("workflow_id")
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def cancel_command(workflow_id: str, state_store: str | None, repo: Path | None, fmt: str) -> int:
    """Stop a workflow before its next step (resume continues it)."""
    return _one("cancel", workflow_id, state_store, repo, fmt)


@command.command("prune")
@older_than_option(
    "Delete the workflows that ended over DAYS ago (default: runtime.workflows_keep_days, 30)."
)
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def prune_command(
    older_than: float | None, state_store: str | None, repo: Path | None, fmt: str
) -> int:
    """Delete the workflows that ended over DAYS ago, with what they started and checkpointed.

    Their ids can then be used again: enqueueing one runs it anew. Running workflows, and
    those whose children still run, are kept.
    """
    from pipeline.report.workflows import render
    from pipeline.runtime.flowclient import WorkflowsRequest, run

    request = WorkflowsRequest("prune", state_store=state_store, older_than_days=older_than)
    render(run(resolve_repo(repo), request), fmt)
    return 0


def _one(
    action: str, workflow_id: str, state_store: str | None, repo: Path | None, fmt: str
) -> int:
    """show, resume or cancel one workflow: the request, the core, the reporter."""
    from pipeline.report.workflows import render
    from pipeline.runtime.flowclient import WorkflowsRequest, run

    request = WorkflowsRequest(action, workflow_id, state_store=state_store)
    render(run(resolve_repo(repo), request), fmt)
    return 0
