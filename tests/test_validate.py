"""`knowngood validate`, data-driven: a valid base repository and a table of broken variants.

Each case in tests/data/validate/cases.yaml overlays files on base.yaml and states the exit code
and the findings (file, line, rule, message) validate must report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from repoutil import BASE, DATA, run_validate, write_repo

from pipeline.cli import main

CASES: list[dict[str, Any]] = yaml.safe_load((DATA / "cases.yaml").read_text())


def materialise(root: Path, case: dict[str, Any]) -> Path:
    files: dict[str, str | None] = dict(BASE)
    files.update(case.get("files") or {})
    for key, (old, new) in (case.get("patch") or {}).items():
        rel = key.split("#")[0]
        text = files[rel]
        assert text is not None and old in text, f"{case['id']}: {old!r} not in {rel}"
        files[rel] = text.replace(old, new, 1)
    write_repo(root, files)
    for rel, target in (case.get("symlinks") or {}).items():
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
    return root


def test_base_repository_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_repo(tmp_path, dict(BASE))
    code, report = run_validate(root, capsys)
    assert report["findings"] == []
    assert code == 0
    assert report["ok"] is True
    assert report["files_checked"] >= 8


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_negative_case(
    case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = materialise(tmp_path / "repo", case)
    expect = case["expect"]
    code, report = run_validate(root, capsys)
    findings = report["findings"]
    assert code == expect["exit"], json.dumps(findings, indent=1)
    for wanted in expect["findings"]:
        matches = [f for f in findings if all(_matches(f, k, v) for k, v in wanted.items())]
        assert matches, f"no finding like {wanted} in:\n" + "\n".join(
            f"{f['path']}:{f['line']}: {f['json_path']}: {f['message']} [{f['rule']}, {f['provider']}]"
            for f in findings
        )
    if "strict_exit" in expect:
        strict_code, _ = run_validate(root, capsys, "--strict")
        assert strict_code == expect["strict_exit"]
    if "secret" in expect:
        assert expect["secret"] not in json.dumps(report)


def _matches(finding: dict[str, Any], key: str, value: Any) -> bool:
    if key in ("message", "hint"):
        return value in (finding.get(key) or "")
    if key == "provider":  # one finding may name several providers that share a rule
        return value in (finding.get(key) or "").split(", ")
    return bool(finding.get(key) == value)


def test_findings_are_sorted_by_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in CASES if c["id"] == "unknown-provider")
    root = materialise(tmp_path, case)
    (root / "evals/shop/pr.yaml").write_text(
        "agent: shop\ncases:\n  - id: x\n    input: 1\n    expect: []\n"
    )
    _, report = run_validate(root, capsys)
    keys = [(f["path"], f["line"] or 0) for f in report["findings"]]
    assert keys == sorted(keys)


def test_knowngood_yaml_findings_come_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every file depends on knowngood.yaml: its errors explain the others', so they lead."""
    case = next(c for c in CASES if c["id"] == "providers-key-misspelt")
    root = materialise(tmp_path, case)
    assert main(["validate", "--repo", str(root)]) == 1
    lines = capsys.readouterr().err.splitlines()
    findings = [line for line in lines if ": error: " in line]
    assert findings[0].startswith("knowngood.yaml:")
    assert "unknown key 'provders' -- did you mean 'providers'?" in "".join(findings[:2])
    rest = [line for line in findings if not line.startswith("knowngood.yaml:")]
    assert rest[0].startswith("agents/shop/agent.yaml:4:")
    for line in rest:  # not "(providers: none) ... or use one of: none"
        assert "knowngood.yaml has no readable `providers`" in line and "none" not in line


def test_every_finding_is_reported_not_just_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = dict(BASE)
    files["agents/shop/agent.yaml"] = files["agents/shop/agent.yaml"].replace(
        "fallbacks: [openai]", "fallbacks: [nope]"
    )
    files["evals/shop/pr.yaml"] = files["evals/shop/pr.yaml"].replace(
        "- icontains: acme", "- containz: acme"
    )
    root = write_repo(tmp_path, files)
    code, report = run_validate(root, capsys)
    assert code == 1
    rules = {f["rule"] for f in report["findings"]}
    assert {"ref.unknown-provider", "schema"} <= rules


