"""Render eval runs: plain text lines, a rich table on a TTY, markdown, and JUnit XML."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.report.mdtext import cell
from pipeline.report.reporter import Rendered, Reporter, block, json_reporter
from pipeline.words import plural, printable

if TYPE_CHECKING:
    from pipeline.eval_command import EvalOutcome
    from pipeline.evals.results import CaseResult, EvalRun
    from pipeline.outcome import OutFile

ICON = {"pass": "✅", "fail": "❌", "error": "💥", "skipped": "⏭️"}
COLOUR = {"pass": "green", "fail": "red", "error": "magenta", "skipped": "yellow"}


def case_label(c: CaseResult) -> str:
    return f"{c.agent}/{c.suite}/{c.case} [{c.provider}]"


def why(c: CaseResult) -> str:
    """The first reason a case did not pass, in one line (control characters spelled out)."""
    if c.skipped_reason and not c.runs:
        return printable(c.skipped_reason)
    if c.error:
        return printable(c.error)
    for run in c.runs:
        for a in run.assertions:
            if not a.passed:
                msg = a.message or f"expected {a.expected}, got {a.actual}"
                return printable(f"{a.kind}: {msg}".replace("\n", " ")[:300])
    return ""


def quiet_skip(c: CaseResult) -> bool:
    """Skipped because its provider has no key: one notice per provider says it, not a line per case."""
    return c.status == "skipped" and (c.skipped_reason or "").startswith("provider skipped")


def line(c: CaseResult) -> str:
    status = c.status.upper()
    extra = ""
    if c.repeats > 1:
        extra = f" {c.passes}/{len(c.runs)}"
    if c.flaky:
        extra += " flaky"
    text = f"{status:7} {case_label(c)}{extra}"
    reason = why(c) if c.status != "pass" else ""
    return text + (f" -- {reason}" if reason else "")


def totals(run: EvalRun, s: Mapping[str, Any] | None = None) -> str:
    """The one-line totals; ``s``: ``run.summary()`` when the caller has it already."""
    s = run.summary() if s is None else s
    parts = [f"{s['passed']} passed", f"{s['failed']} failed"]
    if s["errors"]:
        parts.append(plural(s["errors"], "error"))
    if s["skipped"]:
        parts.append(f"{s['skipped']} skipped")
    if s["flaky"]:
        parts.append(f"{s['flaky']} flaky")
    cost = f"${s['cost_usd']:.4f}"
    return (
        f"{', '.join(parts)} ({plural(s['cases'], 'case-provider pair')}, "
        f"{plural(s['calls'], 'call')}, "
        f"{s['cache_hits']} cached, {cost}, {run.duration_s:.1f}s)"
    )


def text(run: EvalRun, *, verbose: bool = False, listed: bool = False) -> str:
    """Failures (every case with ``verbose``), notices and the totals, for stderr. ``listed``:
    the progress output already printed a line per case (CI logs), so only the totals follow."""
    out: list[str] = []
    for c in run.cases:
        if not listed and (verbose or (c.status != "pass" and not quiet_skip(c)) or c.flaky):
            out.append(click.style(line(c), fg=COLOUR[c.status]))
    out += [click.style(f"notice: {notice}", fg="yellow") for notice in run.notices]
    out += [click.style(f"incomplete: {reason}", fg="red") for reason in run.incomplete]
    ok = run.exit_code == 0
    s = run.summary()
    evaluated = s["passed"] + s["failed"] + s["errors"]
    if ok and not evaluated and s["skipped"]:  # not a failure, and not a pass either
        out.append(
            click.style("notice: nothing was evaluated: every case was skipped", fg="yellow")
        )
    colour = "red" if not ok else ("green" if evaluated or not s["skipped"] else "yellow")
    out.append(click.style(totals(run, s), fg=colour, bold=True))
    return block(out)


def reporters(*, verbose: bool = False, listed: bool = False) -> dict[str, Reporter[EvalOutcome]]:
    """``--format``: text (stderr) or json (stdout: indented on a terminal, compact in a pipe)."""

    def plain(outcome: EvalOutcome) -> Rendered:
        text_ = text(outcome.run, verbose=verbose, listed=listed)
        return Rendered(err=text_ + block(outcome.messages))

    def json(outcome: EvalOutcome) -> Rendered:
        data = json_text(outcome.to_json(), pretty=sys.stdout.isatty()) + "\n"
        return Rendered(out=data, err=block(outcome.messages))

    return {"text": plain, "json": json}


def merged_reporters() -> dict[str, Reporter[EvalOutcome]]:
    """``results merge --format``: the totals (stderr), or the merged JSON indented (stdout)."""
    return {"text": lambda o: Rendered(err=text(o.run)), "json": json_reporter()}


def files(
    output: Path | None, junit: Path | None, markdown: Path | None
) -> tuple[OutFile[EvalOutcome], ...]:
    """The files asked for: results JSON (compact), JUnit XML, a markdown summary."""
    from pipeline.outcome import OutFile

    asked: tuple[tuple[str, Path | None, Callable[[EvalOutcome], bytes]], ...] = (
        ("--output", output, lambda o: json_text(o.to_json(), pretty=False).encode()),
        ("--junit", junit, lambda o: junit_xml(o.run)),
        ("--markdown", markdown, lambda o: render_markdown(o.run).encode()),
    )
    return tuple(OutFile(path, render, flag) for flag, path, render in asked if path is not None)


def render_markdown(run: EvalRun, *, title: str = "knowngood eval") -> str:
    s = run.summary()
    verdict = {0: "✅ all cases passed", 1: "❌ failing cases", 3: "💥 run incomplete"}[
        run.exit_code
    ]
    out = [f"### {title}: {verdict}", "", totals(run), ""]
    for notice in run.notices:
        out.append(f"> ⚠️ {cell(notice, 500)}")
    for reason in run.incomplete:
        out.append(f"> 💥 {cell(reason, 500)}")
    if run.notices or run.incomplete:
        out.append("")
    skipped = [p for p in run.providers.values() if p.status != "ok"]
    if skipped:
        out.append(
            "Providers not run: "
            + ", ".join(f"`{p.name}` ({cell(p.reason or '', 200)})" for p in skipped)
        )
        out.append("")
    out += ["| | case | provider | repeats | latency | why |", "|---|---|---|---|---|---|"]
    for c in run.cases:
        j = c.to_json()
        latency = f"{j['latency_ms']:.0f} ms" if j["latency_ms"] is not None else ""
        reps = f"{c.passes}/{len(c.runs)}" + (" flaky" if c.flaky else "")
        reason = cell(why(c)) if c.status != "pass" else ""
        out.append(
            f"| {ICON[c.status]} | `{c.agent}/{c.suite}/{c.case}` | {c.provider} | {reps} | {latency} | {reason} |"
        )
    out += [
        "",
        f"<sub>tokens: {s['prompt_tokens']} in / {s['completion_tokens']} out · cost ${s['cost_usd']:.4f}</sub>",
        "",
    ]
    return "\n".join(out)


def junit_xml(run: EvalRun) -> bytes:
    from xml.etree import ElementTree as ET  # only for --junit

    suites = ET.Element("testsuites", name="knowngood", time=f"{run.duration_s:.3f}")
    by_suite: dict[tuple[str, str], list[CaseResult]] = {}
    for c in run.cases:
        by_suite.setdefault((c.agent, c.suite), []).append(c)
    for (agent, suite), cases in by_suite.items():
        el = ET.SubElement(
            suites,
            "testsuite",
            name=f"{agent}/{suite}",
            tests=str(len(cases)),
            failures=str(sum(c.status == "fail" for c in cases)),
            errors=str(sum(c.status == "error" for c in cases)),
            skipped=str(sum(c.status == "skipped" for c in cases)),
        )
        for c in cases:
            latency = c.to_json()["latency_ms"] or 0.0
            tc = ET.SubElement(
                el,
                "testcase",
                classname=f"{agent}.{suite}",
                name=f"{c.case} [{c.provider}]",
                time=f"{latency / 1000:.3f}",
            )
            if c.status == "fail":
                ET.SubElement(tc, "failure", message=why(c)[:500]).text = _details(c)
            elif c.status == "error":
                error = printable(c.error or "")
                ET.SubElement(tc, "error", message=error[:500]).text = error
            elif c.status == "skipped":
                ET.SubElement(tc, "skipped", message=printable(c.skipped_reason or ""))
    return bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))


def _details(c: CaseResult) -> str:
    lines = []
    for run in c.runs:
        lines.append(f"repeat {run.repeat}: {'pass' if run.passed else 'fail'}")
        for a in run.assertions:
            mark = "ok  " if a.passed else "FAIL"
            lines.append(f"  {mark} {a.kind}: expected {a.expected} | got {a.actual}")
            if a.message and not a.passed:
                lines.append("       " + a.message.replace("\n", "\n       "))
    return printable("\n".join(lines), newlines=True)  # XML 1.0 has no control characters


def json_text(data: object, *, pretty: bool) -> str:
    """Results as JSON text: indented for a person (a terminal), compact for a program (a pipe,
    a file). The compact form uses json's C encoder; ``indent`` makes json fall back to its
    pure-Python one, 5-10x slower (~0.1 s for 1,000 cases)."""
    import json

    if pretty:
        return json.dumps(data, indent=2)
    return json.dumps(data, separators=(",", ":"))
