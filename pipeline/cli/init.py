"""``knowngood init [DIR]``."""

from __future__ import annotations

import os
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
    the GitHub workflows (pull-request gate; release and deploy with auto-revert; /revert;
    rollback; monthly drills; every action pinned to a commit SHA), .ci/install (what the
    workflows run to install knowngood), and a .gitignore. Runs `git init` (branch main) when
    DIR is not inside a git repository. Nothing is written when a file would be overwritten
    (exit 2) unless --force.

    \b
    Example:
      knowngood init my-agents && cd my-agents && knowngood validate && knowngood eval
    """
    from pipeline.scaffold import init

    result = init(directory, force=force)
    for rel in result.written:
        click.echo(f"  wrote {rel}", err=True)
    if result.git_init:
        click.echo(
            f"knowngood: initialised a git repository in {directory} (branch main)", err=True
        )
    if result.git_top is not None:
        rel = os.path.relpath(directory.resolve(), result.git_top)
        click.echo(
            f"knowngood: warning: {directory} is inside the git repository {result.git_top}: "
            f"GitHub runs only the workflows in {result.git_top}/.github/workflows -- move them "
            f"there and pass --repo {rel} to each knowngood command in them",
            err=True,
        )
    click.echo(
        f"knowngood repository ready in {directory}. Next:\n"
        f"  cd {directory} && knowngood validate && knowngood eval   # the local model, no key\n"
        "  git add -A && git commit -m 'knowngood init'             # then push to GitHub;\n"
        "  the workflows need the secrets of the providers you enable (e.g. OPENAI_API_KEY)\n"
        "  knowngood release && knowngood deploy --released && knowngood serve\n"
        "                                 # the agent answers on 127.0.0.1:8000, no key either",
        err=True,
    )
    return 0
