"""``knowngood run AGENT MESSAGE``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, show, with_options

OPTIONS = (
    click.argument("agent"),
    click.argument("message"),
    click.option("--env", "env", default="production", show_default=True, help="The environment."),
    click.option(
        "--var",
        "variables",
        multiple=True,
        metavar="NAME=VALUE",
        help="A prompt variable the deployed prompt needs (repeatable).",
    ),
    click.option(
        "--deployments",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Read bundles from this directory instead of the directory deploy target.",
    ),
    click.option(
        "--session",
        default=None,
        metavar="ID",
        help="Continue the conversation ID (the turns so far come from the state store; this one "
        "is stored after the answer).",
    ),
    repo_option,
    format_option("text", "json"),
)


@click.command("run")
@with_options(OPTIONS)
def command(
    agent: str,
    message: str,
    env: str,
    variables: tuple[str, ...],
    deployments: Path | None,
    session: str | None,
    repo: Path | None,
    fmt: str,
) -> int:
    """Ask AGENT, as deployed to ENV, one MESSAGE; print its answer.

    The same path as `knowngood serve`: the deployed release (never the working tree), the
    failover through its chain, the shared circuit breakers, on_all_down. The answer goes
    to stdout; which provider served it and each attempt's timing go to stderr (all of it
    on stdout with --format json).

    Exit 0 answered (a holding or cached answer included); 2 nothing deployed, unknown
    agent or bad option; 3 every provider failed, or the provider refused the request.

    \b
    Examples:
      knowngood run support "Where is my order A1?"
      knowngood run support "Hi" --env staging --var customer=Ann --format json
      knowngood run support "And the second one?" --session chat-42
    """
    from pipeline.report.run import REPORTERS
    from pipeline.runtime.oneshot import RunRequest, run

    parsed = {}
    for item in variables:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--var")
        parsed[name] = value
    request = RunRequest(agent, message, env, parsed, deployments, session)
    answer = run(resolve_repo(repo), request)
    show(REPORTERS[fmt](answer))
    return answer.exit_code
