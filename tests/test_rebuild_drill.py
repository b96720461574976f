"""``knowngood drill rebuild``: the runtime rebuilt in a fresh scratch directory from the remote
and the latest backup alone (clone, the repository's real .ci/install, restore, deploy the last
known good release, serve, one answer), each stage timed and recorded. Slow: it installs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from backuputil import add_turns, make_store
from deployutil import KEYS, World, kg, make_world, responder
from fakeproviders import FakeProvider
from gitutil import git

from pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent
# Read before the tests' isolated HOME replaces it: the machine's llama.cpp wheel cache.
WHEELS = sorted(
    (
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "knowngood" / "wheels"
    ).glob("*/llama_cpp_python-*.whl")
)


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider(responder=responder) as srv:
        yield srv


@pytest.fixture
def world(tmp_path: Path, server: FakeProvider, monkeypatch: pytest.MonkeyPatch) -> World:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    # serve wants a key: the drill's serve in the rebuilt copy too, and the drill sends it
    monkeypatch.setenv("KG_REBUILD_SERVE_KEYS", "kg-rebuild-5c1e9a7f3b")  # knowngood: allow-secret
    block = (
        "runtime:\n  api_key_env: KG_REBUILD_SERVE_KEYS\n  backup:\n"
        f"    target: {{type: directory, path: {tmp_path / 'offsite'}}}\n"
    )
    return make_world(tmp_path, server, extra=block)


def add_installer(world: World) -> None:
    install = world.repo / ".ci" / "install"
    install.parent.mkdir()
    # The repository's own installer: knowngood (this checkout) and its lock into ./.venv.
    if not WHEELS:
        pytest.skip("no cached llama.cpp wheel on this machine: run .ci/install once")
    install.write_text(
        "#!/bin/sh\nset -e\n"
        f'KNOWNGOOD_VENV="$(pwd)/.venv" KNOWNGOOD_WHEELHOUSE={WHEELS[-1].parent} '
        f"exec {ROOT / '.ci' / 'install'}\n"
    )
    install.chmod(0o755)
    git(world.repo, "add", "-A")
    git(world.repo, "commit", "-qm", "installer")
    git(world.repo, "push", "-q", "origin", "main")


@pytest.mark.slow
def test_the_runtime_is_rebuilt_from_the_remote_and_the_latest_backup(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    add_installer(world)
    assert kg(capsys, world, "deploy", "shop", "--check")[0] == 0  # a last known good release
    store = make_store(world.repo)
    add_turns(store, "s1", 20)
    assert kg(capsys, world, "backup")[0] == 0
    code, out = kg(capsys, world, "drill", "rebuild", "--keep")
    assert code == 0, out
    assert out["outcome"] == "passed", out["message"]
    assert [s["name"] for s in out["stages"]] == [
        "clone", "install", "restore", "deploy", "serve", "answer",
    ]  # fmt: skip
    assert all(s["ok"] for s in out["stages"])
    assert out["deployed"] == {"shop": "shop/v0.1.0"}
    assert set(out["answered"]) == {"shop"}
    assert out["total_s"] < 600
    scratch = Path(out["scratch"])
    restored = scratch / "repo" / ".knowngood" / "state.db"
    import sqlite3

    db = sqlite3.connect(restored)
    assert db.execute("SELECT count(*) FROM turns").fetchone()[0] == 20
    db.close()
    # the copy published to its own scratch target, never the real one
    real = json.loads((world.target / "production" / "shop" / "current.json").read_text())
    copy = json.loads(
        (scratch / "deployments" / "production" / "shop" / "current.json").read_text()
    )
    assert copy["content_hash"] == real["content_hash"]
    assert not list((world.tmp / "offsite").rglob(f"*{scratch.name}*"))
    records = world.records().list("drill", "shop", "production")
    (record,) = [r for r in records if r["drill"] == "rebuild"]
    assert record["outcome"] == "passed" and record["recovery_s"] == out["total_s"]
    assert [s["name"] for s in record["steps"]][-1] == "answer"
    assert record["rebuild"] == {"total_s": out["total_s"], "deployed": 1, "answered": 1}


def test_a_repository_a_new_machine_cannot_install_is_a_failed_rebuild(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = kg(capsys, world, "drill", "rebuild")
    assert code == 1
    assert out["outcome"] == "failed"
    assert [(s["name"], s["ok"]) for s in out["stages"]] == [("clone", True), ("install", False)]
    assert "has no .ci/install" in out["message"]
    (record,) = world.records().list("drill", "shop", "production")
    assert record["outcome"] == "failed" and record["recovery_s"] is None


def _remote_head_on_master(world: World, rev: str) -> None:
    """The remote's default branch (HEAD) is ``master``, at ``rev``; knowngood.yaml's main
    branch is still ``main``."""
    commit = git(world.repo, "rev-parse", rev).strip()
    git(world.repo, "push", "-q", "origin", f"{commit}:refs/heads/master")
    git(world.remote, "symbolic-ref", "HEAD", "refs/heads/master")


def test_the_rebuild_clones_the_main_branch_not_the_remotes_default_branch(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    install = world.repo / ".ci" / "install"
    install.parent.mkdir()
    install.write_text("#!/bin/sh\necho 'the installer of main ran' >&2\nexit 7\n")  # cheap
    install.chmod(0o755)
    git(world.repo, "add", "-A")
    git(world.repo, "commit", "-qm", "installer")
    git(world.repo, "push", "-q", "origin", "main")
    _remote_head_on_master(world, "HEAD~1")  # before the installer
    code, out = kg(capsys, world, "drill", "rebuild")
    assert code == 1
    assert [(s["name"], s["ok"]) for s in out["stages"]] == [("clone", True), ("install", False)]
    assert "has no .ci/install" not in out["message"], out["message"]
    assert (
        ".ci/install exited 7" in out["message"] and "the installer of main ran" in out["message"]
    )


def test_a_remote_without_the_main_branch_is_a_usage_error_and_no_drill(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _remote_head_on_master(world, "HEAD")
    git(world.repo, "push", "-q", "origin", ":main")
    code = main(["drill", "rebuild", "--repo", str(world.repo)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"the remote 'origin' ({world.remote}) has no branch 'main'" in err, err
    assert "main_branch" in err and "hint: push it (git push origin main)" in err, err
    assert world.records().list("drill") == []
