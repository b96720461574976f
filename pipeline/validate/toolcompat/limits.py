"""Limits over all tools of one agent: how many tools a request may carry, and Anthropic's
strict tool use budget."""

from __future__ import annotations

from typing import Any, Final

from pipeline.findings import Finding, Severity
from pipeline.loading import Document
from pipeline.validate.toolcompat.anthropic import ANTHROPIC_STRICT_LIMITS, strict_counts
from pipeline.validate.toolcompat.common import Chain, Target, chain_targets

MAX_TOOLS: Final = (
    128  # OpenAI "array_above_max_length"; Gemini "Maximum 128 function declarations"
)


def check_tool_set(
    rel: str, doc_for_agent: Document | None, tools: list[dict[str, Any]], chain: Chain
) -> list[Finding]:
    """Limits over all tools of one agent, reported on agent.yaml's ``tools`` key."""
    findings: list[Finding] = []

    def add(message: str, rule: str, severity: Severity, t: Target | None, hint: str) -> None:
        if t is not None:
            message = f"{t.product} ({t.label}): {message}"
        provider = t.label if t else None
        if doc_for_agent is not None:
            findings.append(
                doc_for_agent.finding(
                    ("tools",), message, severity=severity, rule=rule, provider=provider, hint=hint
                )
            )
        else:
            findings.append(
                Finding(rel, None, None, "$.tools", message, severity, rule, provider, hint)
            )

    functions = [
        (x["function"] if isinstance(x.get("function"), dict) and "name" not in x else x)
        for x in tools
        if isinstance(x, dict)
    ]
    for t in chain_targets(chain):
        if t.family in ("openai", "gemini") and len(functions) > MAX_TOOLS:
            add(
                f"{len(functions)} tools; {t.product} accepts at most {MAX_TOOLS} per request",
                f"tool.{t.family}.too-many-tools",
                "error",
                t,
                "split the agent, or offer fewer tools",
            )
        if t.family == "anthropic":
            for message, rule in _anthropic_strict_budget(functions):
                add(
                    message,
                    rule,
                    "warning",
                    t,
                    "mark only the critical tools strict, and make parameters required where you can",
                )
    return findings


def _anthropic_strict_budget(functions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(message, rule) for each of Anthropic's strict tool use limits the tools go over."""
    strict = [fn for fn in functions if fn.get("strict") is True]
    counts = [strict_counts(fn.get("parameters")) for fn in strict]
    optional = sum(c[0] for c in counts)
    unions = sum(c[1] for c in counts)
    lim = ANTHROPIC_STRICT_LIMITS
    note = " (litellm 1.106.2 drops `strict` for Anthropic today; sent as strict, the request is rejected)"
    over = []
    for value, key, what, rule in (
        (len(strict), "tools", "strict tools", "tool.anthropic.strict-tools"),
        (optional, "optional", "optional parameters across strict tools", "tool.anthropic.strict-optional"),
        (unions, "unions", "union-typed parameters across strict tools", "tool.anthropic.strict-unions"),
    ):  # fmt: skip
        if value > lim[key]:
            over.append(
                (f"{value} {what}; Anthropic's strict tool use allows {lim[key]}{note}", rule)
            )
    return over
