"""Tool schemas against every provider: data-driven cases, litellm's own behaviour, the BFCL corpus."""

from __future__ import annotations

import collections
import copy
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bfclutil import SKIP_WITHOUT, bfcl_tools

from pipeline.findings import Finding
from pipeline.loading import Document, load
from pipeline.validate import toolcompat
from pipeline.validate.toolcompat import (
    check_parameters_schema,
    check_tool,
    check_tool_set,
    provider_family,
)

DATA = Path(__file__).parent / "data" / "toolcompat"

OPENAI = ("openai", "openai/gpt-4o-mini")
LOCAL = ("local", "openai/smollm2")
CLAUDE = ("claude", "anthropic/claude-3-5-haiku-20241022")
GEMINI = ("gemini", "gemini/gemini-2.0-flash")
ALL = [OPENAI, CLAUDE, GEMINI, LOCAL]


def write(tmp_path: Path, tool: dict[str, Any]) -> Document:
    path = tmp_path / "tool.json"
    path.write_text(json.dumps(tool, indent=2))
    doc, problems = load(path, "agents/a/tools/tool.json")
    assert doc is not None, problems
    return doc


def findings_for(doc: Document, chain: list[tuple[str, str]]) -> list[Finding]:
    found = check_tool(doc, doc.data, chain)
    if isinstance(doc.data.get("parameters"), dict):
        found += check_parameters_schema(doc, ("parameters",))
    return found


def tool(parameters: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "lookup_order", "description": "Look up an order."}
    if parameters is not None:
        out["parameters"] = parameters
    out.update(extra)
    return out


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def strict_obj(**props: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------- provider families


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("openai/gpt-4o-mini", "openai"),
        ("azure/my-deployment", "openai"),
        ("openai/smollm2", "openai"),
        ("gpt-4o", "openai"),
        ("anthropic/claude-3-5-haiku-20241022", "anthropic"),
        ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        ("claude-3-opus", "anthropic"),
        ("vertex_ai/claude-3-5-sonnet", "anthropic"),
        ("gemini/gemini-2.0-flash", "gemini"),
        ("vertex_ai/gemini-1.5-pro", "gemini"),
        ("gemini-2.0-flash", "gemini"),
        ("bedrock/amazon.nova-pro-v1:0", "other"),
        ("ollama/llama3", "other"),
        ("mistral/mistral-large", "other"),
    ],
)
def test_provider_family(model: str, family: str) -> None:
    assert provider_family(model) == family


# --------------------------------------------------------------------------- negative cases

CASES = DATA / "cases"  # one tool file per case; what each must give: cases/expected.yaml


def negative_cases() -> list[
    tuple[str, dict[str, Any], list[tuple[str, str]], str, str, str | None, str, str]
]:
    """(id, tool, chain, rule, severity, provider, a string on the finding's line, message part)."""
    expected = yaml.safe_load((CASES / "expected.yaml").read_text(encoding="utf-8"))
    files = sorted(p.stem for p in CASES.glob("*.json"))
    assert files == sorted(expected), "every case file has its expectation, and no other"
    return [
        (
            case,
            json.loads((CASES / f"{case}.json").read_text(encoding="utf-8")),
            [(label, model) for label, model in e["chain"]],
            e["rule"],
            e["severity"],
            e["provider"],
            e["on_line"],
            e["message"],
        )
        for case, e in expected.items()
    ]


NEGATIVE = negative_cases()


@pytest.mark.parametrize(
    ("case", "tool_", "chain", "rule", "severity", "provider", "on_line", "fragment"),
    NEGATIVE,
    ids=[c[0] for c in NEGATIVE],
)
def test_negative(
    tmp_path: Path,
    case: str,
    tool_: dict[str, Any],
    chain: list[tuple[str, str]],
    rule: str,
    severity: str,
    provider: str | None,
    on_line: str,
    fragment: str,
) -> None:
    doc = write(tmp_path, tool_)
    found = findings_for(doc, chain)
    matching = [f for f in found if f.rule == rule and f.provider == provider]
    assert matching, f"no {rule} for {provider}; got {[(f.rule, f.provider) for f in found]}"
    lines = doc.text.splitlines()
    marker, _, nth = on_line.partition("@")  # "text@2": the second line that holds "text"
    want_line = [i for i, text in enumerate(lines, 1) if marker in text][int(nth or 1) - 1]
    hit = [f for f in matching if f.line == want_line]
    assert hit, (
        f"{rule} on lines {[f.line for f in matching]}, expected {want_line}: {lines[want_line - 1]!r}"
    )
    assert hit[0].severity == severity
    assert fragment in hit[0].message, hit[0].message
    assert hit[0].hint, "every finding says what to do"
    if provider is not None:
        assert hit[0].message.startswith(f"{provider_product(chain[0][1])} ({provider}): ")


