"""Render eval runs: plain text lines, a rich table on a TTY, markdown, and JUnit XML."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.redaction import redact_bytes

if TYPE_CHECKING:
    from pipeline.evals.results import CaseResult, EvalRun

ICON = {"pass": "✅", "fail": "❌", "error": "💥", "skipped": "⏭️"}
COLOUR = {"pass": "green", "fail": "red", "error": "magenta", "skipped": "yellow"}


def case_label(c: CaseResult) -> str:
    return f"{c.agent}/{c.suite}/{c.case} [{c.provider}]"


def why(c: CaseResult) -> str:
    """The first reason a case did not pass, in one line."""
    if c.skipped_reason and not c.runs:
        return c.skipped_reason
    if c.error:
        return c.error
    for run in c.runs:
        for a in run.assertions:
            if not a.passed:
                msg = a.message or f"expected {a.expected}, got {a.actual}"
                return f"{a.kind}: {msg}".replace("\n", " ")[:300]
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


def totals(run: EvalRun) -> str:
    s = run.summary()
    parts = [f"{s['passed']} passed", f"{s['failed']} failed"]
    if s["errors"]:
        parts.append(f"{s['errors']} errors")
    if s["skipped"]:
        parts.append(f"{s['skipped']} skipped")
    if s["flaky"]:
        parts.append(f"{s['flaky']} flaky")
    cost = f"${s['cost_usd']:.4f}"
    return (
        f"{', '.join(parts)} ({s['cases']} case-provider pairs, {s['calls']} calls, "
        f"{s['cache_hits']} cached, {cost}, {run.duration_s:.1f}s)"
    )


def render_text(run: EvalRun, *, verbose: bool = False, listed: bool = False) -> None:
    """Failures (every case with ``verbose``), notices and the totals, to stderr. ``listed``:
    the progress output already printed a line per case (CI logs), so only the totals follow."""
    for c in run.cases:
        if not listed and (verbose or (c.status != "pass" and not quiet_skip(c)) or c.flaky):
            click.echo(click.style(line(c), fg=COLOUR[c.status]), err=True)
    for notice in run.notices:
        click.echo(click.style(f"notice: {notice}", fg="yellow"), err=True)
    for reason in run.incomplete:
        click.echo(click.style(f"incomplete: {reason}", fg="red"), err=True)
    ok = run.exit_code == 0
    click.echo(click.style(totals(run), fg="green" if ok else "red", bold=True), err=True)


def render_markdown(run: EvalRun, *, title: str = "knowngood eval") -> str:
    s = run.summary()
    verdict = {0: "✅ all cases passed", 1: "❌ failing cases", 3: "💥 run incomplete"}[
        run.exit_code
    ]
    out = [f"### {title}: {verdict}", "", totals(run), ""]
    for notice in run.notices:
        out.append(f"> ⚠️ {notice}")
    for reason in run.incomplete:
        out.append(f"> 💥 {reason}")
    if run.notices or run.incomplete:
        out.append("")
    skipped = [p for p in run.providers.values() if p.status != "ok"]
    if skipped:
        out.append("Providers not run: " + ", ".join(f"`{p.name}` ({p.reason})" for p in skipped))
        out.append("")
    out += ["| | case | provider | repeats | latency | why |", "|---|---|---|---|---|---|"]
    for c in run.cases:
        j = c.to_json()
        latency = f"{j['latency_ms']:.0f} ms" if j["latency_ms"] is not None else ""
        reps = f"{c.passes}/{len(c.runs)}" + (" flaky" if c.flaky else "")
        reason = why(c).replace("|", "\\|") if c.status != "pass" else ""
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
                ET.SubElement(tc, "error", message=(c.error or "")[:500]).text = c.error or ""
            elif c.status == "skipped":
                ET.SubElement(tc, "skipped", message=c.skipped_reason or "")
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
    return "\n".join(lines)


def write_reports(
    run: EvalRun, *, output: Path | None, junit: Path | None, markdown: Path | None
) -> dict[str, object]:
    """Write whichever of results JSON, JUnit XML and markdown were asked for; return the JSON."""
    data = run.to_json()
    if output:
        write_atomic(output, json_text(data, pretty=False).encode())
    if junit:
        write_atomic(junit, junit_xml(run))
    if markdown:
        write_atomic(markdown, render_markdown(run).encode())
    return data


def json_text(data: object, *, pretty: bool) -> str:
    """Results as JSON text: indented for a person (a terminal), compact for a program (a pipe,
    a file). The compact form uses json's C encoder; ``indent`` makes json fall back to its
    pure-Python one, 5-10x slower (~0.1 s for 1,000 cases)."""
    import json

    if pretty:
        return json.dumps(data, indent=2)
    return json.dumps(data, separators=(",", ":"))


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so a reader never sees half of it (temp file in the same folder + rename),
    with every secret redacted."""
    data = redact_bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
