"""``knowngood validate [PATHS]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say, show


@click.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as failures.")
@repo_option
@format_option("text", "json", "github")
def command(paths: tuple[Path, ...], strict: bool, repo: Path | None, fmt: str) -> int:
    """Check every file against its schema, every cross-reference, tool schemas against each
    provider in the agent's chain, template variables, and secrets.

    With PATHS, only findings in those files or folders are reported.

    \b
    Examples:
      knowngood validate
      knowngood validate agents/support --format json
      knowngood validate --strict --format github
    """
    from pipeline.report.findings import REPORTERS
    from pipeline.validate.command import ValidateRequest, run

    root = resolve_repo(repo)
    absolute = tuple(p if p.is_absolute() else Path.cwd() / p for p in paths)
    outcome = run(root, ValidateRequest(paths=absolute, strict=strict, say=say))
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
