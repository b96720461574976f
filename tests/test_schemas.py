"""The JSON Schemas in schemas/ and every file knowngood ships that they describe.

Schemas are loaded the way knowngood loads them: every file of schemas/ in one
``referencing.Registry`` keyed by ``$id``, so cross-file ``$ref``s resolve offline. The shipped
files are the example repository at the project root and the ``knowngood init`` scaffold.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from schemautil import (
    EXPECTED_SCHEMAS,
    REGISTRY,
    ROOT,
    SCHEMA_FILES,
    validator,
)
from schemautil import load_data as _load
from schemautil import schema as _schema

from pipeline.evals.assertions import ASSERTIONS

SCAFFOLD = ROOT / "pipeline" / "scaffold" / "files"
BASE_ID = "https://knowngood.dev/schemas/"
ASSERTION_TYPES = set(ASSERTIONS)  # the engine's registry is the source of truth


# -- which schema describes which shipped file -------------------------------------------------


def schema_for(rel: str) -> str | None:
    """The schema of a repository file (``rel`` relative to the repository root), or None."""
    parts = rel.split("/")
    if rel == "knowngood.yaml":
        return "knowngood.schema.json"
    if len(parts) == 3 and parts[0] == "agents" and parts[2] == "agent.yaml":
        return "agent.schema.json"
    if len(parts) == 4 and parts[0] == "agents" and parts[2] == "environments":
        return "environment.schema.json"
    if len(parts) == 4 and parts[0] == "agents" and parts[2] == "tools":
        return "tool.schema.json"
    if len(parts) == 3 and parts[0] == "evals" and not parts[1].startswith("_"):
        return "suite.schema.json"
    return None


def _repo_files(repo: Path) -> Iterator[Path]:
    yield repo / "knowngood.yaml"
    for pattern in (
        "agents/*/agent.yaml",
        "agents/*/environments/*",
        "agents/*/tools/*",
        "evals/*/*",
    ):
        yield from sorted(p for p in repo.glob(pattern) if p.is_file())


SHIPPED = [
    pytest.param(
        repo, path.relative_to(repo).as_posix(), id=f"{label}:{path.relative_to(repo).as_posix()}"
    )
    for label, repo in (("example", ROOT), ("scaffold", SCAFFOLD))
    for path in _repo_files(repo)
    if schema_for(path.relative_to(repo).as_posix()) is not None
]


# -- the schemas themselves --------------------------------------------------------------------


def test_every_file_format_has_a_schema() -> None:
    assert set(SCHEMA_FILES) >= EXPECTED_SCHEMAS


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_is_valid_2020_12_with_id(name: str) -> None:
    schema = _schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == BASE_ID + name
    assert schema.get("title") and schema.get("description")


_SUBSCHEMA = {
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "contains",
}
_SUBSCHEMA_MAPS = {"properties", "$defs", "patternProperties", "dependentSchemas"}
_SUBSCHEMA_LISTS = {"allOf", "anyOf", "oneOf", "prefixItems"}


def _walk(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema of a JSON Schema (following keywords, not data), with its location."""
    if not isinstance(node, dict):
        return
    yield where, node
    for key, value in node.items():
        if key in _SUBSCHEMA:
            yield from _walk(value, f"{where}/{key}")
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _walk(sub, f"{where}/{key}/{name}")
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _walk(sub, f"{where}/{key}/{i}")


