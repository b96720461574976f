"""Render a ``knowngood diff`` report: text (colour on a TTY), JSON, or markdown for PR comments.

The report is data, so every format goes to stdout. JSON follows
``schemas/diff-report.schema.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

from pipeline.report.mdtext import cell, code
from pipeline.report.reporter import Rendered, Reporter, json_reporter
from pipeline.words import plural, printable

if TYPE_CHECKING:
    from pipeline.changes import AgentDiff, ConfigChange, DiffReport, FileChange
    from pipeline.changes.command import DiffOutcome

_STATUS_LETTER = {"added": "A", "modified": "M", "deleted": "D"}
_BUMP_COLOUR = {"major": "red", "minor": "yellow", "patch": "green"}
_KIND_COLOUR = {"breaking": "red", "additive": "yellow", "cosmetic": "green"}


def to_json(report: DiffReport) -> dict[str, Any]:
    from pipeline.changes.command import DiffOutcome

    return DiffOutcome(report).to_json()


def _text(outcome: DiffOutcome) -> Rendered:
    return Rendered(out=text(outcome.report))


def _markdown(outcome: DiffOutcome) -> Rendered:
    return Rendered(out=markdown(outcome.report))


REPORTERS: dict[str, Reporter[DiffOutcome]] = {
    "text": _text,
    "json": json_reporter(ensure_ascii=False),
    "markdown": _markdown,
}


def _bump_label(bump: str | None) -> str:
    if bump is None:
        return click.style("none", dim=True)
    return click.style(bump, fg=_BUMP_COLOUR[bump], bold=True)


def _diff_line(line: str) -> str:
    line = printable(line)  # a prompt's text may hold escape sequences: shown, not obeyed
    if line.startswith(("+++", "---")):
        return click.style(line, bold=True)
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def _files(files: Iterable[FileChange], indent: str) -> list[str]:
    return [f"{indent}{_STATUS_LETTER[f.status]} {printable(f.path)}" for f in files]


def config_groups(a: AgentDiff) -> list[tuple[list[str], list[ConfigChange]]]:
    """Environments with identical changes grouped together, in report order."""
    groups: list[tuple[list[str], list[ConfigChange]]] = []
    for env, changes in a.config_diff.items():
        for envs, existing in groups:
            if existing == changes:
                envs.append(env)
                break
        else:
            groups.append(([env], changes))
    return groups


def text(report: DiffReport) -> str:
    lines = [
        click.style(f"knowngood diff {report.base.rev}..{report.head.rev}", bold=True)
        + f" ({report.base.commit[:10]}..{report.head.commit[:10]})",
        "",
    ]
    shown = [a for a in report.agents.values() if not a.is_noop]
    quiet = [a.name for a in report.agents.values() if a.is_noop]
    for a in shown:
        lines += _agent_text(a)
    if report.repo_wide:
        lines.append(click.style("repo-wide changes (affect every agent):", bold=True))
        lines += _files(report.repo_wide, "  ")
    if quiet:
        lines.append(f"also affected by the repo-wide changes, nothing to release: {_names(quiet)}")
    if report.other:
        lines.append(click.style("other changes (affect no agent):", bold=True))
        lines += _files(report.other, "  ")
    for p in report.problems:
        lines.append(click.style("problem: ", fg="yellow") + p.render())
    if report.repo_wide or report.other or quiet or report.problems:
        lines.append("")
    lines.append(summary(report))
    return "\n".join(lines) + "\n"


def _agent_text(a: AgentDiff) -> list[str]:
    lines = [f"{click.style(a.name, bold=True)}: {a.status}, bump {_bump_label(a.bump)}"]
    lines += [f"  - {printable(r)}" for r in a.reasons]
    if a.tool_changes:
        lines.append("  tools:")
        for c in a.tool_changes:
            lines.append(
                f"    {click.style(printable(c.message), fg=_KIND_COLOUR[c.kind])}  "
                + click.style(printable(c.path), dim=True)
            )
    for envs, changes in config_groups(a):
        lines.append(f"  config ({', '.join(envs)}):")
        lines += [f"    {printable(c.message)}" for c in changes]
    if a.prompt_diff:
        lines.append(
            "  prompt:" + (click.style(f" {a.prompt_note}", dim=True) if a.prompt_note else "")
        )
        lines += [f"    {_diff_line(line)}" for line in a.prompt_diff.splitlines()]
    if a.files:
        lines.append("  files:")
        lines += _files(a.files, "    ")
    for p in a.problems:
        lines.append("  " + click.style("problem: ", fg="yellow") + printable(p.render()))
    lines.append("")
    return lines


def summary(report: DiffReport) -> str:
    changed = [a for a in report.agents.values() if not a.is_noop]
    if not report.agents:
        return "no agent affected"
    parts = [f"{a.name}: {a.bump or 'none'}" for a in changed]
    head = f"{plural(len(report.agents), 'agent')} affected"
    return head + (f"; release bumps: {', '.join(parts)}" if parts else "")


def _names(names: Sequence[str], limit: int = 12) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


# -- markdown ---------------------------------------------------------------------------------


def _cell(value: str) -> str:
    return cell(value, 500)


def _code(value: str) -> str:
    return code(value, 500)


def _fence(body: str, lang: str) -> list[str]:
    fence = "```"
    while fence in body:
        fence += "`"
    return [f"{fence}{lang}", body.rstrip("\n"), fence]


def markdown(report: DiffReport) -> str:
    lines = [
        f"### knowngood diff {_code(report.base.rev)}..{_code(report.head.rev)}",
        "",
    ]
    shown = [a for a in report.agents.values() if not a.is_noop]
    quiet = [a.name for a in report.agents.values() if a.is_noop]
    if shown:
        lines += ["| agent | status | bump | why |", "|---|---|---|---|"]
        for a in shown:
            bump = f"**{a.bump}**" if a.bump else "none"
            why = "; ".join(a.reasons[:3]) + (" …" if len(a.reasons) > 3 else "")
            lines.append(f"| {a.name} | {a.status} | {bump} | {_cell(why)} |")
        lines.append("")
    else:
        lines += ["No agent affected.", ""]
    for a in shown:
        lines += _agent_markdown(a)
    if report.repo_wide:
        lines.append(
            "**Repo-wide changes** (affect every agent): "
            + ", ".join(f"{_code(f.path)} ({f.status})" for f in report.repo_wide)
        )
        lines.append("")
    if quiet:
        lines += [
            f"Also affected by the repo-wide changes, nothing to release: {_names(quiet)}.",
            "",
        ]
    for p in report.problems:
        lines += [f"> **Problem**: {_cell(p.render())}", ""]
    lines.append(
        f"<sub>{report.base.commit[:10]}..{report.head.commit[:10]} · {summary(report)}</sub>"
    )
    return "\n".join(lines) + "\n"


def _agent_markdown(a: AgentDiff) -> list[str]:
    bump = a.bump or "no release"
    lines = ["<details>", f"<summary><b>{a.name}</b>: {a.status}, {bump}</summary>", ""]
    if a.tool_changes:
        lines.append("**Tool changes**")
        for c in a.tool_changes:
            what = c.message.removeprefix(f"{c.tool}: ").removesuffix(f" ({c.kind})")
            lines.append(f"- **{c.kind}** {_code(c.tool)}: {_cell(what)} ({_code(c.path)})")
        lines.append("")
    for envs, changes in config_groups(a):
        lines.append(f"**Config** ({', '.join(envs)})")
        lines += [f"- {_code(c.message)}" for c in changes]
        lines.append("")
    if a.prompt_diff:
        lines.append("**Prompt**" + (f" ({a.prompt_note})" if a.prompt_note else ""))
        lines += [*_fence(a.prompt_diff, "diff"), ""]
    if a.files:
        lines.append("**Files**")
        lines += [f"- {f.status} {_code(f.path)}" for f in a.files]
        lines.append("")
    for p in a.problems:
        lines += [f"> **Problem**: {_cell(p.render())}", ""]
    lines += ["</details>", ""]
    return lines
