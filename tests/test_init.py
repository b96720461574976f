"""``knowngood init`` gives a new team the whole pipeline (issue 8, section 10): the example
agent and suites, the schemas, the project's own GitHub workflows (pinned actions), the install
script they run, a .gitignore, and a git repository -- and the result validates, evaluates on
the local model, and its workflows pass zizmor and the workflow schema check."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from gitutil import commit_all, git, init_repo
from runtimeutil import Serve, http

from pipeline import __version__
from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROJECT_WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
WORKFLOWS = {
    "pull-request.yml",
    "main.yml",
    "revert-command.yml",
    "rollback.yml",
    "drill.yml",
    "report.yml",
}


def scaffold(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, str]:
    target = tmp_path / "my-agents"
    assert main(["init", str(target)]) == 0
    return target, capsys.readouterr().err


def test_init_writes_the_project_workflows_an_install_script_and_a_git_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, err = scaffold(tmp_path, capsys)
    # the project's own workflows, byte for byte: one source, so they cannot drift apart
    written = {p.name for p in (target / ".github" / "workflows").iterdir()}
    assert written == {p.name for p in PROJECT_WORKFLOWS.glob("*.yml")}
    assert written >= WORKFLOWS
    for name in written:
        ours = (target / ".github" / "workflows" / name).read_bytes()
        assert ours == (PROJECT_WORKFLOWS / name).read_bytes(), name
    # every action pinned to a commit SHA
    for name in written:
        text = (target / ".github" / "workflows" / name).read_text()
        for uses in re.findall(r"uses:\s*(\S+)", text):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", uses), (name, uses)
    # what the workflows run: .ci/install (executable), the pinned knowngood, the model by hash
    install = target / ".ci" / "install"
    assert os.access(install, os.X_OK)
    subprocess.run(["bash", "-n", str(install)], check=True)
    lock = (target / ".ci" / "requirements.lock").read_text()
    assert f"knowngood[local]=={__version__}" in lock
    assert (target / ".ci" / "model.lock").read_bytes() == (
        ROOT / ".ci" / "model.lock"
    ).read_bytes()
    ignored = (target / ".gitignore").read_text().splitlines()
    assert ".knowngood/" in ignored and ".venv/" in ignored
    # a git repository on the main branch, with nothing committed for the user
    assert (target / ".git").is_dir()
    assert git(target, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert "wrote .github/workflows/main.yml" in err
    assert "initialised a git repository" in err and "git commit" in err
    assert "a GitHub workflow" not in err
    # and it is a valid knowngood repository, with the workflows ignored by nothing
    assert git(target, "status", "--porcelain", "--", ".github", ".ci").count("??") >= 2
    assert main(["validate", "--repo", str(target)]) == 0


def test_the_lock_pins_the_git_commit_knowngood_was_installed_from() -> None:
    """pip's record of a ``git+https`` install (PEP 610) becomes that commit, so a repository
    made by a knowngood from GitHub installs the same one; a local or editable install (a file
    URL, not reachable from CI) or a registry's pins the version."""
    from pipeline.scaffold import requirements_lock

    sha = "3f2a" * 10
    from_git = {
        "url": "https://github.com/acme/knowngood.git",
        "vcs_info": {"vcs": "git", "commit_id": sha, "requested_revision": "main"},
    }
    wanted = f"knowngood[local] @ git+https://github.com/acme/knowngood.git@{sha}"
    assert requirements_lock(from_git).splitlines()[-1] == wanted
    editable = {"url": "file:///work/knowngood", "dir_info": {"editable": True}}
    pinned = f"knowngood[local]=={__version__}"
    assert requirements_lock(editable).splitlines()[-1] == pinned
    assert requirements_lock({}).splitlines()[-1] == pinned


def test_init_inside_a_git_repository_adds_no_nested_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = init_repo(tmp_path / "mono")
    (top / "README.md").write_text("a monorepo\n")
    commit_all(top, "start")
    assert main(["init", str(top / "agents-config")]) == 0
    err = capsys.readouterr().err
    assert not (top / "agents-config" / ".git").exists()
    assert "initialised a git repository" not in err
    # GitHub reads workflows only at the top: say where they must go
    assert f"{top}/.github/workflows" in err and "--repo agents-config" in err


def test_init_format_json_says_what_it_wrote_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    top = init_repo(tmp_path / "mono")
    assert main(["init", str(top / "agents"), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["root"] == str(top / "agents")
    assert document["git_init"] is False and document["git_top"] == str(top.resolve())
    assert "knowngood.yaml" in document["written"]
    assert all((top / "agents" / rel).is_file() for rel in document["written"])
    assert err == ""


def test_init_sets_what_readiness_asks_of_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Circuit breakers, owner and escalation: a new repository shows good practice; what
    readiness still finds missing is measured (drills, releases, backups), not configured."""
    root = tmp_path / "fresh"
    assert main(["init", str(root)]) == 0
    commit_all(root, "knowngood init")
    capsys.readouterr()
    main(["readiness", "--repo", str(root), "--no-fetch", "--format", "json"])
    items = {i["id"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    assert items["breakers"]["passed"] and items["contacts"]["passed"]


def test_init_workflows_pass_zizmor_and_the_workflow_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, _ = scaffold(tmp_path, capsys)
    workflows = sorted(str(p) for p in (target / ".github" / "workflows").glob("*.yml"))
    assert len(workflows) == len(WORKFLOWS)
    zizmor = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--no-progress", str(target / ".github" / "workflows")],
        capture_output=True,
        text=True,
        cwd=target,
    )
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    schema = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        capture_output=True,
        text=True,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed: pip install -e '.[local]' (or .ci/install)",
)
def test_a_new_repository_from_init_evaluates_and_serves_on_the_local_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, _ = scaffold(tmp_path, capsys)
    commit_all(target, "knowngood init")
    assert main(["validate", "--repo", str(target)]) == 0
    results = tmp_path / "results.json"
    code = main(["eval", "--repo", str(target), "--output", str(results)])
    err = capsys.readouterr().err
    assert code == 0, err

    data = json.loads(results.read_text())
    assert {c["provider"] for c in data["cases"]} == {"local"}
    assert {c["status"] for c in data["cases"]} == {"pass"}

    # what init says next: release, deploy and serve it, still with no key
    assert main(["release", "--repo", str(target)]) == 0
    assert main(["deploy", "--released", "--repo", str(target)]) == 0
    server = Serve(target, env={"OPENAI_API_KEY": ""}).start(timeout_s=120)
    try:
        body = {
            "model": "assistant",
            "messages": [{"role": "user", "content": "When are you open?"}],
        }
        answer = http(f"{server.url}/v1/chat/completions", body, timeout_s=120)
    finally:
        server.stop()
    assert answer.status == 200, answer.body
    assert answer.headers["x-knowngood-provider"] == "local"