def _resolve(name: str, subschema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` chains so a property documented at its definition counts."""
    resolver = REGISTRY.resolver(base_uri=BASE_ID + name)
    seen = 0
    while "$ref" in subschema and not ("title" in subschema and "description" in subschema):
        resolved = resolver.lookup(subschema["$ref"])
        merged = {**resolved.contents, **subschema}
        del merged["$ref"]
        subschema, resolver = merged, resolved.resolver
        seen += 1
        assert seen < 10, "ref cycle"
    return subschema


@pytest.mark.parametrize("name", sorted(EXPECTED_SCHEMAS))
def test_every_property_has_title_and_description(name: str) -> None:
    missing = []
    for where, node in _walk(_schema(name), "#"):
        props = node.get("properties")
        # Conditions (if/then/else) only test or allow keys; the documented schema is elsewhere.
        if not isinstance(props, dict) or where.rsplit("/", 1)[-1] in {"if", "then", "else"}:
            continue
        for prop, sub in props.items():
            full = _resolve(name, sub)
            if not (full.get("title") and full.get("description")):
                missing.append(f"{where}/properties/{prop}")
    assert not missing, f"properties without title or description: {missing}"


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_every_ref_resolves_offline(name: str) -> None:
    resolver = REGISTRY.resolver(base_uri=BASE_ID + name)
    for where, node in _walk(_schema(name), "#"):
        if "$ref" in node:
            assert resolver.lookup(node["$ref"]).contents is not None, where


ANNOTATIONS = {"title", "description", "examples", "default", "$comment", "deprecated"}


@pytest.mark.parametrize("name", sorted(EXPECTED_SCHEMAS))
def test_ref_siblings_are_annotations_only(name: str) -> None:
    """Validation keywords next to `$ref` are ignored by draft-07 validators (the compiled
    fastjsonschema path of `knowngood validate`): wrap the `$ref` in `allOf` instead."""
    bad = [
        f"{where}: {sorted(set(node) - ANNOTATIONS - {'$ref'})}"
        for where, node in _walk(_schema(name), "#")
        if "$ref" in node and set(node) - ANNOTATIONS - {"$ref"}
    ]
    assert not bad


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_examples_are_valid(name: str) -> None:
    """Top-level and definition examples must validate against what they illustrate."""
    schema = _schema(name)
    check = validator(name)
    for example in schema.get("examples", []):
        assert not list(check.iter_errors(example)), example
    defs = schema.get("$defs", {})
    for def_name, sub in defs.items():
        def_check = Draft202012Validator(
            {"$ref": f"{BASE_ID}{name}#/$defs/{def_name}"},
            registry=REGISTRY,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        for example in sub.get("examples", []):
            errors = [e.message for e in def_check.iter_errors(example)]
            assert not errors, (def_name, example, errors)


def test_assertion_registry_lists_exactly_the_documented_types() -> None:
    assertion = _schema("suite.schema.json")["$defs"]["assertion"]
    assert set(assertion["properties"]) == ASSERTION_TYPES
    assert assertion["minProperties"] == assertion["maxProperties"] == 1
    assert assertion["additionalProperties"] is False


def test_environment_overlay_allows_every_agent_key_but_name() -> None:
    agent_keys = set(_schema("agent.schema.json")["properties"])
    overlay_keys = set(_schema("environment.schema.json")["properties"])
    assert overlay_keys == agent_keys - {"name"}
    assert "required" not in _schema("environment.schema.json")


# -- every shipped file validates --------------------------------------------------------------


@pytest.mark.parametrize(("repo", "rel"), SHIPPED)
def test_shipped_file_validates(repo: Path, rel: str) -> None:
    name = schema_for(rel)
    assert name is not None
    errors = sorted(validator(name).iter_errors(_load(repo / rel)), key=lambda e: e.json_path)
    assert not errors, [f"{e.json_path}: {e.message}" for e in errors]


MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


@pytest.mark.parametrize(("repo", "rel"), [p for p in SHIPPED if not p.values[1].endswith(".json")])
def test_shipped_yaml_has_schema_modeline(repo: Path, rel: str) -> None:
    first = (repo / rel).read_text(encoding="utf-8").splitlines()[0]
    match = MODELINE.match(first)
    assert match, f"{rel}: first line must be '# yaml-language-server: $schema=<relative path>'"
    target = ((repo / rel).parent / match.group(1)).resolve()
    # The scaffold has no schemas/ of its own: `knowngood init` copies them next to it.
    expected = (repo / "schemas" / schema_for(rel)).resolve()  # type: ignore[operator]
    assert target == expected


def test_example_and_scaffold_ship_the_same_judge_prompt() -> None:
    example = ROOT / "evals" / "_judge" / "v1.md"
    assert example.read_text(encoding="utf-8") == (
        SCAFFOLD / "evals" / "_judge" / "v1.md"
    ).read_text(encoding="utf-8")
    text = example.read_text(encoding="utf-8")
    for var in ("rubric", "input", "answer"):
        assert "{{ " + var + " }}" in text
    assert '"pass"' in text and '"reason"' in text


# -- shipped repositories hang together --------------------------------------------------------


def _chain(agent: dict[str, Any]) -> list[str]:
    return [agent["model"]["provider"], *agent["model"].get("fallbacks", [])]


def _walk_assertions(expect: list[dict[str, Any]]) -> Iterator[tuple[str, Any]]:
    for assertion in expect:
        ((kind, arg),) = assertion.items()
        yield kind, arg
        if kind == "not":
            yield from _walk_assertions([arg])


def _strict_problems(schema: dict[str, Any], where: str = "$") -> list[str]:
    problems = []
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        if schema.get("additionalProperties") is not False:
            problems.append(f"{where}: additionalProperties must be false")
        if set(schema.get("required", [])) != set(props):
            problems.append(f"{where}: every property must be required")
        for key, sub in props.items():
            problems += _strict_problems(sub, f"{where}.{key}")
    if isinstance(schema.get("items"), dict):
        problems += _strict_problems(schema["items"], f"{where}[]")
    return problems


GEMINI_UNSAFE = {
    "additionalProperties",
    "minimum",
    "maximum",
    "pattern",
    "default",
    "minLength",
    "$ref",
    "oneOf",
}


REPOS = pytest.mark.parametrize("repo", [ROOT, SCAFFOLD], ids=["example", "scaffold"])


def _agents(repo: Path) -> list[tuple[Path, dict[str, Any]]]:
    folders = sorted(p for p in (repo / "agents").iterdir() if p.is_dir())
    assert folders, f"{repo}: no agents"
    return [(folder, _load(folder / "agent.yaml")) for folder in folders]


def _tool_paths(folder: Path, agent: dict[str, Any]) -> list[str]:
    listed = agent.get("tools")
    if listed is not None:
        return list(listed)
    return [p.relative_to(folder).as_posix() for p in sorted((folder / "tools").iterdir())]


def _deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _configurations(folder: Path, agent: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """agent.yaml as is, then merged with each environment overlay."""
    yield "base", agent
    for path in sorted((folder / "environments").glob("*.yaml")):
        yield path.stem, _deep_merge(agent, _load(path))


@REPOS
def test_shipped_agents_reference_what_exists(repo: Path) -> None:
    settings = _load(repo / "knowngood.yaml")
    environments = set(settings.get("deploy", {}).get("environments", ["staging", "production"]))
    for folder, agent in _agents(repo):
        assert agent["name"] == folder.name
        assert {p.stem for p in (folder / "environments").glob("*.yaml")} == environments
        for env, config in _configurations(folder, agent):
            assert set(_chain(config)) <= set(settings["providers"]), (folder.name, env)
            assert (folder / config["prompt"]["system"]).is_file(), (folder.name, env)
        suites = {p.stem for p in (repo / "evals" / folder.name).glob("*.yaml")}
        evals = agent.get("evals", {})
        assert set(evals.get("pull_request", []) + evals.get("post_deploy", [])) <= suites


@REPOS
def test_shipped_tools_suit_every_provider_of_their_chain(repo: Path) -> None:
    for folder, agent in _agents(repo):
        paths = _tool_paths(folder, agent)
        chains = {p for _, config in _configurations(folder, agent) for p in _chain(config)}
        json_mode = any(
            config["model"].get("params", {}).get("response_format", {}).get("type", "text")
            != "text"
            for _, config in _configurations(folder, agent)
        )
        if json_mode and "gemini" in chains:
            # Gemini: "Function calling with a response mime type: 'application/json' is
            # unsupported" -- such an agent ships without tools.
            assert not paths, f"{folder.name}: tools + JSON mode fail on Gemini"
            continue
        assert len(paths) >= 2, folder.name
        assert {Path(p).suffix for p in paths} >= {".json", ".yaml"}, "mix JSON and YAML tools"
        for rel in paths:
            parameters = _load(folder / rel)["parameters"]
            Draft202012Validator.check_schema(parameters)
            if _load(folder / rel).get("strict"):
                assert not _strict_problems(parameters), (rel, _strict_problems(parameters))
            if "gemini" in chains:
                nodes = [node for _, node in _walk(parameters, "#")]
                used = {key for node in nodes for key in node}
                assert not used & GEMINI_UNSAFE, (rel, used & GEMINI_UNSAFE)
                assert not any(isinstance(node.get("type"), list) for node in nodes), rel


@REPOS
def test_shipped_suites_fit_their_agent(repo: Path) -> None:
    settings = _load(repo / "knowngood.yaml")
    for folder, agent in _agents(repo):
        chain = _chain(agent)
        tool_names = {_load(folder / rel)["name"] for rel in _tool_paths(folder, agent)}
        for path in sorted((repo / "evals" / folder.name).glob("*.yaml")):
            suite, where = _load(path), f"{folder.name}/{path.stem}"
            assert suite["agent"] == folder.name
            ids = [case["id"] for case in suite["cases"]]
            assert len(ids) == len(set(ids)), where
            suite_providers = suite.get("providers", chain)
            assert set(suite_providers) <= set(chain), where
            local = [c for c in suite["cases"] if "local" in c.get("providers", suite_providers)]
            assert len(local) >= 2, f"{where}: at least two cases must run on the local model"
            for case in suite["cases"]:
                providers = case.get("providers", suite_providers)
                assert set(providers) <= set(chain), (where, case["id"])
                for kind, arg in _walk_assertions(case["expect"]):
                    _check_assertion(repo, settings, tool_names, providers, kind, arg)


def _check_assertion(
    repo: Path,
    settings: dict[str, Any],
    tool_names: set[str],
    providers: list[str],
    kind: str,
    arg: Any,
) -> None:
    if kind in {"tool_call", "no_tool_call", "judge", "similar"}:
        # SmolLM2-135M neither calls tools nor is worth grading: cloud-only cases
        assert "local" not in providers, kind
    if kind == "tool_call":
        calls = arg if isinstance(arg, list) else [arg]
        assert {c["name"] for c in calls} <= tool_names
        for call in calls:
            if call.get("match") == "schema":
                Draft202012Validator.check_schema(call["arguments"])
    elif kind == "json_schema":
        Draft202012Validator.check_schema(arg)
    elif kind == "regex":
        re.compile(arg)
    elif kind == "judge":
        assert (repo / "evals" / "_judge" / f"{arg.get('prompt', 'v1')}.md").is_file()
        grader = arg.get("provider", settings.get("eval", {}).get("judge_provider"))
        assert grader in settings["providers"]


@REPOS
def test_shipped_prompts_render_for_every_case_and_environment(repo: Path) -> None:
    """Every case's variables (agent < suite < case) fill its agent's template in every
    environment, rendered the way the eval engine renders it (StrictUndefined)."""
    from pipeline.templates import render

    rendered = 0
    for folder, agent in _agents(repo):
        for path in sorted((repo / "evals" / folder.name).glob("*.yaml")):
            suite = _load(path)
            for _env, config in _configurations(folder, agent):
                source = (folder / config["prompt"]["system"]).read_text(encoding="utf-8")
                for case in suite["cases"]:
                    variables = {
                        **config["prompt"].get("vars", {}),
                        **suite.get("vars", {}),
                        **case.get("vars", {}),
                    }
                    text = render(source, variables)
                    assert text.strip() and "{{" not in text and "{%" not in text
                    rendered += 1
    assert rendered


# -- negative snippets: tests/examples/<schema>/negative/ (tests/test_examples.py) ------------------


def _sample_report() -> dict[str, Any]:
    return {
        "version": 1,
        "ok": False,
        "errors": 1,
        "warnings": 1,
        "files_checked": 3,
        "findings": [
            {
                "path": "agents/support/tools/issue_refund.yaml",
                "line": 14,
                "column": 7,
                "json_path": "$.parameters.properties.amount_usd",
                "message": "'minimum' is dropped by Gemini",
                "severity": "error",
                "rule": "tool.gemini.drops-minimum",
                "provider": "gemini",
                "hint": "move the bound into the description",
            },
            {
                "path": "",
                "line": None,
                "column": None,
                "json_path": "",
                "message": "no agents found under agents/",
                "severity": "warning",
                "rule": "repo.no-agents",
                "provider": None,
                "hint": None,
            },
        ],
    }


# -- the validate report --------------------------------------------------------------------------


def test_validate_report_accepts_a_sample_report() -> None:
    assert not list(validator("validate-report.schema.json").iter_errors(_sample_report()))


def test_validate_report_accepts_a_clean_run() -> None:
    clean = {
        "version": 1,
        "ok": True,
        "errors": 0,
        "warnings": 0,
        "files_checked": 12,
        "findings": [],
    }
    assert not list(validator("validate-report.schema.json").iter_errors(clean))


def test_validate_report_matches_finding_to_json() -> None:
    """Finding.to_json() (pipeline/findings.py) produces exactly what the schema describes."""
    from pipeline.findings import Finding

    finding = Finding(
        "agents/support/agent.yaml", 3, 5, "$.model.provider", "unknown provider 'opnai'"
    )
    report = {
        "version": 1,
        "ok": False,
        "errors": 1,
        "warnings": 0,
        "files_checked": 1,
        "findings": [finding.to_json()],
    }
    assert not list(validator("validate-report.schema.json").iter_errors(report))
