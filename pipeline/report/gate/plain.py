"""The gate report as text (stderr) and JUnit XML."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

import click

from pipeline.gate.data import cost, headline, money
from pipeline.report.gate.common import SHOWN, TEXT_COLOUR, revision, source
from pipeline.words import plural, printable

if TYPE_CHECKING:
    from pipeline.gate import CaseDiff, GateResult


def text(result: GateResult, *, verbose: bool = False) -> str:
    b, h = result.base, result.head
    (base_name, base_sha), (head_name, head_sha) = revision(b), revision(h)
    lines = [
        click.style("knowngood gate", bold=True)
        + f": base {base_name + ' ' if base_name else ''}({base_sha}, {source(b)}) -> head "
        + (f"{head_name} ({head_sha})" if head_name else head_sha)
    ]
    for f in result.findings:
        lines.append(("  " if f.severity == "error" else "  warning: ") + printable(f.render()))
    if not b.available and b.reason:
        lines.append(click.style(f"base unavailable: {printable(b.reason)}", fg="yellow"))
    for name, agent in result.agents.items():
        lines.append(
            click.style(name, bold=True) + f": {agent.status}, bump {agent.bump or 'none'}"
        )
        lines += [f"  - {printable(reason)}" for reason in agent.reasons]
        quiet: dict[str, int] = {}
        for r in agent.rows:
            if r.comparison in SHOWN or r.flaky or verbose:
                label = r.comparison.upper().replace("_", " ") + (" (flaky)" if r.flaky else "")
                body = f"  {label:16} {r.suite}/{r.case} [{r.provider}]  {r.base} -> {r.head}"
                body += f" -- {r.detail}" if r.detail else ""
                lines.append(click.style(body, fg=TEXT_COLOUR.get(r.comparison)))
            else:
                quiet[r.comparison] = quiet.get(r.comparison, 0) + 1
        if quiet:
            lines.append("  " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in quiet.items()))
    unverified = result.unverified
    if unverified and not result.allow_unverified:
        lines.append(
            click.style(
                f"unverified: {plural(len(unverified), 'case')} evaluated on base "
                "were not evaluated on head; set the provider's key and run again, or allow "
                "unverified cases with gate.allow_unverified in knowngood.yaml",
                fg="red",
            )
        )
    loosened = result.loosened
    if loosened:
        lines.append(
            click.style(
                f"expectations: {plural(len(loosened), 'case')} whose expectations or input this "
                "change loosened (it passes its own test and fails base's) or deleted (it passed "
                "on base)"
                + (
                    " (allowed by gate.allow_expectation_changes)"
                    if result.allow_expectation_changes
                    else "; if that is intended, a maintainer merges it over this check, or "
                    "gate.allow_expectation_changes in knowngood.yaml (read from the base "
                    "branch) lets such changes through"
                ),
                fg="yellow" if result.allow_expectation_changes else "red",
            )
        )
        for r in loosened:
            lines.append(f"  {r.suite}/{r.case} [{r.provider}]")
            if r.base_expect is not None or r.base_input is None:
                lines.append(f"    base: {printable(r.base_expect or '?')}")
                lines.append(f"    head: {printable(r.head_expect or '(deleted)')}")
            if r.base_input is not None:
                lines.append(f"    base sends: {printable(r.base_input)}")
                lines.append(f"    head sends: {printable(r.head_input or '?')}")
    if result.opt_out:
        lines.append(f"revert: this change opts out of automatic revert ({result.opt_out})")
    for notice in result.notices:
        lines.append(click.style(f"notice: {printable(notice)}", fg="yellow"))
    for reason in result.incomplete:
        lines.append(click.style(f"incomplete: {printable(reason)}", fg="red"))
    spent = cost(result)
    tail = (
        f" ({plural(len(result.rows), 'case')}, {plural(spent['calls'], 'call')}, "
        f"{spent['cache_hits']} cached, "
        f"{money(spent['spent_usd'])}, {result.duration_s:.1f}s)"
    )
    colour = {"pass": "green", "fail": "red", "incomplete": "red"}[result.verdict]
    if result.head.run is None:  # nothing was evaluated
        tail = ""
    lines.append(click.style(headline(result).split(" ", 1)[1] + tail, fg=colour, bold=True))
    return "\n".join(lines) + "\n"


# -- JUnit ------------------------------------------------------------------------------------


def junit_xml(result: GateResult) -> bytes:
    root = ET.Element("testsuites", name="knowngood gate", time=f"{result.duration_s:.3f}")
    if result.findings:
        errors = result.validation_errors
        suite = ET.SubElement(
            root,
            "testsuite",
            name="validate",
            tests=str(max(1, len(errors))),
            failures=str(len(errors)),
            errors="0",
            skipped="0",
        )
        for f in errors:
            tc = ET.SubElement(suite, "testcase", classname="validate", name=f.location())
            message = printable(f.message)
            ET.SubElement(tc, "failure", message=message[:500]).text = printable(f.render())
        if not errors:
            ET.SubElement(suite, "testcase", classname="validate", name="repository")
    groups: dict[tuple[str, str], list[CaseDiff]] = {}
    for r in result.rows:
        if r.comparison != "removed" or r.loosened:
            groups.setdefault((r.agent, r.suite), []).append(r)
    outcome: dict[str, Callable[[CaseDiff], bool]] = {
        "failures": lambda r: r.blocking,
        "errors": lambda r: r.comparison == "error",
        "skipped": lambda r: (
            not r.blocking and r.comparison in ("skipped", "still_failing", "unverified")
        ),
    }
    for (agent, name), rows in groups.items():
        attrs = {"name": f"{agent}/{name}", "tests": str(len(rows))}
        attrs.update({k: str(sum(map(f, rows))) for k, f in outcome.items()})
        el = ET.SubElement(root, "testsuite", attrs)
        for r in rows:
            tc = ET.SubElement(
                el, "testcase", classname=f"{agent}.{name}", name=f"{r.case} [{r.provider}]"
            )
            message = f"{r.comparison.replace('_', ' ')}: base {r.base}, head {r.head}"
            if r.blocking:
                ET.SubElement(tc, "failure", message=message[:500]).text = r.detail
            elif r.comparison == "error":
                ET.SubElement(tc, "error", message=r.detail[:500]).text = r.detail
            elif r.loosened:
                ET.SubElement(
                    tc,
                    "skipped",
                    message=(f"{message} (allowed by gate.allow_expectation_changes): {r.detail}")[
                        :500
                    ],
                )
            elif r.comparison == "unverified":
                ET.SubElement(
                    tc,
                    "skipped",
                    message=(f"{message} (allowed by gate.allow_unverified): {r.detail}")[:500],
                )
            elif r.comparison in ("skipped", "still_failing"):
                ET.SubElement(
                    tc, "skipped", message=(f"{message} (does not block): {r.detail}")[:500]
                )
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))
