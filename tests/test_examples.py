"""The schemas against their example files: tests/examples/<schema>/{positive,negative}/.

Each positive file validates without a single error; each negative file fails with one clear
error, the ``best_match`` its first line names (``# expect: <json path>: <message part>``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema.exceptions import best_match
from schemautil import EXPECTED_SCHEMAS, load_data, validator

EXAMPLES = Path(__file__).resolve().parent / "examples"
EXPECT = "# expect: "


def examples(kind: str) -> list[pytest.ParameterSet]:
    return [
        pytest.param(path, id=f"{path.parent.parent.name}/{path.name}")
        for path in sorted(EXAMPLES.glob(f"*/{kind}/*"))
    ]


def schema_of(path: Path) -> str:
    return f"{path.parent.parent.name}.schema.json"


def expected(path: Path) -> tuple[str, str]:
    """(json path, message part) from the file's first line."""
    first = path.read_text(encoding="utf-8").partition("\n")[0]
    assert first.startswith(EXPECT), f"{path}:1: a negative example starts with {EXPECT!r}"
    json_path, _, message = first.removeprefix(EXPECT).partition(": ")
    return json_path, message


@pytest.mark.parametrize("path", examples("positive"))
def test_positive_example_validates(path: Path) -> None:
    errors = [e.message for e in validator(schema_of(path)).iter_errors(load_data(path))]
    assert errors == []


@pytest.mark.parametrize("path", examples("negative"))
def test_negative_example_gives_one_clear_error(path: Path) -> None:
    json_path, message = expected(path)
    error = best_match(validator(schema_of(path)).iter_errors(load_data(path)))
    assert error is not None, "expected a validation error"
    assert (error.json_path, message in error.message) == (json_path, True), error.message


def test_examples_cover_every_schema_both_ways() -> None:
    for kind in ("positive", "negative"):
        covered = {schema_of(p) for p in EXAMPLES.glob(f"*/{kind}/*")}
        assert covered == EXPECTED_SCHEMAS, kind


def test_every_example_folder_names_a_schema() -> None:
    folders = {f"{p.name}.schema.json" for p in EXAMPLES.iterdir() if p.is_dir()}
    assert folders <= EXPECTED_SCHEMAS
