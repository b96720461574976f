"""Hostile input: validate must answer every one with exit 1 and a located message -- no
traceback, no hang, no memory blow-up, and nothing written anywhere. eval, which validates
first, must refuse the same files the same way.

The cases live in tests/data/hostile/ (see its README): each is run in a subprocess with a
timeout and an address-space cap, so a crash, a hang or a runaway allocation fails the test
instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from repoutil import BASE, write_repo

DATA = Path(__file__).parent / "data" / "hostile"
CASES = {p.stem: p for p in sorted(DATA.glob("*.yaml"))}
VALIDATE_MEMORY = 768 * 1024 * 1024  # address space: validate of the base repository needs ~300 MB
EVAL_MEMORY = 1536 * 1024 * 1024
TIMEOUT_S = 60

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
    assert all(f["line"] is not None for f in located)
    assert snapshot(tmp_path) == before, "validate wrote something"
    assert "sk-ant-api03" not in proc.stdout + proc.stderr


# --- the data-driven cases in tests/data/hostile/ ---------------------------------------------


def _text(value: Any) -> bytes:
    """A file of a case: bytes, text, or parts where [text, n] is text repeated n times ({i}
    and {i+1} in it become the repetition's number, from 0, and the next one)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    out: list[str] = []
    for part in value:
        if isinstance(part, str):
            out.append(part)
        else:
            text, times = part
            out.extend(
                text.replace("{i+1}", str(i + 1)).replace("{i}", str(i)) for i in range(times)
            )
    return "".join(out).encode()


def materialise(root: Path, name: str) -> dict[str, Any]:
    case: dict[str, Any] = yaml.safe_load(CASES[name].read_text(encoding="utf-8"))
    write_repo(root, dict(BASE))
    for rel, value in case["files"].items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_text(value))
    return case


def _capped(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_capped(
    root: Path, args: list[str], memory: int
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"},
        preexec_fn=_capped(memory),  # the child sets its own limit, nothing else
    )
    return proc, time.monotonic() - start


def assert_located(proc: subprocess.CompletedProcess[str], expect: dict[str, Any]) -> None:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output[-4000:]
    assert proc.returncode == expect["exit"], output[-4000:]
    where = f"{expect['path']}:{expect['line']}"
    lines = [line for line in output.splitlines() if where in line and expect["message"] in line]
    assert lines, f"no line naming {where} with {expect['message']!r} in:\n{output[-4000:]}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_validate_refuses_hostile_file(name: str, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    case = materialise(root, name)
    before = snapshot(tmp_path)
    proc, seconds = run_capped(root, ["validate"], VALIDATE_MEMORY)
    assert_located(proc, case["expect"])
    lines = [ln for ln in proc.stderr.splitlines() if f"{case['expect']['path']}:" in ln]
    assert any(" -- " in ln for ln in lines), "the finding says what to do: " + proc.stderr[-2000:]
    assert seconds < 20, f"validate took {seconds:.1f} s"
    assert snapshot(tmp_path) == before, "validate wrote something"


@pytest.mark.parametrize("name", sorted(CASES))
def test_eval_refuses_hostile_file_without_crashing(name: str, tmp_path: Path) -> None:
    root = tmp_path / "repo"
    case = materialise(root, name)
    proc, seconds = run_capped(root, ["eval", "--offline"], EVAL_MEMORY)
    assert_located(proc, case["expect"])
    assert "does not validate" in proc.stderr
    assert seconds < 30, f"eval took {seconds:.1f} s"


def _depth(text: str) -> int:
    depth = deepest = 0
    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            deepest = max(deepest, depth)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return deepest


@pytest.mark.parametrize(
    "text",
    [
        "- " * 300 + "x",  # compact block sequences, one line
        "? " * 200 + "x",  # compact complex keys
        "a:\n- b:\n  - c:\n    - d:\n      - e: [f, {g: [h]}]\n",  # indentless sequences
        "".join(f"{'  ' * i}k{i}:\n" for i in range(60)) + "  " * 60 + "v\n",
        "".join(f"{'  ' * i}- k{i}:\n" for i in range(60)) + "  " * 62 + "v\n",
        "[" * 150 + "]" * 150,
        "[a: " * 150 + "b" + "]" * 150,  # single-pair mappings in flow sequences
        "{a: " * 150 + "b" + "}" * 150,
        "x: " + "[? " * 100 + "k : v" + "]" * 100,
        "- - - [a: [b: {c: [d]}]]\n",
    ],
)
def test_nesting_bound_never_underestimates(text: str) -> None:
    """The cheap bound decides whether libyaml's recursive composer may see a text at all."""
    from pipeline.yamlsafe import nesting_bound

    assert nesting_bound(text) >= _depth(text)


@pytest.mark.parametrize(
    "name",
    [
        "yaml-nested-30000",
        "json-nested-30000",
        "yaml-recursive-alias",
        "ref-cycle-tool",
        "template-multiply",
    ],
)
def test_gate_release_and_diff_refuse_hostile_file_without_crashing(
    name: str, tmp_path: Path
) -> None:
    """A pull request that commits the file: gate, release and diff read it from git."""
    from gitutil import commit_all, git, init_repo

    root = init_repo(tmp_path / "repo")
    write_repo(root, dict(BASE))
    commit_all(root, "base")
    git(root, "switch", "-q", "-c", "hostile")
    case = materialise(root, name)
    commit_all(root, name)
    expect = case["expect"]
    proc, _ = run_capped(root, ["gate", "--base", "main", "--offline"], EVAL_MEMORY)
    assert_located(proc, expect)
    proc, _ = run_capped(root, ["release", "--dry-run"], EVAL_MEMORY)
    assert_located(proc, expect)
    proc, _ = run_capped(root, ["diff", "main"], EVAL_MEMORY)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and proc.returncode in (0, 1), output[-4000:]
    assert expect["path"] in output, output[-4000:]


# --- regular expressions run in linear time ----------------------------------------------------

CATASTROPHIC = [("(a+)+$", "a" * 28 + "!"), ("(a|aa)*c", "a" * 40), ("(x+x+)+y", "x" * 5000)]


@pytest.mark.parametrize(("pattern", "answer"), CATASTROPHIC)
def test_catastrophic_regexes_take_linear_time(pattern: str, answer: str) -> None:
    """With Python's backtracking re, (a+)+$ on 28 a's took 20 s and (a|aa)*c 45 s."""
    from pipeline.evals.assertions import Output, check_pure

    start = time.monotonic()
    result = check_pure({"regex": pattern}, Output(text=answer * 20))
    assert time.monotonic() - start < 0.5
    assert result.passed is False and result.error is False


def test_eval_with_a_catastrophic_regex_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalutil import KEYS, make_repo
    from fakeproviders import FakeProvider, Reply

    from pipeline.cli import main

    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    suite = "".join(
        f"    - id: r{i}\n      input: Hi\n      expect:\n        - regex: '{p}'\n"
        for i, (p, _) in enumerate(CATASTROPHIC)
    )
    with FakeProvider(responder=lambda wire, body: Reply(text="a" * 28 + "!")) as server:
        root = make_repo(
            tmp_path,
            server,
            suites={
                "evals/shop/smoke.yaml": f"agent: shop\nvars: {{customer: Bob}}\ncases:\n{suite}"
            },
        )
        assert main(["validate", "--repo", str(root)]) == 0
        start = time.monotonic()
        code = main(["eval", "--repo", str(root), "--suite", "smoke", "--provider", "openai"])
    assert code == 1, capsys.readouterr().err
    assert time.monotonic() - start < 10
    assert "no match for /(a+)+$/" in capsys.readouterr().err
