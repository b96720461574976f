"""The compiled fast path for schema validation must mean exactly what jsonschema means."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import schemas

DATA = Path(__file__).parent / "data" / "validate"


def keywords(schema: Any, found: set[str]) -> set[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            if key in ("properties", "$defs", "patternProperties"):
                for sub in value.values():
                    keywords(sub, found)
            elif key not in (
                "examples",
                "enum",
                "const",
                "default",
                "required",
                "title",
                "description",
            ):
                keywords(value, found)
    elif isinstance(schema, list):
        for item in schema:
            keywords(item, found)
    return found


@pytest.mark.parametrize("name", schemas.FAST_SCHEMAS)
def test_fast_schemas_use_only_draft7_keywords(name: str) -> None:
    schema = json.loads((schemas.schemas_dir() / f"{name}.schema.json").read_text())
    unknown = keywords(schema, set()) - schemas.DRAFT7_KEYWORDS
    assert not unknown, f"{name}: fastjsonschema (draft-07) would ignore {sorted(unknown)}"


def test_compiled_validators_are_up_to_date() -> None:
    from pipeline import _compiled_schemas

    assert schemas.schema_set_hash() == _compiled_schemas.SCHEMA_HASH, (
        "schemas/ changed: run `python -m pipeline.schemas` to regenerate pipeline/_compiled_schemas.py"
    )


def documents() -> list[tuple[str, Any]]:
    """Every YAML/JSON document of the validate test corpus and the shipped examples, by schema."""
    root = Path(__file__).resolve().parent.parent
    out: list[tuple[str, Any]] = []
    texts = dict(yaml.safe_load((DATA / "base.yaml").read_text()))
    for case in yaml.safe_load((DATA / "cases.yaml").read_text()):
        for rel, text in (case.get("files") or {}).items():
            if text:
                texts[f"{case['id']}:{rel}"] = text
    for path in [
        *root.glob("agents/*/agent.yaml"),
        *root.glob("agents/*/tools/*"),
        *root.glob("agents/*/environments/*.yaml"),
        *root.glob("evals/*/*.yaml"),
        root / "knowngood.yaml",
    ]:
        texts[str(path)] = path.read_text()
    for key, text in texts.items():
        rel = key.split(":")[-1]
        kind = (
            "knowngood"
            if rel.endswith("knowngood.yaml")
            else "agent"
            if rel.endswith("agent.yaml")
            else "environment"
            if "/environments/" in rel
            else "tool"
            if "/tools/" in rel
            else "suite"
            if rel.startswith("evals/") or "/evals/" in rel
            else None
        )
        if kind is None:
            continue
        try:
            data = json.loads(text) if rel.endswith(".json") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            continue
        out.append((kind, data))
    return out


def test_fast_path_agrees_with_jsonschema() -> None:
    docs = documents()
    assert len(docs) >= 25
    for kind, data in docs:
        assert schemas.is_valid(kind, data) == schemas.validator(kind).is_valid(data), (kind, data)


def test_fast_path_never_changes_the_data() -> None:
    """fastjsonschema fills in `default`s unless told not to: validation must not mutate."""
    import copy

    for kind, data in documents():
        before = copy.deepcopy(data)
        schemas.is_valid(kind, data)
        assert data == before, kind


def test_fast_path_agrees_with_jsonschema_on_bundles(tmp_path: Path) -> None:
    """Bundles of the shipped agents, and broken copies of one: both paths say the same."""
    import copy
    import shutil

    from gitutil import commit_all, init_repo

    from pipeline.bundle import build_bundle
    from pipeline.git import Git

    root = Path(__file__).resolve().parent.parent
    repo = init_repo(tmp_path / "repo")
    for part in ("knowngood.yaml", "agents", "evals", "schemas"):
        source = root / part
        if source.is_dir():
            shutil.copytree(source, repo / part)
        else:
            shutil.copy(source, repo / part)
    commit_all(repo, "examples")
    bundles = [
        build_bundle(Git(repo), repo, agent.name, "HEAD", "production")
        for agent in sorted((repo / "agents").iterdir())
    ]
    broken: list[Any] = []
    for change in (
        lambda b: b.pop("model_chain"),
        lambda b: b["model_chain"][0].update(serve="llama-70b"),
        lambda b: b["model_chain"][0].update(api_key="sk-oops"),  # knowngood: allow-secret
        lambda b: b["model_chain"][0].update(params="hot"),
        lambda b: b.update(content_hash="not a hash"),
        lambda b: b.update(tools={"name": "x"}),
        lambda b: b.update(version="1"),
    ):
        bad = copy.deepcopy(bundles[0])
        change(bad)
        broken.append(bad)
    assert len(bundles) >= 3
    for bundle in [*bundles, *broken]:
        assert schemas.is_valid("bundle", bundle) == schemas.validator("bundle").is_valid(bundle)
    assert all(schemas.is_valid("bundle", b) for b in bundles)
    assert not any(schemas.is_valid("bundle", b) for b in broken)
