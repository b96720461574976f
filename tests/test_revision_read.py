"""Every command says which revision it read; a dirty tree gets one warning line; commands that
act on commits read committed files only, knowngood.yaml included (issue 8, section 9)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployutil import AGENT, KEYS, make_world
from deployutil import responder as deploy_responder
from fakeproviders import FakeProvider
from gateutil import Project, gate
from gateutil import responder as gate_responder
from gitutil import commit_all, copy_example, git
from repoutil import edit, make_repo

from pipeline.cli import main

PROMPT = "agents/shop/prompts/system.md"


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


def warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("knowngood: warning:")]


def test_diff_and_release_name_the_revisions_and_warn_once_about_uncommitted_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    sha = head(root)[:10]
    assert main(["diff", "main", "--repo", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"knowngood: read revisions {sha} (main) and {sha} (main)" in err
    assert warnings(err) == []

    edit(root, PROMPT, "You work for", "You now work for")  # uncommitted
    (root / "agents" / "shop" / "tools" / "new.json").write_text("{}\n")  # untracked
    assert main(["diff", "main", "--repo", str(root), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["agents"] == {}  # the uncommitted change is not part of HEAD
    assert warnings(err) == [
        "knowngood: warning: 2 uncommitted changes were not read (only committed files count; "
        f"commit them to include them): {PROMPT}, agents/shop/tools/new.json"
    ]
    assert main(["release", "--dry-run", "--repo", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"knowngood: read revision {sha} (main)\n" in err
    assert len(warnings(err)) == 1 and "2 uncommitted changes were not read" in err


def test_validate_and_eval_read_the_working_tree_and_say_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    sha = head(root)[:10]
    edit(root, PROMPT, "You work for", "You now work for")
    assert main(["validate", "--repo", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"knowngood: read the working tree of {sha} (main)" in err
    assert warnings(err) == [
        f"knowngood: warning: the results include 1 uncommitted change (not in any commit): {PROMPT}"
    ]
    git(root, "checkout", "-q", "--detach")
    git(root, "checkout", "-q", "--", ".")
    assert main(["validate", "--repo", str(root)]) == 0
    err = capsys.readouterr().err
    assert f"knowngood: read the working tree of {sha} (detached HEAD)" in err
    assert warnings(err) == []

    plain = copy_example(tmp_path / "no-git", agents=("support",))
    assert main(["validate", "--repo", str(plain)]) == 0
    assert "knowngood: read the working tree (no git commit)" in capsys.readouterr().err


@pytest.fixture
def gate_server() -> Iterator[FakeProvider]:
    with FakeProvider(responder=gate_responder) as srv:
        yield srv


def test_gate_evaluates_the_commit_it_names_not_uncommitted_changes(
    tmp_path: Path,
    gate_server: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["OPENAI_API_KEY"])
    p = Project(tmp_path, gate_server)
    p.edit(PROMPT, "You are talking to", "Be kind. You are talking to")  # harmless, committed
    commit = p.commit("kinder")
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    code, data, _, err = gate(p, capsys)
    assert code == 0, err  # the committed change breaks nothing; the uncommitted one is not read
    assert data["head"]["commit"] == commit
    assert "Bobco" not in json.dumps(data)
    assert f"knowngood: read revisions {p.base[:10]} (main) and {commit[:10]} (feature)" in err
    assert warnings(err) == [
        "knowngood: warning: 1 uncommitted change was not read (only committed files count; "
        "commit them to include them): agents/shop/agent.yaml"
    ]


@pytest.fixture
def deploy_server() -> Iterator[FakeProvider]:
    with FakeProvider(responder=deploy_responder) as srv:
        yield srv


def test_deploy_reads_its_settings_as_committed_at_head(
    tmp_path: Path,
    deploy_server: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    world = make_world(tmp_path, deploy_server)  # released shop/v0.1.0
    release_commit = head(world.repo)
    elsewhere = tmp_path / "uncommitted-target"
    config = world.repo / "knowngood.yaml"
    committed = config.read_text()
    config.write_text(committed.replace(str(world.target), str(elsewhere)))  # not committed
    assert main(["deploy", AGENT, "--repo", str(world.repo)]) == 0
    err = capsys.readouterr().err
    assert world.current()["release"] == "shop/v0.1.0"
    assert not elsewhere.exists()
    assert f"knowngood: read revision {release_commit[:10]} (shop/v0.1.0)" in err
    assert warnings(err) == [
        "knowngood: warning: 1 uncommitted change was not read (only committed files count; "
        "commit them to include them): knowngood.yaml"
    ]

    # committed after the release: the environment now lives there, for deploy as for rollback
    # and status (HEAD's committed settings), whichever release is deployed
    moved = tmp_path / "moved-target"
    config.write_text(committed.replace(str(world.target), str(moved)))
    commit_all(world.repo, "move the deploy target")
    assert main(["deploy", AGENT, "--repo", str(world.repo), "--env", "staging"]) == 0
    capsys.readouterr()
    assert (moved / "staging" / AGENT / "current.json").is_file()
    assert not (world.target / "staging").exists()


def test_status_check_and_rollback_read_committed_settings(
    tmp_path: Path,
    deploy_server: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    world = make_world(tmp_path, deploy_server)
    assert main(["deploy", AGENT, "--repo", str(world.repo)]) == 0
    capsys.readouterr()
    config = world.repo / "knowngood.yaml"
    committed = config.read_text()
    config.write_text(
        committed.replace(
            "environments: [staging, production]", "environments: [staging, production, moon]"
        )
    )
    sha = head(world.repo)[:10]
    assert main(["status", AGENT, "--repo", str(world.repo), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    envs = [e["env"] for e in json.loads(out)["agents"][0]["environments"]]
    assert envs == ["staging", "production"]  # the uncommitted "moon" is not read
    assert f"knowngood: read revision {sha} (main)" in err and len(warnings(err)) == 1

    config.write_text("version: [1\n")  # an uncommitted, broken edit changes nothing either
    for args in (["check", AGENT], ["history", AGENT], ["rollback", AGENT, "--to", "v0.1.0"]):
        code = main([*args, "--repo", str(world.repo)])
        err = capsys.readouterr().err
        assert code == 0, (args, err)
        assert f"knowngood: read revision {sha} (main)" in err
        assert "uncommitted change was not read" in err