def provider_product(model: str) -> str:
    return {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}[
        provider_family(model)
    ]


def test_negative_example_file() -> None:
    doc, _ = load(DATA / "negative" / "bfcl_dict.json", "agents/a/tools/bfcl_dict.json")
    assert doc is not None
    found = findings_for(doc, ALL)
    assert [
        (f.rule, f.severity, f.line, f.column) for f in found if f.rule == "tool.parameters-schema"
    ] == [
        ("tool.parameters-schema", "error", 5, 5),
        ("tool.parameters-schema", "error", 8, 18),
    ]
    assert "write 'object'" in (found[0].hint or "") or any(
        "write 'object'" in (f.hint or "") for f in found
    )


@pytest.mark.parametrize("path", sorted((DATA / "positive").iterdir()), ids=lambda p: p.name)
def test_positive_files_have_no_errors(path: Path) -> None:
    doc, problems = load(path, f"agents/a/tools/{path.name}")
    assert doc is not None, problems
    errors = [f.render() for f in findings_for(doc, ALL) if f.severity == "error"]
    assert errors == []


def test_clean_tool_has_no_findings_at_all(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        tool(
            obj(
                order_id={"type": "string", "description": "Like A1001."},
                count={"type": "integer", "minimum": 1, "maximum": 10},
                when={"type": "string", "format": "date-time"},
            )
        ),
    )
    assert findings_for(doc, ALL) == []


def test_odd_input_never_raises(tmp_path: Path) -> None:
    odd: list[Any] = [
        None,
        3,
        "x",
        [],
        {"properties": []},
        {"type": 5},
        {"required": [1]},
        {"anyOf": "x", "items": [True]},
        {"$ref": 7},
        {"enum": "x"},
        {"properties": {"a": None}},
    ]
    for params in odd:
        doc = Document(
            Path("t.json"), "t.json", "", {"name": 5, "parameters": params, "strict": True}, {}
        )
        check_tool(doc, doc.data, ALL)
        check_parameters_schema(doc, ("parameters",))


# --------------------------------------------------------------------------- the agent's tool set


def agent_doc(tmp_path: Path) -> Document:
    path = tmp_path / "agent.yaml"
    path.write_text("name: a\nmodel: {provider: openai}\ntools:\n  - tools/a.json\n")
    doc, _ = load(path, "agents/a/agent.yaml")
    assert doc is not None
    return doc


def test_tool_set_too_many_tools(tmp_path: Path) -> None:
    tools = [tool(obj(), name=f"t{i}") for i in range(129)]
    found = check_tool_set("agents/a/agent.yaml", agent_doc(tmp_path), tools, ALL)
    rules = {(f.rule, f.provider, f.severity, f.line) for f in found}
    assert ("tool.openai.too-many-tools", "openai, local", "error", 3) in rules
    assert ("tool.gemini.too-many-tools", "gemini", "error", 3) in rules
    assert not any(f.provider == "claude" for f in found)


def test_tool_set_anthropic_strict_limits(tmp_path: Path) -> None:
    optional = {
        "type": "object",
        "properties": {f"p{i}": {"type": ["string", "null"]} for i in range(3)},
        "additionalProperties": False,
    }
    tools = [tool(optional, name=f"t{i}", strict=True) for i in range(21)]
    found = check_tool_set("agents/a/agent.yaml", agent_doc(tmp_path), tools, [CLAUDE])
    by_rule = {f.rule: f for f in found}
    assert set(by_rule) == {
        "tool.anthropic.strict-tools",
        "tool.anthropic.strict-optional",
        "tool.anthropic.strict-unions",
    }
    assert all(f.severity == "warning" and f.provider == "claude" and f.line == 3 for f in found)
    assert "21 strict tools" in by_rule["tool.anthropic.strict-tools"].message
    assert "63 optional" in by_rule["tool.anthropic.strict-optional"].message


