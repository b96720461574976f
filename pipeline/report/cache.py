"""Render ``cache stats`` and ``cache prune``: text or JSON on stdout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pipeline.evals.cachecmd import CacheReport


def render(report: CacheReport, fmt: str) -> int:
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
        return 0
    parsed = report.parsed_dir if report.parsed_dir is not None else "parse cache off"
    if report.removed is not None:
        click.echo(f"removed {report.removed} cached answers from {report.dir}")
        if report.parsed_dir is not None:
            click.echo(f"removed {report.parsed_removed} parsed YAML files from {parsed}")
        return 0
    click.echo(f"{report.dir}: {report.entries} cached answers, {report.bytes / 1024:.1f} KiB")
    click.echo(
        f"{parsed}: {report.parsed_entries} parsed YAML files, {report.parsed_bytes / 1024:.1f} KiB"
    )
    return 0
