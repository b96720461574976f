"""Hostile input: validate must answer every one with exit 1 and a located message -- no
traceback, no hang, and nothing written anywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_validate import BASE, write_repo

BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


def _write(rel: str, data: bytes) -> Callable[[Path], str]:
    def apply(root: Path) -> str:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    return apply


def _symlink(rel: str, target: str) -> Callable[[Path], str]:
    def apply(root: Path) -> str:
        (root / rel).unlink(missing_ok=True)
        (root / rel).symlink_to(target)
        return "agents/shop/agent.yaml"  # the reference to it is what gets reported

    return apply


HOSTILE: dict[str, tuple[Callable[[Path], str], str]] = {
    "malformed-yaml": (
        _write("evals/shop/smoke.yaml", b"agent: shop\ncases: [\n  - id: x\n"),
        "invalid YAML",
    ),
    "malformed-json": (
        _write("agents/shop/tools/lookup.json", b'{"name": "lookup_order",,}'),
        "invalid JSON",
    ),
    "duplicate-keys": (
        _write("evals/shop/smoke.yaml", b"agent: shop\ncases: []\ncases: []\n"),
        "duplicate key 'cases'",
    ),
    "wrong-types": (_write("evals/shop/smoke.yaml", b"agent: 42\ncases: {id: x}\n"), "expected"),
    "top-level-list": (_write("evals/shop/smoke.yaml", b"- agent: shop\n"), "expected a mapping"),
    "path-traversal": (
        _write(
            "agents/shop/agent.yaml",
            BASE["agents/shop/agent.yaml"]
            .replace("tools/lookup.json", "../../../../etc/passwd")
            .encode(),
        ),
        "resolves outside the agent folder",
    ),
    "symlink-escape": (
        _symlink("agents/shop/tools/lookup.json", "/etc/hostname"),
        "resolves outside the agent folder",
    ),
    "ten-megabyte-file": (
        _write("agents/shop/tools/lookup.json", b"{" + b" " * (10 * 1024 * 1024) + b"}"),
        "over the",
    ),
    "alias-bomb": (_write("evals/shop/smoke.yaml", BOMB.encode()), "alias"),
    "binary-file": (
        _write("agents/shop/tools/refund.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
        "binary",
    ),
    "non-utf8": (
        _write("agents/shop/prompts/system.md", "Caf\u00e9 {{ company }}".encode("latin-1")),
        "not valid UTF-8",
    ),
    "empty-file": (_write("evals/shop/smoke.yaml", b""), "empty"),
    "comments-only": (_write("agents/shop/environments/production.yaml", b"# nothing\n"), "empty"),
    "deep-nesting": (
        _write("agents/shop/tools/lookup.json", b"[" * 100_000 + b"]" * 100_000),
        "JSON",
    ),
    "key-in-prompt": (
        _write(
            "agents/shop/prompts/system.md",
            b"{{ company }} {{ customer }}\nkey: sk-ant-api03-Zq8XwV2nR5tL9pK3mJ7hG1fD4sA6yU0iO2eW8rT5yQ1uI3oP7aS9dF2gH4jK6lZ8x-AbCdEfAA\n",  # knowngood: allow-secret
        ),
        "Anthropic",
    ),
}


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime)
    return out


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_is_a_located_finding(name: str, tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", dict(BASE))
    apply, fragment = HOSTILE[name]
    rel = apply(root)
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", "validate", "--format", "json"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    located = [f for f in report["findings"] if f["path"] == rel and fragment in f["message"]]
    assert located, json.dumps(report["findings"], indent=1)
    assert all(f["line"] is not None for f in located if f["rule"] not in ("file.too-large",))
    assert snapshot(tmp_path) == before, "validate wrote something"
    assert "sk-ant-api03" not in proc.stdout + proc.stderr
