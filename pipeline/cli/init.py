"""``knowngood init [DIR]``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("init")
@click.argument(
    "directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path)
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def command(directory: Path, force: bool) -> int:
    """Scaffold a knowngood repository: knowngood.yaml, one example agent with a prompt, tools and
    environment overlays, a pull-request suite and a post-deploy smoke suite, the JSON Schemas,
    and a GitHub workflow.

    \b
    Example:
      knowngood init my-agents && cd my-agents && knowngood validate
    """
    from pipeline.scaffold import init

    result = init(directory, force=force)
    for rel in result.written:
        click.echo(f"  wrote {rel}", err=True)
    click.echo(
        f"knowngood repository ready in {directory} -- next: cd {directory} && knowngood validate",
        err=True,
    )
    return 0
