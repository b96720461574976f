"""``knowngood incident open|ack|mitigate|resolve|list|show``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo

F = TypeVar("F", bound=Callable[..., Any])
SEVERITIES = ("P1", "P2", "P3", "P4")


def _common(func: F) -> F:
    func = click.option(
        "--remote", default="origin", show_default=True, help="The git remote of the records."
    )(func)
    func = click.option(
        "--no-fetch", "no_fetch", is_flag=True, help="Use this clone's records; do not fetch."
    )(func)
    return format_option("text", "json")(repo_option(func))


def _step_options(func: F) -> F:
    func = click.option("--note", "why", default="", help="What was done or found.")(func)
    func = click.option(
        "--by", default=None, help="Who took the step (default: git user.name, $GITHUB_ACTOR)."
    )(func)
    func = click.option(
        "--at", default=None, metavar="TIME", help="When it happened (ISO 8601; default now)."
    )(func)
    return func


def _run(repo: Path | None, fmt: str, **fields: Any) -> int:
    from pipeline.incidents.core import Request, run
    from pipeline.report.incident import render

    root = resolve_repo(repo)
    no_fetch = fields.pop("no_fetch", False)
    outcome = run(root, Request(fetch=not no_fetch, **fields))
    render(outcome, fmt)
    return 0


@click.group("incident")
def command() -> None:
    """Incidents with a severity (P1-P4) and a timeline: detected, acknowledged, mitigated,
    resolved, each step with when and who or what took it (a record on the records branch).

    A P1 or P2 notifies at once (the webhook of knowngood.yaml revert.notify_webhook_env),
    naming the runbook section to follow (runbooks/AGENT.md#SCENARIO; a P1 adds #p1-playbook).
    Resolving writes a post-mortem skeleton to postmortems/DATE-ID.md. knowngood opens
    incidents itself too: auto-revert (P1 in production, P2 elsewhere), a failed drill (P3),
    the runtime when every provider of an agent is down (P1 in production) or a breaker stays
    open too long (P2 in production).

    Exit 0 done; 1 the incident was resolved already, or already took that step; 2 unknown
    severity, agent, environment or incident id. Bad input writes nothing.

    \b
    Examples:
      knowngood incident open support --severity P1 --what "answers are empty" --scenario model-api-outage
      knowngood incident ack 3f2a
      knowngood incident mitigate 3f2a --note "failed over to anthropic"
      knowngood incident resolve 3f2a --note "openai recovered"
      knowngood incident list --open
      knowngood incident show 3f2a --format json
    """


@command.command("open")
@click.argument("agent")
@click.option(
    "--severity",
    type=click.Choice(SEVERITIES),
    required=True,
    help="P1 (service down in production) to P4.",
)
@click.option("--what", required=True, help="One line: what is wrong.")
@click.option("--env", default="production", show_default=True, help="The environment hit.")
@click.option(
    "--scenario",
    type=click.Choice(
        [
            "model-api-outage",
            "prompt-change-breaks-the-agent",
            "state-corruption",
            "tool-api-breaking-change",
            "full-rebuild",
        ]
    ),
    default=None,
    help="The runbook section to follow.",
)
@click.option("--release", default=None, help="The release involved (AGENT/vX.Y.Z).")
@click.option("--no-notify", "no_notify", is_flag=True, help="Do not notify, even for P1/P2.")
@_step_options
@_common
def open_(agent: str, severity: str, what: str, env: str, scenario: str | None, release: str | None, no_notify: bool, **rest: Any) -> int:  # fmt: skip
    """Open an incident for AGENT: the detected step (by you, now, unless --by/--at)."""
    return _run(
        rest.pop("repo"),
        rest.pop("fmt"),
        action="open",
        agent=agent,
        severity=severity,
        what=what,
        env=env,
        scenario=scenario,
        release=release,
        notify=not no_notify,
        **rest,
    )


def _stepper(action: str, help_text: str) -> click.Command:
    @click.argument("ident", metavar="ID")
    @_step_options
    @_common
    def step(ident: str, **rest: Any) -> int:
        return _run(rest.pop("repo"), rest.pop("fmt"), action=action, ident=ident, **rest)

    step.__doc__ = help_text
    return command.command(action)(step)


_stepper("ack", "Acknowledge incident ID (a unique prefix of it will do): you are on it.")
_stepper("mitigate", "Record that service is restored for incident ID (the cause may remain).")


@command.command("resolve")
@click.argument("ident", metavar="ID")
@click.option(
    "--no-postmortem", "no_postmortem", is_flag=True, help="Do not write the post-mortem skeleton."
)
@_step_options
@_common
def resolve(ident: str, no_postmortem: bool, **rest: Any) -> int:
    """Resolve incident ID and write its post-mortem skeleton (postmortems/DATE-ID.md)."""
    return _run(
        rest.pop("repo"),
        rest.pop("fmt"),
        action="resolve",
        ident=ident,
        postmortem=not no_postmortem,
        **rest,
    )


@command.command("list")
@click.argument("agent", required=False)
@click.option("--env", default=None, help="Only this environment.")
@click.option("--severity", type=click.Choice(SEVERITIES), default=None, help="Only this severity.")
@click.option("--open", "open_only", is_flag=True, help="Only open incidents.")
@_common
def list_(agent: str | None, env: str | None, severity: str | None, open_only: bool, **rest: Any) -> int:  # fmt: skip
    """Incidents, newest first, with MTTA and MTTR per agent and per severity."""
    return _run(
        rest.pop("repo"),
        rest.pop("fmt"),
        action="list",
        agent=agent,
        env=env,
        severity=severity,
        open_only=open_only,
        **rest,
    )


@command.command("show")
@click.argument("ident", metavar="ID")
@click.option(
    "--postmortem",
    is_flag=True,
    help="Write the post-mortem skeleton of a resolved incident (e.g. one auto-revert resolved).",
)
@_common
def show(ident: str, postmortem: bool, **rest: Any) -> int:
    """An incident's timeline, figures and runbook sections."""
    return _run(
        rest.pop("repo"),
        rest.pop("fmt"),
        action="show",
        ident=ident,
        postmortem=postmortem,
        **rest,
    )
