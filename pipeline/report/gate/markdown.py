"""The gate report as markdown: the PR comment (with its hidden marker) and the step summary."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.gate.data import cost, headline, money
from pipeline.github.text import COMMENT_LIMIT
from pipeline.report.diff import config_groups
from pipeline.report.gate.common import ICON, LABEL, MARKER, SHOWN, revision, source
from pipeline.report.mdtext import cell as _cell
from pipeline.report.mdtext import code as _code
from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.gate import AgentGate, CaseDiff, GateResult, Side


def _fence(body: str, lang: str = "") -> list[str]:
    fence = "```"
    while fence in body:
        fence += "`"
    return [f"{fence}{lang}", body.rstrip("\n"), fence]


def _status(side: str, passes: str | None) -> str:
    return f"{ICON.get(side, '')} {side}" + (
        f" {passes}" if passes and passes not in ("1/1", "0/1") else ""
    )


def _table(rows: list[CaseDiff], limit: int | None = None) -> list[str]:
    shown = rows if limit is None else rows[:limit]
    out = ["| | case | provider | base | head | what differs |", "|---|---|---|---|---|---|"]
    for r in shown:
        label = LABEL[r.comparison] + (" · flaky" if r.flaky else "")
        out.append(
            f"| {label} | `{r.suite}/{r.case}` | {r.provider} | {_status(r.base, r.base_passes)} | "
            f"{_status(r.head, r.head_passes)} | {_cell(r.detail)} |"
        )
    if limit is not None and len(rows) > limit:
        out.append(f"| | … and {len(rows) - limit} more | | | | |")
    return out


def _tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "n/a"
    return (
        f"{usage['prompt_tokens']:,} in / {usage['completion_tokens']:,} out"
        f" ({money(usage['cost_usd'])})"
    )


def _revision(side: Side) -> str:
    name, short = revision(side)
    return f"{_code(name)} {short}" if name else short


def _header(result: GateResult) -> list[str]:
    b, h, spent = result.base, result.head, cost(result)
    line = f"**base** {_revision(b)} ({source(b)}) → **head** {_revision(h)}"
    if result.head.run is not None:
        line += (
            f" · {plural(len(result.agents), 'agent')} · {plural(len(result.rows), 'case')}"
            f" · {money(spent['spent_usd'])} spent"
            f" ({plural(spent['calls'], 'call')}, {spent['cache_hits']} cached)"
            f" · tokens per uncached run: head {_tokens(spent['head'])}, base {_tokens(spent['base'])}"
        )
    out = [line, ""]
    if not b.available and b.reason:
        out += [
            "> [!WARNING]",
            "> **Base results unavailable**, so every failing case blocks: "
            + _cell(b.reason.splitlines()[0], 500),
        ]
        out += [f"> {_code(x, 200)}" for x in b.reason.splitlines()[1:6] if x.strip()]
        out.append("")
    out += _unverified(result)
    out += _loosened(result)
    if result.opt_out:
        out += [
            "> [!NOTE]",
            "> **This change opts out of automatic revert** (`knowngood: no-auto-revert` in "
            f"{_cell(result.opt_out, 200)}): if its release fails the post-deploy check, knowngood "
            "restores the last known good release and does not revert the merge. A maintainer's "
            "`knowngood revert` or `/revert` still works.",
            "",
        ]
    for reason in result.incomplete:
        out.append(f"> 💥 {_cell(reason, 500)}")
    for notice in result.notices:
        out.append(f"> ⚠️ {_cell(notice, 500)}")
    if result.incomplete or result.notices:
        out.append("")
    return out


def _unverified(result: GateResult) -> list[str]:
    n = len(result.unverified)
    if not n:
        return []
    what = (
        "the base evaluated them and this head did not (a provider skipped for a missing key, "
        "renamed or dropped from the agent's chain, or a grader the base branch does not have), "
        "so nothing shows this change keeps them"
    )
    if result.allow_unverified:
        return [
            "> [!CAUTION]",
            f"> **{plural(n, 'unverified case')} allowed** by `gate.allow_unverified` in the "
            f"base branch's knowngood.yaml: {what}.",
            "",
        ]
    return [
        "> [!WARNING]",
        f"> **{plural(n, 'unverified case')} {'blocks' if n == 1 else 'block'} this change**: "
        f"{what}. Run the gate where the provider's key is set, or allow unverified cases "
        "with `gate: {allow_unverified: true}` in knowngood.yaml (read from the base branch).",
        "",
    ]


_LOOSENED_SHOWN = 30  # rows of the changed-expectations table (the JSON report has them all)


def _loosened(result: GateResult) -> list[str]:
    """The cases whose test this change loosened, with both versions of their expectations
    and of what they send."""
    rows = result.loosened
    if not rows:
        return []
    n = len(rows)
    what = (
        "this change altered their expectations, or what they send (input, vars), and passes "
        "its own test but fails base's, or it deleted a case that passed on base"
    )
    if result.allow_expectation_changes:
        out = [
            "> [!CAUTION]",
            f"> **{plural(n, 'case')} with changed expectations allowed** by "
            f"`gate.allow_expectation_changes` in the base branch's knowngood.yaml: {what}.",
        ]
    else:
        out = [
            "> [!WARNING]",
            f"> **{plural(n, 'case')} with changed expectations {'blocks' if n == 1 else 'block'} "
            f"this change**: {what}. If the new expectations are intended, a maintainer merges "
            "over this check, or `gate: {allow_expectation_changes: true}` in knowngood.yaml "
            "(read from the base branch) lets such changes through.",
        ]
    expected = [r for r in rows if r.base_expect is not None or r.base_input is None]
    sent = [r for r in rows if r.base_input is not None]
    for subset, header, base_of, head_of in (
        (expected, "| base expects | this change expects |", "base_expect", "head_expect"),
        (sent, "| base sends | this change sends |", "base_input", "head_input"),
    ):
        if not subset:
            continue
        out += ["", f"| case | provider {header}", "|---|---|---|---|"]
        for r in subset[:_LOOSENED_SHOWN]:
            base, head = getattr(r, base_of), getattr(r, head_of)
            head = _code(head, 300, in_table=True) if head else "*(deleted)*"
            base = _code(base, 300, in_table=True) if base else "?"
            out.append(
                f"| {_code(f'{r.suite}/{r.case}', in_table=True)} | {_cell(r.provider)} | {base} | {head} |"
            )
        if len(subset) > _LOOSENED_SHOWN:
            out.append(f"| … and {len(subset) - _LOOSENED_SHOWN} more | | | |")
    return [*out, ""]


def _findings(result: GateResult) -> list[str]:
    out = ["| file | message |", "|---|---|"]
    for f in result.findings:
        mark = "❌" if f.severity == "error" else "⚠️"
        where = f.location() if f.path else "."
        msg = (
            (f"{f.json_path}: " if f.json_path else "")
            + f.message
            + (f" -- {f.hint}" if f.hint else "")
        )
        out.append(f"| {mark} {_code(where, in_table=True)} | {_cell(msg, 500)} |")
    return [*out, ""]


def _agent_md(a: AgentGate, level: int) -> list[str]:
    bump = f"**{a.bump}** release" if a.bump else "no release needed"
    out = [f"#### {a.name} · {bump}" + (" · removed" if a.status == "removed" else ""), ""]
    out += [f"- {_cell(r, 500)}" for r in a.reasons[:8]]
    for c in a.tool_changes:
        if c.kind != "cosmetic":
            out.append(f"- **{c.kind}** tool change: {_cell(c.message, 300)} ({_code(c.path)})")
    out.append("")
    shown = [r for r in a.rows if r.comparison in SHOWN or r.flaky]
    if shown:
        out += [*_table(shown, None if level < 3 else 20), ""]
    quiet = [r for r in a.rows if r not in shown]
    if quiet:
        counts: dict[str, int] = {}
        for r in quiet:
            counts[r.comparison] = counts.get(r.comparison, 0) + 1
        out += [" · ".join(f"{LABEL[k]}: {n}" for k, n in counts.items()), ""]
    if (
        level < 2
        and a.diff is not None
        and (a.diff.prompt_diff or a.diff.config_diff or a.diff.files)
    ):
        out += ["<details><summary>What changed</summary>", ""]
        if a.diff.prompt_diff:
            out += ["**Prompt**", *_fence(a.diff.prompt_diff, "diff"), ""]
        for envs, changes in config_groups(a.diff):
            out += [
                f"**Config** ({', '.join(envs)})",
                *(f"- {_code(c.message)}" for c in changes),
                "",
            ]
        if a.diff.files:
            out += ["**Files**", *(f"- {f.status} {_code(f.path)}" for f in a.diff.files), ""]
        out += ["</details>", ""]
    if level < 1 and a.rows:
        out += [
            f"<details><summary>All results ({len(a.rows)})</summary>",
            "",
            *_table(a.rows),
            "",
            "</details>",
            "",
        ]
    return out


def markdown(result: GateResult, *, marker: bool = True, level: int = 0) -> str:
    """The report as markdown. ``level`` drops detail: 1 no full results, 2 no diffs, 3 short tables."""
    out = [MARKER] if marker else []
    out += [f"### {headline(result)}", "", *_header(result)]
    if result.findings:
        out += _findings(result)
    for agent in result.agents.values():
        out += _agent_md(agent, level)
    if level:
        out += [
            "<sub>Details trimmed to fit GitHub's comment limit: the job's step summary has them all.</sub>",
            "",
        ]
    out.append(f"<sub>knowngood gate · {result.base.commit[:10]}...{result.head.commit[:10]}</sub>")
    return "\n".join(out) + "\n"


def comment(result: GateResult, limit: int = COMMENT_LIMIT) -> str:
    """The PR comment: the most detailed version that fits GitHub's limit (then it is cut)."""
    body = ""
    for level in range(4):
        body = markdown(result, level=level)
        if len(body) <= limit:
            return body
    return body
