"""``knowngood results merge FILE... --output FILE``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.options import format_option, out_file


@click.group("results")
def command() -> None:
    """Work with results files written by `knowngood eval --output`."""


@command.command("merge")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@out_file("--output", "Write the merged JSON here.")
@out_file("--junit", "Also write JUnit XML.")
@out_file("--markdown", "Also write a markdown summary.")
@format_option("text", "json")
def merge_command(
    files: tuple[Path, ...],
    output: Path | None,
    junit: Path | None,
    markdown: Path | None,
    fmt: str,
) -> int:
    """Merge the results of shard jobs (`eval --shard K/N --output shard-K.json`) into one.

    The exit code is the merged run's: 0 all passed, 1 failures, 3 incomplete.

    \b
    Example:
      knowngood results merge shard-*.json --output results.json --junit junit.xml
    """
    from pipeline.errors import UsageError
    from pipeline.evals.results import EvalRun, merge
    from pipeline.report.evals import render_text, write_reports

    runs = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("kind") != "eval-results":
                raise ValueError("not a knowngood results file (kind != eval-results)")
            runs.append(EvalRun.from_json(data))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"{path}: cannot read results: {e}") from e
    merged = merge(runs)
    data = write_reports(merged, output=output, junit=junit, markdown=markdown)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        render_text(merged)
    return merged.exit_code