def test_paths_limit_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = dict(BASE)
    files["evals/shop/pr.yaml"] = files["evals/shop/pr.yaml"].replace(
        "- icontains: acme", "- containz: acme"
    )
    root = write_repo(tmp_path, files)
    code, report = run_validate(root, capsys, str(root / "agents" / "shop" / "tools"))
    assert code == 0 and report["findings"] == []
    code, report = run_validate(root, capsys, str(root / "evals"))
    assert code == 1 and report["findings"]


def test_text_format_is_path_line_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in CASES if c["id"] == "typo-key-in-agent")
    root = materialise(tmp_path, case)
    code = main(["validate", "--repo", str(root)])
    err = capsys.readouterr().err
    assert code == 1
    assert (
        "agents/shop/agent.yaml:4:1: error: $.promt: unknown key 'promt' -- did you mean 'prompt'?"
        in err
    )
    assert "3 errors, 0 warnings" in err


def test_github_format_emits_annotations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = next(c for c in CASES if c["id"] == "typo-key-in-agent")
    root = materialise(tmp_path, case)
    code = main(["validate", "--repo", str(root), "--format", "github"])
    out = capsys.readouterr().out
    assert code == 1
    assert "::error title=knowngood schema,file=agents/shop/agent.yaml,line=4,col=1::" in out


def test_not_a_repository_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", "--repo", str(tmp_path)])
    assert code == 2
    assert "not a knowngood repository" in capsys.readouterr().err


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--format", "yaml"]) == 2


def test_the_shipped_examples_validate(repo_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_validate(repo_root, capsys)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert errors == [] and code == 0


def test_python_dash_m_and_no_litellm_import(tmp_path: Path) -> None:
    """`python -m pipeline validate` works and never imports litellm (it takes seconds)."""
    root = write_repo(tmp_path, dict(BASE))
    code = (
        f"import sys, runpy; sys.argv = ['knowngood', 'validate', '--repo', {str(root)!r}];\n"
        "try:\n    runpy.run_module('pipeline', run_name='__main__')\n"
        "except SystemExit as e:\n    assert e.code == 0, e.code\n"
        "assert 'litellm' not in sys.modules, 'validate imported litellm'\n"
        "assert 'dbos' not in sys.modules, 'validate imported the durable engine'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ}
    )
    assert proc.returncode == 0, proc.stderr


def test_cache_files_tracked_by_git_are_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`git add -f .knowngood/cache`: each committed file is named, with how to untrack it."""
    from gitutil import commit_all, git, init_repo

    root = write_repo(init_repo(tmp_path / "repo"), {**BASE, ".gitignore": ".knowngood/\n"})
    forged = [f".knowngood/cache/v1/{k[:2]}/{k}.json" for k in ("ab" * 32, "cd" * 32)]
    for rel in forged:
        write_repo(root, {rel: '{"key": "x", "value": {"text": "forged"}}'})
    write_repo(root, {".knowngood/cache/v1/ef/untracked.json": "{}"})  # a real cache: fine
    commit_all(root, "agents")
    code, report = run_validate(root, capsys)
    assert code == 0 and report["findings"] == []  # ignored files are not tracked
    git(root, "add", "-f", "--", *forged)
    git(root, "commit", "-q", "-m", "forged answers")
    code, report = run_validate(root, capsys)
    assert code == 1
    found = [f for f in report["findings"] if f["rule"] == "cache.tracked"]
    assert sorted(f["path"] for f in found) == sorted(forged)
    assert all(f["severity"] == "error" for f in found)
    assert "git rm -r --cached -- .knowngood/cache" in found[0]["hint"]
    git(root, "rm", "-r", "-q", "--cached", "--", ".knowngood/cache")  # what the hint says
    code, report = run_validate(root, capsys)
    assert code == 0 and report["findings"] == []
