"""Render ``knowngood readiness``: a checklist in text, JSON, or text plus workflow annotations
(one per failed check) for a required check on GitHub."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from pipeline.words import printable

if TYPE_CHECKING:
    from pipeline.readiness import Item, ReadinessReport


def render_readiness(report: ReadinessReport, fmt: str) -> None:
    for notice in report.notices:
        click.echo(click.style(f"notice: {printable(notice)}", fg="yellow"), err=True)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
        return
    click.echo(readiness_text(report), nl=False)
    if fmt == "github":
        _annotations(report)


def readiness_text(report: ReadinessReport) -> str:
    policy = report.policy
    verdict = "ok" if report.ok else "BELOW POLICY"
    lines = [
        f"readiness {report.score:g}/100: {verdict} (policy: at least {policy.min_score:g}"
        + (f"; required: {', '.join(policy.required)}" if policy.required else "")
        + ")"
    ]
    for item in report.items:
        lines.append(_item_line(item, item.id in policy.required))
        for check in item.failed:
            lines.append(f"      {check.subject}: {check.detail}")
            if check.fix:
                lines.append(f"        -> {check.fix}")
    if report.failed_required:
        lines.append(f"required items failing: {', '.join(report.failed_required)}")
    return "\n".join(printable(line) for line in lines) + "\n"  # file names, records' words


def _item_line(item: Item, required: bool) -> str:
    mark = "PASS" if item.passed else "FAIL"
    counts = f"{sum(c.ok for c in item.checks)}/{len(item.checks)}"
    flag = " (required)" if required else ""
    return f"  {mark}  {item.id:<16} {counts:>7}  {item.title}{flag}"


def _annotations(report: ReadinessReport) -> None:
    from pipeline.github.workflow import annotate

    for item in report.items:
        level = "error" if item.id in report.policy.required or not report.ok else "warning"
        for check in item.failed:
            annotate(
                "error" if level == "error" else "warning",
                f"{check.subject}: {check.detail}" + (f" -- {check.fix}" if check.fix else ""),
                title=f"knowngood readiness: {item.title}",
            )
