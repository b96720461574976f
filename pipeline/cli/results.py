"""``knowngood results merge FILE... --output FILE``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, out_file, show


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
    from pipeline.eval_command import MergeRequest, merge_results
    from pipeline.report.evals import files as out_files
    from pipeline.report.evals import merged_reporters

    outcome = merge_results(MergeRequest(files, out_files(output, junit, markdown)))
    show(merged_reporters()[fmt](outcome))
    return outcome.exit_code