def test_tool_set_without_agent_document() -> None:
    found = check_tool_set(
        "agents/a/agent.yaml", None, [tool(obj(), name=f"t{i}") for i in range(130)], [GEMINI]
    )
    assert [(f.path, f.line, f.json_path, f.rule) for f in found] == [
        ("agents/a/agent.yaml", None, "$.tools", "tool.gemini.too-many-tools")
    ]


# --------------------------------------------------------------------------- the metaschema, fast and exact


def sample_schemas() -> Iterator[Any]:
    rng = random.Random(7)
    values: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        1.5,
        2.0,
        "x",
        "",
        "string",
        "dict",
        [],
        ["string"],
        ["string", "string"],
        {},
        {"type": "string"},
        {"a": 1},
        [1, 2],
        ["a", "a"],
        "a#b",
        "_ok",
        "9",
    ]
    keys = [
        "type",
        "properties",
        "items",
        "required",
        "enum",
        "minimum",
        "maxLength",
        "minItems",
        "multipleOf",
        "anyOf",
        "oneOf",
        "not",
        "$defs",
        "additionalProperties",
        "$ref",
        "$anchor",
        "$id",
        "format",
        "pattern",
        "uniqueItems",
        "dependentRequired",
        "dependencies",
        "prefixItems",
        "$vocabulary",
        "examples",
        "const",
    ]
    bases: list[Any] = [
        tool_["parameters"]
        for _, tool_, *_ in NEGATIVE
        if "parameters" in tool_ and len(json.dumps(tool_["parameters"])) < 2000
    ]
    bases += [
        json.loads(p.read_text()).get("parameters") for p in (DATA / "negative").glob("*.json")
    ]
    for base in bases:
        yield base
        for _ in range(25):
            mutated = copy.deepcopy(base)
            nodes = [n for n, _ in toolcompat._walk(mutated)] or [mutated]
            for _ in range(rng.randint(1, 3)):
                node = rng.choice(nodes)
                if isinstance(node, dict):
                    node[rng.choice(keys)] = copy.deepcopy(rng.choice(values))
            yield mutated


def test_fast_metaschema_check_agrees_with_jsonschema() -> None:
    validator = toolcompat.metaschema_validator()
    checked = 0
    for schema in sample_schemas():
        ours = toolcompat._metaschema_errors(schema)
        theirs = list(validator.iter_errors(schema))
        assert bool(ours) == bool(theirs), (schema, ours, [e.message for e in theirs])
        paths = {tuple(e.absolute_path) for e in theirs}
        for path, _, _ in ours:  # ours points at the keyword, jsonschema at or below it
            assert any(p[: len(path)] == path for p in paths), (schema, path, paths)
        checked += 1
    assert checked > 800


def test_deep_schema_falls_back_to_jsonschema() -> None:
    def deep(levels: int) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string"}
        for _ in range(levels):
            schema = {"type": "object", "properties": {"a": schema}}
        return schema

    assert toolcompat._metaschema_errors(deep(150)) == ()
    bad = deep(150)
    bad["properties"]["a"]["type"] = "dict"
    assert toolcompat._metaschema_errors(bad)[0][0] == ("properties", "a", "type")
    rows = toolcompat._metaschema_errors(deep(300))  # past the fast check: jsonschema, cached
    assert rows == toolcompat._metaschema_errors(deep(300))
    assert rows[0][1] == "the schema nests too deeply to check"


# --------------------------------------------------------------------------- what litellm really does


@pytest.fixture(scope="module")
def litellm_gemini() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    mod = pytest.importorskip("litellm.llms.vertex_ai.gemini.vertex_and_google_ai_studio_gemini")
    config = mod.VertexGeminiConfig()

    def sent(params: dict[str, Any], strict: bool = False) -> Any:
        fn: dict[str, Any] = {"name": "t", "description": "d", "parameters": copy.deepcopy(params)}
        if strict:
            fn["strict"] = True
        return config._map_function([{"type": "function", "function": fn}], {})[0][
            "function_declarations"
        ][0]

    return sent


