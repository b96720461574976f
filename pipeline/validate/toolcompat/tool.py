"""One tool against the chain: its name for every provider, then each provider family's checks."""

from __future__ import annotations

import re
from typing import Any, Final

from pipeline.findings import Finding
from pipeline.loading import Document
from pipeline.validate.toolcompat.anthropic import check_anthropic
from pipeline.validate.toolcompat.common import (
    Chain,
    Out,
    Path,
    Schema,
    Target,
    brief,
    chain_targets,
)
from pipeline.validate.toolcompat.gemini import check_gemini
from pipeline.validate.toolcompat.openai import check_openai

PORTABLE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_OPENAI_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ANTHROPIC_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_GEMINI_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


def check_tool(doc: Document, tool: dict[str, Any], chain: Chain, base: Path = ()) -> list[Finding]:
    """The provider checks of one tool: its name, then each provider family of ``chain``.

    ``parameters`` as JSON Schema is ``check_parameters_schema``'s job (call it too); these
    checks never raise on a schema that is not valid JSON Schema."""
    if not isinstance(tool, dict):
        return []  # the tool file's own schema says what it should be
    if (
        isinstance(tool.get("function"), dict) and "name" not in tool
    ):  # {type: function, function: {...}}
        tool, base = tool["function"], (*base, "function")
    out = Out(doc, base)
    targets = chain_targets(chain)
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        out.add(
            ("name",),
            "the tool has no name",
            rule="tool.name",
            hint="add `name:` (letters, digits, '_' and '-', starting with a letter)",
        )
    else:
        _check_name(out, name, targets)
    params = tool.get("parameters")
    if "parameters" in tool and not isinstance(params, dict):
        out.add(
            ("parameters",),
            f"`parameters` must be a JSON Schema object, not {brief(params, 40)}",
            rule="tool.parameters-schema",
            hint="write `parameters: {type: object, properties: {...}}`",
        )
        params = None
    strict = tool.get("strict") is True
    schema = None if params is None else Schema(params)  # walked once, for all providers
    for target in targets:
        if target.family == "openai":
            check_openai(out, tool, schema, strict, target)
        elif target.family == "anthropic":
            check_anthropic(out, schema, strict, target)
        elif target.family == "gemini":
            check_gemini(out, schema, strict, target)
    return out.items


def _check_name(out: Out, name: str, targets: list[Target]) -> None:
    said = False
    for t in targets:
        if t.family == "openai" and not _OPENAI_NAME.match(name):
            out.add(
                ("name",),
                f"tool name {name!r} is rejected: OpenAI allows only letters, digits, "
                "'_' and '-', at most 64 characters",
                rule="tool.openai.name",
                target=t,
                hint="rename it, e.g. " + repr(_portable(name)),
            )
            said = True
        elif t.family == "gemini" and not _GEMINI_NAME.match(name):
            out.add(
                ("name",),
                f"tool name {name!r} is rejected: Gemini needs a letter or '_' first, then "
                "letters, digits, '_', '.', ':' or '-', at most 64 characters",
                rule="tool.gemini.name",
                target=t,
                hint="rename it, e.g. " + repr(_portable(name)),
            )
            said = True
        elif t.family == "anthropic" and not _ANTHROPIC_NAME.match(name):
            sent = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:128]
            out.add(
                ("name",),
                f"tool name {name!r} is not valid for Anthropic: litellm renames it to "
                f"{sent!r} on the wire (_build_anthropic_tool_name_maps), so Claude sees {sent!r}",
                rule="tool.anthropic.name",
                severity="warning",
                target=t,
                hint="rename it so every provider sees the same name, e.g. "
                + repr(_portable(name)),
            )
            said = True
    if not said and not PORTABLE_NAME.match(name):
        out.add(
            ("name",),
            f"tool name {name!r} is not portable: OpenAI rejects names with other characters "
            "than letters, digits, '_' and '-', Gemini names that start with a digit, and "
            "Anthropic's name is rewritten",
            rule="tool.name",
            severity="warning",
            hint="rename it, e.g. " + repr(_portable(name)),
        )


def _portable(name: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if not fixed or not re.match(r"[A-Za-z_]", fixed):
        fixed = "_" + fixed
    return fixed[:64]
