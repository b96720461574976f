"""Options every command shares (DESIGN.md: every command takes --repo and --format)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from pipeline.report.progress import CaseProgress
    from pipeline.report.reporter import Rendered
    from pipeline.source import Source

F = TypeVar("F", bound=Callable[..., Any])


def with_options(decorators: tuple[Callable[[Any], Any], ...]) -> Callable[[F], F]:
    """Apply a command's option decorators, listed top to bottom as they would be stacked (a
    command's options live in one tuple beside it, so the function is what it does)."""

    def decorate(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return decorate


def repo_option(func: F) -> F:
    return click.option(
        "--repo",
        "repo",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The knowngood repository (default: the one enclosing the current directory).",
    )(func)


def state_store_option(help_text: str = "Override runtime.state_store.") -> Callable[[F], F]:
    """``--state-store URL``, with what it means for the command."""

    def decorate(func: F) -> F:
        return click.option(
            "--state-store", "state_store", default=None, metavar="URL", help=help_text
        )(func)

    return decorate


STORE_HELP = "Override runtime.state_store (sqlite:///path or postgresql://...)."


def older_than_option(help_text: str) -> Callable[[F], F]:
    """``--older-than DAYS`` (a positive number; None when not given) of a prune."""

    def decorate(func: F) -> F:
        return click.option(
            "--older-than",
            "older_than",
            type=click.FloatRange(0, min_open=True),
            default=None,
            metavar="DAYS",
            help=help_text,
        )(func)

    return decorate


def format_option(*choices: str) -> Callable[[F], F]:
    names = choices or ("text", "json")
    text = "Output format"
    if "github" in names:
        text += " (github: workflow annotations on the files and lines)"

    def decorate(func: F) -> F:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(names),
            default="text",
            show_default=True,
            help=text + ".",
        )(func)

    return decorate


def resolve_repo(repo: Path | None) -> Path:
    from pipeline.errors import UsageError
    from pipeline.repo import CONFIG_FILE, find_root

    if repo is None:
        return find_root()
    if not (repo / CONFIG_FILE).is_file():
        raise UsageError(
            f"not a knowngood repository: {repo} has no {CONFIG_FILE}",
            hint="run `knowngood init` to create one",
        )
    return repo.resolve()


def out_file(flag: str, help_text: str) -> Callable[[F], F]:
    """An option naming a file to write (``--output``, ``--junit``, ``--markdown``)."""
    dest = flag.lstrip("-").replace("-", "_")
    return click.option(flag, dest, type=click.Path(dir_okay=False, path_type=Path), help=help_text)


def provider_options(func: F) -> F:
    """``--provider`` (only these) and ``--require`` (a missing key fails instead of skipping)."""
    func = click.option(
        "--require",
        "require",
        multiple=True,
        metavar="PROVIDER",
        help="Fail instead of skipping when this provider's key is missing (repeatable).",
    )(func)
    return click.option(
        "--provider", "providers", multiple=True, help="Only these providers (repeatable)."
    )(func)


def concurrency_option(func: F) -> F:
    return click.option(
        "-j",
        "--concurrency",
        type=click.IntRange(1, 256),
        help="Requests in flight per provider (the next calls are prepared meanwhile).",
    )(func)


def say(line: str) -> None:
    """A core's diagnostics while it runs (the ``say`` of its request): one line on stderr."""
    click.echo(line, err=True)


def show(rendered: Rendered) -> None:
    """What a reporter rendered: the data on stdout, the diagnostics on stderr."""
    if rendered.out:
        click.echo(rendered.out, nl=False)
    if rendered.err:
        click.echo(rendered.err, err=True, nl=False)


def say_read(source: Source) -> None:
    """Which revision the command read, and one warning line for uncommitted changes (stderr)."""
    for line in source.lines():
        click.echo(line, err=True)


def eval_progress(show: bool) -> CaseProgress | None:
    """What the core tells each finished eval case to: a bar or a line per case on stderr, or
    nobody (JSON output keeps stderr for diagnostics only)."""
    if not show:
        return None
    from pipeline.report.progress import CaseProgress

    return CaseProgress()
