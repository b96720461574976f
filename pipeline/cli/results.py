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

    The files must be every shard of one split (K/N for each K once, same commit), or whole
    runs with no case in common: a missing or repeated shard is refused (exit 2), naming it.
    Otherwise the exit code is the merged run's: 0 all passed, 1 failures, 3 incomplete.

    \b
    Example:
      knowngood results merge shard-*.json --output results.json --junit junit.xml
    """
    from pipeline.errors import UsageError
    from pipeline.evals.results import EvalRun, check_shards, merge
    from pipeline.report.evals import render_text, write_reports

    runs: dict[str, EvalRun] = {}
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("kind") != "eval-results":
                raise ValueError("not a knowngood results file (kind != eval-results)")
            run = EvalRun.from_json(data)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"{path}: cannot read results: {e}") from e
        if str(path) in runs:
            what = f"shard {run.shard}" if run.shard else "the run"
            raise UsageError(f"{what} is given twice: {path} twice on the command line")
        runs[str(path)] = run
    check_shards(runs)  # every shard of one split, each once; no case twice
    merged = merge(runs.values())
    data = write_reports(merged, output=output, junit=junit, markdown=markdown)
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        render_text(merged)
    return merged.exit_code
