"""The JSON Schemas in schemas/, loaded the way knowngood loads them: every file of schemas/ in
one ``referencing.Registry`` keyed by ``$id``, so cross-file ``$ref``s resolve offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from pipeline.loading import load

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
SCHEMA_FILES = sorted(p.name for p in SCHEMAS.glob("*.schema.json"))
# The schemas of the files people write (the others describe what knowngood writes).
EXPECTED_SCHEMAS = {
    "agent.schema.json",
    "environment.schema.json",
    "knowngood.schema.json",
    "suite.schema.json",
    "tool.schema.json",
    "validate-report.schema.json",
}


def schema(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return data


REGISTRY: Registry[Any] = Registry().with_resources(
    (schema(name)["$id"], Resource.from_contents(schema(name))) for name in SCHEMA_FILES
)


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        schema(name),
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def load_data(path: Path) -> Any:
    """A YAML or JSON file's data, loaded the way knowngood loads it."""
    doc, findings = load(path, path.name)
    assert doc is not None, [f.render() for f in findings]
    return doc.data
