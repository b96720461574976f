"""The parse cache: a large YAML file's data kept as JSON outside the checkout, by content, and
only when it stands for the data exactly and holds no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline import parsecache
from pipeline.loading import load

SECRET = "sk-parsecache-0123456789abcdef"  # knowngood: allow-secret


def suite(cases: int = 400, extra: str = "") -> str:
    body = "".join(
        f'  - id: case-{i}\n    input: "question {i}: what is {i} + 1?"\n'
        f"    expect:\n      - contains: '{i + 1}'\n      - regex: '^\\d+$'\n"
        for i in range(cases)
    )
    return f"agent: shop\nvars: {{x: 1.5, flag: true, none: null}}\n{extra}cases:\n{body}"


def entries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "parsed"
    monkeypatch.setenv("KNOWNGOOD_PARSE_CACHE", str(root))
    return root


def parse(path: Path) -> Any:
    doc, found = load(path, path.name)
    assert doc is not None, found
    return doc.data


def test_a_large_file_is_parsed_once_and_read_back_the_same(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(suite())
    assert len(path.read_bytes()) >= parsecache.MIN_BYTES
    first = parse(path)
    [entry] = entries(cache)
    assert json.loads(entry.read_text()) == first
    # what a hit returns is the entry: shown by giving the entry other data
    entry.write_text(json.dumps({"agent": "from-the-entry"}))
    assert parse(path) == {"agent": "from-the-entry"}
    # any edit to the file is another key: parsed afresh, its own entry
    path.write_text(suite().replace("question 7:", "question seven:"))
    second = parse(path)
    assert second["cases"][7]["input"].startswith("question seven")
    assert len(entries(cache)) == 2


def test_small_files_and_inexact_data_are_not_kept(tmp_path: Path, cache: Path) -> None:
    small = tmp_path / "small.yaml"
    small.write_text("agent: shop\ncases: []\n")
    parse(small)
    aliases = tmp_path / "aliases.yaml"
    aliases.write_text(suite(extra="common: &c {a: 1}\nagain: *c\n"))
    parse(aliases)
    int_keys = tmp_path / "int_keys.yaml"
    int_keys.write_text(suite(extra="table: {1: one, 2: two}\n"))
    assert parse(int_keys)["table"] == {1: "one", 2: "two"}
    infinite = tmp_path / "infinite.yaml"
    infinite.write_text(suite(extra="limit: .inf\n"))
    parse(infinite)
    assert entries(cache) == []
    assert parse(int_keys)["table"] == {1: "one", 2: "two"}  # still right, parsed again


def test_a_file_holding_a_secret_is_never_copied_out(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import redaction

    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    path = tmp_path / "suite.yaml"
    path.write_text(suite(extra=f"note: {SECRET}\n"))
    before = redaction.redactions()
    assert parse(path)["note"] == SECRET
    assert entries(cache) == []
    assert redaction.redactions() == before  # nothing was "redacted from output"


def test_off_and_an_unwritable_folder_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(suite())
    monkeypatch.setenv("KNOWNGOOD_PARSE_CACHE", "off")
    assert parsecache.folder() is None
    expected = parse(path)
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the folder would be")
    monkeypatch.setenv("KNOWNGOOD_PARSE_CACHE", str(blocked))
    assert parse(path) == expected  # written nowhere, no error
    assert parse(path) == expected


def test_the_default_folder_is_the_users_cache_outside_any_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KNOWNGOOD_PARSE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert parsecache.folder() == tmp_path / "xdg" / "knowngood" / "parsed"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert parsecache.folder() == Path(os.environ["HOME"]) / ".cache" / "knowngood" / "parsed"


def test_concurrent_writers_leave_one_whole_entry(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(suite(2000))
    script = (
        "import sys\nfrom pathlib import Path\nfrom pipeline.loading import load\n"
        "doc, _ = load(Path(sys.argv[1]), 'suite.yaml')\nprint(len(doc.data['cases']))\n"
    )
    env = {**os.environ, "KNOWNGOOD_PARSE_CACHE": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    assert [p.communicate(timeout=60)[0].strip() for p in procs] == ["2000"] * 4
    [entry] = entries(cache)
    assert len(json.loads(entry.read_text())["cases"]) == 2000
    assert not [p for p in cache.rglob("*") if p.name.endswith(".tmp")]
