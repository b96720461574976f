"""``knowngood diff BASE [HEAD]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say, show


@click.command("diff")
@click.argument("base")
@click.argument("head", required=False, default="HEAD")
@repo_option
@format_option("text", "json", "markdown")
def command(base: str, head: str, repo: Path | None, fmt: str) -> int:
    """What changed per agent between two commits, and the semver bump each needs.

    Reads both revisions from git objects (no checkout). HEAD defaults to the current commit;
    uncommitted changes are not included (a warning names them). For each agent: the files that changed, the resolved
    config per environment, a diff of the rendered system prompt, tool-schema compatibility
    (a breaking change needs a major bump), and the bump: major, minor, patch or none.

    The diff is informational: it exits 0 whenever it could compute a diff, whatever it found
    (the pull-request gate is `knowngood gate`). Exit 2: unknown revision or bad usage.

    \b
    Examples:
      knowngood diff main
      knowngood diff support/v1.4.0 HEAD --format json
      knowngood diff origin/main --format markdown >> "$GITHUB_STEP_SUMMARY"
    """
    from pipeline.changes.command import DiffRequest, run
    from pipeline.report.diff import REPORTERS

    outcome = run(resolve_repo(repo), DiffRequest(base, head, say=say))
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
