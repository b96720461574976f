"""``knowngood init [DIR]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, show


@click.command("init")
@click.argument(
    "directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@format_option("text", "json")
def command(directory: Path, force: bool, fmt: str) -> int:
    """Scaffold a knowngood repository: knowngood.yaml, one example agent with a prompt, tools and
    environment overlays, a pull-request suite and a post-deploy smoke suite, the JSON Schemas,
    the GitHub workflows (pull-request gate; release and deploy with auto-revert; /revert;
    rollback; monthly drills; every action pinned to a commit SHA), .ci/install (what the
    workflows run to install knowngood), and a .gitignore. Runs `git init` (branch main) when
    DIR is not inside a git repository. Nothing is written when a file would be overwritten
    (exit 2) unless --force. With --format json, what it wrote goes to stdout as JSON.

    \b
    Example:
      knowngood init my-agents && cd my-agents && knowngood validate && knowngood eval
    """
    from pipeline.report.init import REPORTERS
    from pipeline.scaffold import init

    result = init(directory, force=force)
    show(REPORTERS[fmt](result))
    return result.exit_code
