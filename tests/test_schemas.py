"""The JSON Schemas in schemas/ and every file knowngood ships that they describe.

Schemas are loaded the way knowngood loads them: every file of schemas/ in one
``referencing.Registry`` keyed by ``$id``, so cross-file ``$ref``s resolve offline. The shipped
files are the example repository at the project root and the ``knowngood init`` scaffold.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource

from pipeline.evals.assertions import ASSERTIONS
from pipeline.loading import load

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SCAFFOLD = ROOT / "pipeline" / "scaffold" / "files"
BASE_ID = "https://knowngood.dev/schemas/"
SCHEMA_FILES = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
EXPECTED_SCHEMAS = {
    "agent.schema.json",
    "environment.schema.json",
    "knowngood.schema.json",
    "suite.schema.json",
    "tool.schema.json",
    "validate-report.schema.json",
}
ASSERTION_TYPES = set(ASSERTIONS)  # the engine's registry is the source of truth


def _schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return data


REGISTRY: Registry[Any] = Registry().with_resources(
    (_schema(name)["$id"], Resource.from_contents(_schema(name))) for name in SCHEMA_FILES
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        _schema(name),
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _load(path: Path) -> Any:
    doc, findings = load(path, path.name)
    assert doc is not None, [f.render() for f in findings]
    return doc.data


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


# -- negative snippets: one clear message from best_match -----------------------------------------

AGENT = "name: support\nmodel: {provider: openai}\nprompt: {system: prompts/system.md}\n"
SUITE = "agent: support\ncases:\n  - id: c1\n    input: hi\n    expect:\n"
SETTINGS = (
    "version: 1\nproviders:\n  local: {model: openai/smollm2-135m-instruct, serve: smollm2}\n"
)
TOOL = {
    "name": "lookup_order",
    "description": "Look up an order.",
    "parameters": {"type": "object"},
}

# One row per line reads as a table.
# fmt: off
NEGATIVE: list[tuple[str, str, Any, str, str]] = [
    # (id, schema, instance (YAML text or data), json_path, message)
    # knowngood.yaml
    ("settings-typo", "knowngood.schema.json", SETTINGS + "evals: {}\n", "$", "Additional properties are not allowed ('evals' was unexpected)"),
    ("settings-version", "knowngood.schema.json", SETTINGS.replace("version: 1", "version: 2"), "$.version", "1 was expected"),
    ("settings-missing-providers", "knowngood.schema.json", "version: 1\n", "$", "'providers' is a required property"),
    ("settings-provider-name", "knowngood.schema.json", SETTINGS + "  OpenAI: {model: openai/gpt-4o-mini}\n", "$.providers", "'OpenAI' does not match"),
    ("settings-provider-typo", "knowngood.schema.json", SETTINGS + "  openai: {model: openai/gpt-4o-mini, api_key: sk-x}\n", "$.providers.openai", "Additional properties are not allowed ('api_key' was unexpected)"),
    ("settings-provider-string", "knowngood.schema.json", SETTINGS + "  openai: openai/gpt-4o-mini\n", "$.providers.openai", "'openai/gpt-4o-mini' is not of type 'object'"),
    ("settings-key-in-env-name", "knowngood.schema.json", SETTINGS + "  openai: {model: openai/gpt-4o-mini, api_key_env: sk-abc123}\n", "$.providers.openai.api_key_env", "'sk-abc123' does not match"),
    ("settings-serve-unknown", "knowngood.schema.json", SETTINGS + "  lab: {model: openai/x, serve: llama3}\n", "$.providers.lab.serve", "'llama3' is not one of ['smollm2']"),
    ("settings-eval-typo", "knowngood.schema.json", SETTINGS + "eval: {concurency: 4}\n", "$.eval", "Additional properties are not allowed ('concurency' was unexpected)"),
    ("settings-pass-rate-percent", "knowngood.schema.json", SETTINGS + "eval: {pass_rate: 90}\n", "$.eval.pass_rate", "90 is greater than the maximum of 1"),
    ("settings-target-type", "knowngood.schema.json", SETTINGS + "deploy: {target: {type: s3}}\n", "$.deploy.target.type", "'s3' is not one of ['directory', 'command', 'http']"),
    ("settings-target-missing-command", "knowngood.schema.json", SETTINGS + "deploy: {target: {type: command}}\n", "$.deploy.target", "'command' is a required property"),
    ("settings-target-foreign-key", "knowngood.schema.json", SETTINGS + "deploy: {target: {type: directory, path: x, url: 'https://x'}}\n", "$.deploy.target", "Additional properties are not allowed ('url' was unexpected)"),
    ("settings-command-string", "knowngood.schema.json", SETTINGS + "deploy: {target: {type: command, command: ./deploy.sh}}\n", "$.deploy.target.command", "'./deploy.sh' is not of type 'array'"),
    ("settings-http-needs-secret", "knowngood.schema.json", SETTINGS + "deploy: {target: {type: http, url: 'https://x/y'}}\n", "$.deploy.target", "'secret_env' is a required property"),
    ("settings-revert-bool", "knowngood.schema.json", SETTINGS + "revert: {auto: sometimes}\n", "$.revert.auto", "'sometimes' is not of type 'boolean'"),
    # agent.yaml
    ("agent-typo", "agent.schema.json", AGENT + "descripton: x\n", "$", "Additional properties are not allowed ('descripton' was unexpected)"),
    ("agent-name", "agent.schema.json", AGENT.replace("name: support", "name: Support"), "$.name", "'Support' does not match"),
    ("agent-missing-model", "agent.schema.json", "name: support\nprompt: {system: p.md}\n", "$", "'model' is a required property"),
    ("agent-missing-provider", "agent.schema.json", "name: support\nmodel: {fallbacks: [local]}\nprompt: {system: p.md}\n", "$.model", "'provider' is a required property"),
    ("agent-fallbacks-string", "agent.schema.json", AGENT.replace("{provider: openai}", "{provider: openai, fallbacks: local}"), "$.model.fallbacks", "'local' is not of type 'array'"),
    ("agent-param-typo", "agent.schema.json", AGENT.replace("{provider: openai}", "{provider: openai, params: {temprature: 0}}"), "$.model.params", "Additional properties are not allowed ('temprature' was unexpected)"),
    ("agent-param-type", "agent.schema.json", AGENT.replace("{provider: openai}", "{provider: openai, params: {max_tokens: lots}}"), "$.model.params.max_tokens", "'lots' is not of type 'integer'"),
    ("agent-response-format", "agent.schema.json", AGENT.replace( "{provider: openai}", "{provider: openai, params: {response_format: {type: json_schema}}}", ), "$.model.params.response_format", "'json_schema' is a required property"),
    ("agent-prompt-escapes", "agent.schema.json", AGENT.replace("prompts/system.md", "../other/system.md"), "$.prompt.system", "'../other/system.md' does not match"),
    ("agent-var-name", "agent.schema.json", AGENT.replace("system.md}", "system.md, vars: {home-airport: LIS}}"), "$.prompt.vars", "'home-airport' does not match"),
    ("agent-tool-extension", "agent.schema.json", AGENT + "tools: [tools/lookup.txt]\n", "$.tools[0]", "'tools/lookup.txt' does not match"),
    ("agent-suite-with-extension", "agent.schema.json", AGENT + "evals: {pull_request: [regression.yaml]}\n", "$.evals.pull_request[0]", "'regression.yaml' does not match"),
    ("agent-circuit-breaker-typo", "agent.schema.json", AGENT + "resilience: {circuit_breaker: {failure: 3}}\n", "$.resilience.circuit_breaker", "Additional properties are not allowed ('failure' was unexpected)"),
    # environments/<env>.yaml
    ("env-name-not-allowed", "environment.schema.json", "name: support\n", "$", "Additional properties are not allowed ('name' was unexpected)"),
    ("env-typo", "environment.schema.json", "prompts: {vars: {a: 1}}\n", "$", "Additional properties are not allowed ('prompts' was unexpected)"),
    ("env-nested-typo", "environment.schema.json", "model: {params: {temprature: 0}}\n", "$.model.params", "Additional properties are not allowed ('temprature' was unexpected)"),
    ("env-wrong-type", "environment.schema.json", "resilience: {retries: many}\n", "$.resilience.retries", "'many' is not of type 'integer'"),
    # tools
    ("tool-typo", "tool.schema.json", {**TOOL, "descripton": "x"}, "$", "Additional properties are not allowed ('descripton' was unexpected)"),
    ("tool-name-dot", "tool.schema.json", {**TOOL, "name": "orders.lookup"}, "$.name", "'orders.lookup' does not match"),
    ("tool-missing-description", "tool.schema.json", {"name": "x", "parameters": {"type": "object"}}, "$", "'description' is a required property"),
    ("tool-parameters-no-type", "tool.schema.json", {**TOOL, "parameters": {"properties": {}}}, "$.parameters", "'type' is a required property"),
    ("tool-parameters-not-object", "tool.schema.json", {**TOOL, "parameters": {"type": "dict"}}, "$.parameters.type", "'object' was expected"),
    ("tool-parameters-string", "tool.schema.json", {**TOOL, "parameters": "{}"}, "$.parameters", "'{}' is not of type 'object'"),
    ("tool-strict-string", "tool.schema.json", {**TOOL, "strict": "yes"}, "$.strict", "'yes' is not of type 'boolean'"),
    # suites
    ("suite-unknown-assertion", "suite.schema.json", SUITE + "      - containz: x\n", "$.cases[0].expect[0]", "Additional properties are not allowed ('containz' was unexpected)"),
    ("suite-unknown-assertion-in-not", "suite.schema.json", SUITE + "      - not: {icontain: x}\n", "$.cases[0].expect[0].not", "Additional properties are not allowed ('icontain' was unexpected)"),
    ("suite-two-assertions-in-one", "suite.schema.json", SUITE + "      - contains: x\n        regex: y\n", "$.cases[0].expect[0]", "has too many properties"),
    ("suite-empty-assertion", "suite.schema.json", SUITE + "      - {}\n", "$.cases[0].expect[0]", "{} should be non-empty"),
    ("suite-assertion-as-string", "suite.schema.json", SUITE + "      - no_tool_call\n", "$.cases[0].expect[0]", "'no_tool_call' is not of type 'object'"),
    ("suite-contains-number", "suite.schema.json", SUITE + "      - contains: 42\n", "$.cases[0].expect[0].contains", "42 is not of type 'string', 'array'"),
    ("suite-equals-number", "suite.schema.json", SUITE + "      - equals: 42\n", "$.cases[0].expect[0].equals", "42 is not of type 'string'"),
    ("suite-bad-regex", "suite.schema.json", SUITE + "      - regex: '(unclosed'\n", "$.cases[0].expect[0].regex", "is not a 'regex'"),
    ("suite-json-needs-value", "suite.schema.json", SUITE + "      - json: {category: billing}\n", "$.cases[0].expect[0].json", "'value' is a required property"),
    ("suite-json-exclude-path", "suite.schema.json", SUITE + "      - json: {value: {}, exclude_paths: [summary]}\n", "$.cases[0].expect[0].json.exclude_paths[0]", "'summary' does not match '^root'"),
    ("suite-tool-call-typo", "suite.schema.json", SUITE + "      - tool_call: {name: a, args: {x: 1}}\n", "$.cases[0].expect[0].tool_call", "Additional properties are not allowed ('args' was unexpected)"),
    ("suite-tool-call-no-name", "suite.schema.json", SUITE + "      - tool_call: {arguments: {x: 1}}\n", "$.cases[0].expect[0].tool_call", "'name' is a required property"),
    ("suite-tool-call-list-item", "suite.schema.json", SUITE + "      - tool_call: [{name: a}, {name: b, mach: subset}]\n", "$.cases[0].expect[0].tool_call[1]", "Additional properties are not allowed ('mach' was unexpected)"),
    ("suite-tool-call-empty-list", "suite.schema.json", SUITE + "      - tool_call: []\n", "$.cases[0].expect[0].tool_call", "[] should be non-empty"),
    ("suite-tool-call-string", "suite.schema.json", SUITE + "      - tool_call: lookup_order\n", "$.cases[0].expect[0].tool_call", "'lookup_order' is not of type 'object', 'array'"),
    ("suite-tool-call-match", "suite.schema.json", SUITE + "      - tool_call: {name: a, match: fuzzy}\n", "$.cases[0].expect[0].tool_call.match", "'fuzzy' is not one of ['exact', 'subset', 'schema']"),
    ("suite-no-tool-call-false", "suite.schema.json", SUITE + "      - no_tool_call: false\n", "$.cases[0].expect[0].no_tool_call", "True was expected"),
    ("suite-judge-string", "suite.schema.json", SUITE + "      - judge: be polite\n", "$.cases[0].expect[0].judge", "'be polite' is not of type 'object'"),
    ("suite-judge-no-rubric", "suite.schema.json", SUITE + "      - judge: {provider: openai}\n", "$.cases[0].expect[0].judge", "'rubric' is a required property"),
    ("suite-similar-threshold", "suite.schema.json", SUITE + "      - similar: {text: hi, threshold: 80}\n", "$.cases[0].expect[0].similar.threshold", "80 is greater than the maximum of 1"),
    ("suite-latency-zero", "suite.schema.json", SUITE + "      - max_latency_ms: 0\n", "$.cases[0].expect[0].max_latency_ms", "0 is less than or equal to the minimum of 0"),
    ("suite-cost-string", "suite.schema.json", SUITE + "      - max_cost_usd: cheap\n", "$.cases[0].expect[0].max_cost_usd", "'cheap' is not of type 'number'"),
    ("suite-case-typo", "suite.schema.json", SUITE.replace("    input: hi\n", "    input: hi\n    provider: [openai]\n") + "      - contains: x\n", "$.cases[0]", "Additional properties are not allowed ('provider' was unexpected)"),
    ("suite-case-id", "suite.schema.json", SUITE.replace("id: c1", "id: 'case one'") + "      - contains: x\n", "$.cases[0].id", "'case one' does not match"),
    ("suite-case-no-expect", "suite.schema.json", "agent: support\ncases:\n  - id: c1\n    input: hi\n", "$.cases[0]", "'expect' is a required property"),
    ("suite-expect-mapping", "suite.schema.json", "agent: support\ncases:\n  - id: c1\n    input: hi\n    expect: {contains: x}\n", "$.cases[0].expect", "{'contains': 'x'} is not of type 'array'"),
    ("suite-message-role", "suite.schema.json", "agent: support\ncases:\n  - id: c1\n    input: [{role: bot, content: hi}]\n    expect: [{contains: x}]\n", "$.cases[0].input[0].role", "'bot' is not one of ['user', 'assistant', 'system', 'tool']"),
    ("suite-empty-input", "suite.schema.json", "agent: support\ncases:\n  - id: c1\n    input: ''\n    expect: [{contains: x}]\n", "$.cases[0].input", "'' should be non-empty"),
    ("suite-repeat-zero", "suite.schema.json", SUITE.replace("    input: hi\n", "    input: hi\n    repeat: 0\n") + "      - contains: x\n", "$.cases[0].repeat", "0 is less than the minimum of 1"),
    ("suite-missing-agent", "suite.schema.json", "cases: [{id: c1, input: hi, expect: [{contains: x}]}]\n", "$", "'agent' is a required property"),
    ("suite-provider-name", "suite.schema.json", "agent: support\nproviders: [OpenAI]\ncases: [{id: c1, input: hi, expect: [{contains: x}]}]\n", "$.providers[0]", "'OpenAI' does not match"),
    # validate --format json
    ("report-severity", "validate-report.schema.json", None, "$.findings[0].severity", "'fatal' is not one of ['error', 'warning']"),
    ("report-missing-hint", "validate-report.schema.json", None, "$.findings[0]", "'hint' is a required property"),
]
# fmt: on


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


def _negative_instance(case_id: str, instance: Any) -> Any:
    if instance is not None:
        return instance
    report = _sample_report()
    if case_id == "report-severity":
        report["findings"][0]["severity"] = "fatal"
    elif case_id == "report-missing-hint":
        del report["findings"][0]["hint"]
    return report


@pytest.mark.parametrize(
    ("schema", "instance", "json_path", "message"),
    [pytest.param(*row[1:], id=row[0]) for row in NEGATIVE],
)
def test_negative_snippet_gives_one_clear_error(
    request: pytest.FixtureRequest,
    schema: str,
    instance: Any,
    json_path: str,
    message: str,
    tmp_path: Path,
) -> None:
    case_id = request.node.callspec.id
    data = _negative_instance(case_id, instance)
    if isinstance(data, str):
        path = tmp_path / "snippet.yaml"
        path.write_text(data, encoding="utf-8")
        data = _load(path)
    error = best_match(validator(schema).iter_errors(data))
    assert error is not None, "expected a validation error"
    assert (error.json_path, message in error.message) == (json_path, True), error.message


def test_negative_table_covers_every_schema() -> None:
    assert {row[1] for row in NEGATIVE} == EXPECTED_SCHEMAS


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