# (schema, the rule we report, what litellm sends for property "v": exactly this, or an exception)
GEMINI_EVIDENCE: list[tuple[dict[str, Any], str | None, Any]] = [
    ({"const": "refund"}, "tool.gemini.drops-const", {"type": "object"}),
    ({"type": "string", "const": "refund"}, "tool.gemini.drops-const", {"type": "string"}),
    ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "tool.gemini.drops-one-of", {}),
    ({"type": "integer", "enum": [1, 2]}, "tool.gemini.drops-enum", {"type": "integer"}),
    ({"enum": ["a", "b"]}, "tool.gemini.drops-enum", {"type": "object"}),
    (
        {"type": "array", "items": {"type": "string", "enum": ["", "a"]}},
        "tool.gemini.rewrites-enum",
        {"type": "array", "items": {"type": "string", "enum": [None, "a"]}},
    ),
    ({"type": "string", "format": "email"}, "tool.gemini.drops-format", {"type": "string"}),
    ({"type": "string", "format": "date-time"}, None, {"type": "string", "format": "date-time"}),
    (
        {"type": "integer", "minimum": 1, "maximum": 9},
        None,
        {"type": "integer", "minimum": 1, "maximum": 9},
    ),
    (
        {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"},
        None,
        {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"},
    ),
    (
        {"type": ["string", "null"], "enum": ["F", "C"], "description": "unit"},
        "tool.gemini.drops-anyof-siblings",
        {
            "anyOf": [
                {"type": "string", "description": "unit"},
                {"type": "null", "description": "unit"},
            ]
        },
    ),
    ({"type": "array"}, "tool.gemini.adds-items", {"type": "array", "items": {"type": "object"}}),
    (
        {"description": "anything"},
        "tool.gemini.adds-object-type",
        {"description": "anything", "type": "object"},
    ),
    (
        {"type": "object", "additionalProperties": {"type": "string"}},
        "tool.gemini.drops-additional-properties",
        {"type": "object"},
    ),
    ({"type": "string", "examples": ["x"]}, "tool.gemini.drops-examples", {"type": "string"}),
    (
        {"type": "number", "exclusiveMinimum": 0, "multipleOf": 2},
        "tool.gemini.drops-exclusive-minimum",
        {"type": "number"},
    ),
    (
        {"type": "object", "properties": {"strict": {"type": "string"}, "q": {"type": "string"}}},
        "tool.gemini.drops-strict-property",
        {"type": "object", "properties": {"q": {"type": "string"}}},
    ),
    (
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost"]},
        "tool.gemini.required-undefined",
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost"]},
    ),
    ({"anyOf": [{"type": "null"}]}, "tool.gemini.anyof-only-null", ValueError),
    ({"type": "array", "items": True}, "tool.gemini.boolean-schema", AttributeError),
]


@pytest.mark.parametrize(
    ("schema", "rule", "litellm_sends"),
    GEMINI_EVIDENCE,
    ids=[f"{r or 'kept'}-{i}" for i, (_, r, _) in enumerate(GEMINI_EVIDENCE)],
)
def test_gemini_claims_match_litellm(
    tmp_path: Path,
    litellm_gemini: Any,
    schema: dict[str, Any],
    rule: str | None,
    litellm_sends: Any,
) -> None:
    params = obj(v=schema)
    if isinstance(litellm_sends, type):
        with pytest.raises(litellm_sends):
            litellm_gemini(params)
    else:
        assert litellm_gemini(params)["parameters"]["properties"]["v"] == litellm_sends
    rules = {f.rule for f in check_tool(write(tmp_path, tool(params)), tool(params), [GEMINI])}
    if rule is None:
        assert rules == set()
    else:
        assert rule in rules


def test_gemini_recursive_ref_is_cut_off(litellm_gemini: Any) -> None:
    params = {
        **obj(root={"$ref": "#/$defs/node"}),
        "$defs": {"node": obj(child={"$ref": "#/$defs/node"})},
    }
    sent = litellm_gemini(params)["parameters"]
    assert sent["properties"]["root"]["properties"]["child"] == {"type": "object"}


def test_gemini_strict_is_removed(litellm_gemini: Any) -> None:
    assert "strict" not in litellm_gemini(strict_obj(a={"type": "string"}), strict=True)


@pytest.fixture(scope="module")
def litellm_anthropic() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    litellm = pytest.importorskip("litellm")
    config = litellm.AnthropicConfig()

    def sent(fn: dict[str, Any]) -> Any:
        model = "claude-3-5-haiku-20241022"
        optional = config.map_openai_params(
            {"tools": [{"type": "function", "function": copy.deepcopy(fn)}]}, {}, model, False
        )
        request = config.transform_request(
            model, [{"role": "user", "content": "hi"}], optional, {}, {}
        )
        return request["tools"][0]

    return sent


def test_anthropic_claims_match_litellm(litellm_anthropic: Any) -> None:
    sent = litellm_anthropic(
        {"name": "uber.ride", "strict": True, "parameters": strict_obj(a={"type": "string"})}
    )
    assert "strict" not in sent and sent["name"] == "uber_ride"
    sent = litellm_anthropic(
        {"name": "t", "parameters": {"anyOf": [obj(a={"type": "string"})], "description": "d"}}
    )
    assert sent["input_schema"] == {"type": "object", "properties": {}}


# --------------------------------------------------------------------------- the real-world corpus


@SKIP_WITHOUT
def test_bfcl_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    tools = bfcl_tools()
    by_provider: collections.Counter[tuple[str, str]] = collections.Counter()
    by_rule: collections.Counter[tuple[str, str]] = collections.Counter()
    dict_roots = 0
    for i, fn in enumerate(tools):
        doc = Document(
            Path(f"t{i}.json"), f"agents/bfcl/tools/t{i}.json", "", fn, {}
        )  # {}: no line lookup
        found = check_tool(doc, fn, ALL) + check_parameters_schema(doc, ("parameters",))
        for f in found:
            by_provider[(f.provider or "(all)", f.severity)] += 1
            by_rule[(f.rule, f.severity)] += 1
        if fn["parameters"].get("type") == "dict":
            dict_roots += 1
            assert any(
                f.rule == "tool.parameters-schema" and f.json_path == "$.parameters.type"
                for f in found
            )
    set_findings = check_tool_set("agents/bfcl/agent.yaml", None, tools, ALL)
    with capsys.disabled():
        print(f"\nBFCL: {len(tools):,} tools, {dict_roots:,} with `type: dict`")
        for (provider, severity), n in sorted(by_provider.items()):
            print(f"  {provider:>14} {severity:<7} {n:>6,}")
        for (rule, severity), n in by_rule.most_common(12):
            print(f"  {n:>6,} {severity:<7} {rule}")
    assert len(tools) > 5000
    assert dict_roots > 0.9 * len(tools)
    assert by_rule[("tool.parameters-schema", "error")] >= dict_roots
    assert (
        by_rule[("tool.openai.name", "error")] == by_rule[("tool.anthropic.name", "warning")] > 500
    )  # dotted names
    assert (
        by_rule[("tool.gemini.name", "error")] < by_rule[("tool.openai.name", "error")]
    )  # Gemini allows dots
    assert {f.rule for f in set_findings} == {
        "tool.openai.too-many-tools",
        "tool.gemini.too-many-tools",
    }


def test_gemini_root_anyof_loses_the_object_type(tmp_path: Path, litellm_gemini: Any) -> None:
    params = {
        **obj(a={"type": "string"}, b={"type": "string"}),
        "anyOf": [{"required": ["a"]}, {"required": ["b"]}],
    }
    assert set(litellm_gemini(params)["parameters"]) == {"anyOf"}
    rules = {f.rule for f in check_tool(write(tmp_path, tool(params)), tool(params), [GEMINI])}
    assert "tool.gemini.root-type" in rules


def test_strict_tool_on_gemini_warns_once(tmp_path: Path) -> None:
    strict_tool = tool(
        strict_obj(a={"type": "string"}, b=strict_obj(c={"type": "string"})), strict=True
    )
    found = check_tool(write(tmp_path, strict_tool), strict_tool, [GEMINI])
    assert [f.rule for f in found] == ["tool.gemini.drops-strict"]
    assert "additionalProperties: false" in found[0].message
