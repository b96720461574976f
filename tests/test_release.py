"""``knowngood release``: annotated, never-moved tags with a manifest; real git, real remotes.

Repositories are built from tests/data/validate/base.yaml (a valid repository with one agent,
``shop``) plus copies of that agent under other names. Remotes are bare repositories; races are
real concurrent processes and pushes, or a pre-receive hook that lands a tag mid-push.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from gitutil import clone, commit_all, git, make_remote
from repoutil import do, edit, make_repo, repo_files, write_repo

from pipeline.cli import main
from pipeline.errors import ConfigError, GitError, UsageError
from pipeline.git import Git
from pipeline.release import (
    ReleaseReport,
    Version,
    agent_tags,
    latest_tag,
    parse_release_as,
    plan_releases,
    read_manifest,
    tag_name,
)

TOOL = "agents/{a}/tools/lookup.json"


def release(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any, str]:
    code = main(["release", "--repo", str(root), "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def tags(path: Path) -> dict[str, str]:
    """tag name -> tag object."""
    out = git(path, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/tags")
    return dict(line.split() for line in out.splitlines())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path / "repo")
    do(root)
    return root


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare remote holding the base repository on main."""
    bare = make_remote(tmp_path)
    seed = make_repo(tmp_path / "seed")
    git(seed, "push", "-q", str(bare), "main")
    return bare


# -- versions ----------------------------------------------------------------------------------


def test_version_parse_bump_order_and_tag_names() -> None:
    v = Version.parse("1.2.3")
    assert str(v) == "1.2.3" and Version.parse("v1.2.3") == v
    assert (str(v.bump("major")), str(v.bump("minor")), str(v.bump("patch"))) == (
        "2.0.0",
        "1.3.0",
        "1.2.4",
    )
    assert Version.parse("1.10.0") > Version.parse("1.9.9") > Version.parse("0.99.99")
    assert tag_name("shop", v) == "shop/v1.2.3"
    for bad in ("1.2", "01.2.3", "1.2.3-rc.1", "x"):
        with pytest.raises(UsageError, match="not a version"):
            Version.parse(bad)


# -- first release and the manifest --------------------------------------------------------------


def test_first_release_tags_every_agent_with_a_manifest_of_its_files(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    head = git(root, "rev-parse", "HEAD").strip()
    report = do(root)

    assert report.created == ["desk/v0.1.0", "shop/v0.1.0"]
    assert git(root, "cat-file", "-t", "shop/v0.1.0").strip() == "tag"  # annotated
    assert git(root, "rev-parse", "shop/v0.1.0^{commit}").strip() == head
    message = git(root, "for-each-ref", "--format=%(contents)", "refs/tags/shop/v0.1.0")
    assert message.startswith("shop v0.1.0\n\n{")

    manifest = read_manifest(Git(root), "shop/v0.1.0")
    assert manifest["version"] == 1
    assert (manifest["agent"], manifest["release"], manifest["tag"]) == (
        "shop",
        "v0.1.0",
        "shop/v0.1.0",
    )
    assert (manifest["commit"], manifest["previous"], manifest["bump"]) == (head, None, None)
    assert manifest["reasons"] == ["first release"]
    own = sorted(
        p.relative_to(root).as_posix()
        for top in ("agents/shop", "evals/shop")
        for p in (root / top).rglob("*")
        if p.is_file()
    )
    assert sorted(manifest["files"]) == own
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest
    assert manifest["model_chain"] == [
        {"provider": "local", "model": "openai/smollm2-135m-instruct"},
        {"provider": "openai", "model": "openai/gpt-4o-mini"},
    ]
    assert manifest["eval"] is None
    assert manifest["root"] == ""
    assert "environments" not in manifest  # no overlay changes the chain
    assert agent_tags(Git(root), "shop") == [(Version(0, 1, 0), "shop/v0.1.0")]
    assert latest_tag(Git(root), "shop") == "shop/v0.1.0"
    assert latest_tag(Git(root), "nobody") is None


def test_a_second_run_creates_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tags(repo)
    code, out, _ = release(repo, capsys)
    assert code == 0
    assert out["planned"] == [] and out["created"] == []
    assert sorted(out["existing"]) == ["desk/v0.1.0", "shop/v0.1.0"]
    assert tags(repo) == before


def test_dry_run_creates_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_repo(tmp_path / "repo")
    code, out, _ = release(root, capsys, "--dry-run")
    assert code == 0 and out["dry_run"] is True
    assert [r["tag"] for r in out["planned"]] == ["desk/v0.1.0", "shop/v0.1.0"]
    assert out["planned"][1]["manifest"]["files"]  # the manifest it would write
    assert out["created"] == []
    assert tags(root) == {}

    assert main(["release", "--repo", str(root), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "would tag shop/v0.1.0 (first release)" in text
    assert tags(root) == {}


def test_manifest_paths_are_relative_to_a_knowngood_root_in_a_subfolder(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ("shop",), sub="ops/agents-repo")
    do(root)
    manifest = read_manifest(Git(root), "shop/v0.1.0")
    assert manifest["root"] == "ops/agents-repo"
    assert "agents/shop/agent.yaml" in manifest["files"]
    for rel, digest in manifest["files"].items():
        assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == digest


def test_an_overlay_that_changes_the_model_chain_is_in_the_manifest(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ("shop",))
    write_repo(root, {"agents/shop/environments/staging.yaml": "model:\n  provider: gemini\n"})
    commit_all(root, "staging runs gemini")
    do(root)
    manifest = read_manifest(Git(root), "shop/v0.1.0")
    assert manifest["environments"] == {
        "staging": {
            "model_chain": [
                {"provider": "gemini", "model": "gemini/gemini-2.0-flash"},
                {"provider": "openai", "model": "openai/gpt-4o-mini"},
            ]
        }
    }


# -- bumps ---------------------------------------------------------------------------------------


REQUIRED_REMOVED = [
    ('"order_id": {"type": "string", "description": "Order id"}', '"note": {"type": "string"}'),
    ('"required": ["order_id"]', '"required": []'),
]


@pytest.mark.parametrize(
    ("rel", "edits", "expected"),
    [
        ("agents/shop/prompts/system.md", [("You work for", "You proudly work for")], "0.2.0"),
        (TOOL.format(a="shop"), REQUIRED_REMOVED, "1.0.0"),
        (TOOL.format(a="shop"), [('"Order id"', '"The order id, like A1"')], "0.1.1"),
    ],
    ids=["prompt-minor", "required-property-removed-major", "description-patch"],
)
def test_the_bump_follows_knowngood_diff(
    repo: Path, rel: str, edits: list[tuple[str, str]], expected: str
) -> None:
    for old, new in edits:
        edit(repo, rel, old, new)
    commit_all(repo, "change shop")
    report = do(repo)
    assert report.created == [f"shop/v{expected}"]
    assert [s.agent for s in report.skipped] == ["desk"]
    manifest = read_manifest(Git(repo), f"shop/v{expected}")
    assert manifest["previous"] == "shop/v0.1.0"
    assert manifest["bump"] == {"0.2.0": "minor", "1.0.0": "major", "0.1.1": "patch"}[expected]
    assert manifest["reasons"]
    assert latest_tag(Git(repo), "shop") == f"shop/v{expected}"


def test_a_suites_only_change_releases_nothing(repo: Path) -> None:
    edit(repo, "evals/shop/smoke.yaml", "id: smoke", "id: smoke-renamed")
    commit_all(repo, "suites only")
    report = do(repo)
    assert report.planned == [] and report.created == []
    reasons = {s.agent: s.reason for s in report.skipped}
    assert "no change since shop/v0.1.0 needs a release" in reasons["shop"]
    assert reasons["desk"] == "unchanged since desk/v0.1.0"


def test_plan_releases_is_what_create_would_tag(repo: Path) -> None:
    edit(repo, "agents/desk/prompts/system.md", "You work for", "You work hard for")
    commit_all(repo, "desk")
    [planned] = plan_releases(Git(repo), repo)
    assert (
        planned.agent,
        str(planned.version),
        planned.tag,
        planned.previous_tag,
        planned.bump,
    ) == (
        "desk",
        "0.2.0",
        "desk/v0.2.0",
        "shop/v0.1.0".replace("shop", "desk"),
        "minor",
    )
    assert planned.commit == git(repo, "rev-parse", "HEAD").strip()


# -- Release-As ----------------------------------------------------------------------------------


def test_release_as_applies_to_every_agent_released_now(repo: Path) -> None:
    for agent in ("shop", "desk"):
        edit(repo, f"agents/{agent}/prompts/system.md", "You work for", "You work well for")
    commit_all(
        repo, "Merge pull request #7 from team/prompts\n\nBetter prompts\n\nRelease-As: 2.0.0"
    )
    report = do(repo)
    assert report.created == ["desk/v2.0.0", "shop/v2.0.0"]
    manifest = read_manifest(Git(repo), "shop/v2.0.0")
    assert manifest["bump"] == "minor"
    assert "Release-As: 2.0.0 (from the commit message)" in manifest["reasons"]


def test_release_as_for_one_agent_forces_its_release(repo: Path) -> None:
    commit_all(repo, "Stable now\n\nRelease-As: desk@v1.0.0")  # no change at all
    report = do(repo)
    assert report.created == ["desk/v1.0.0"]
    assert [s.agent for s in report.skipped] == ["shop"]
    assert do(repo).created == []  # idempotent: desk is released at HEAD


def test_a_release_as_not_above_the_current_version_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo, "agents/shop/prompts/system.md", "You work for", "You work well for")
    commit_all(repo, "oops\n\nRelease-As: shop@0.1.0")
    code, out, err = release(repo, capsys)
    assert code == 2 and out is None
    assert "Release-As 0.1.0 for shop is not above its current release shop/v0.1.0" in err
    assert sorted(tags(repo)) == ["desk/v0.1.0", "shop/v0.1.0"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("Release-As: two", "'two' in the commit message is not a version"),
        ("Release-As: nobody@1.0.0", "no agent named 'nobody'"),
        ("Release-As: 1.0.0\nRelease-As: 2.0.0", "two versions: 1.0.0 and 2.0.0"),
    ],
)
def test_bad_release_as_lines_are_usage_errors(message: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        parse_release_as(f"subject\n\n{message}\n", {"shop"})


def test_release_as_parsing() -> None:
    parsed = parse_release_as("x\n\nrelease-as:  v3.1.0 \nRelease-As: shop/v4.0.0\n", {"shop"})
    assert parsed.everyone == Version(3, 1, 0)
    assert parsed.for_agent("shop") == Version(4, 0, 0)
    assert parsed.for_agent("desk") == Version(3, 1, 0)


# -- never moved, never half done ----------------------------------------------------------------


def test_an_invalid_revision_is_never_tagged(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(repo, "agents/shop/agent.yaml", "provider: local", "provider: nowhere")
    commit_all(repo, "broken")
    code, _, err = release(repo, capsys)
    assert code == 1
    assert "does not validate" in err and "nothing was tagged" in err
    assert "agents/shop/agent.yaml" in err
    assert sorted(tags(repo)) == ["desk/v0.1.0", "shop/v0.1.0"]


def test_an_existing_tag_on_another_commit_is_never_moved(
    remote: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    edit(a, "agents/shop/prompts/system.md", "You work for", "A: you work for")
    commit_all(a, "a's change")
    do(a)  # tagged locally, not pushed
    mine = tags(a)
    edit(b, "agents/shop/prompts/system.md", "You work for", "B: you work for")
    commit_all(b, "b's change")
    do(b, push=True)
    published = tags(remote)

    code, _, err = release(a, capsys, "--push")
    assert code == 3
    assert "tag desk/v0.1.0 already exists on origin on commit" in err
    assert "never moved or reused" in err
    assert tags(a) == mine and tags(remote) == published


def test_create_tag_never_moves_a_tag(repo: Path) -> None:
    from pipeline.release.tags import create_tag

    g = Git(repo)
    head = git(repo, "rev-parse", "HEAD").strip()
    commit_all(repo, "another commit")
    other = git(repo, "rev-parse", "HEAD").strip()
    assert create_tag(g, "shop/v5.0.0", head, "shop v5.0.0\n\n{}\n") is True
    assert create_tag(g, "shop/v5.0.0", head, "shop v5.0.0\n\n{}\n") is False  # exists: same commit
    with pytest.raises(GitError, match="never moved or reused"):
        create_tag(g, "shop/v5.0.0", other, "shop v5.0.0\n\n{}\n")
    assert git(repo, "rev-parse", "shop/v5.0.0^{commit}").strip() == head


def test_a_failure_midway_deletes_the_tags_this_run_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    git(root, "tag", "shop")  # refs/tags/shop blocks refs/tags/shop/v0.1.0; desk comes first
    code, _, err = release(root, capsys)
    assert code == 3
    assert "could not create tag shop/v0.1.0" in err and "'refs/tags/shop' exists" in err
    assert sorted(tags(root)) == ["shop"]  # desk/v0.1.0 was made, then deleted


def test_lightweight_tags_carry_no_manifest(repo: Path) -> None:
    git(repo, "tag", "shop/v9.0.0")
    with pytest.raises(ConfigError, match="lightweight"):
        read_manifest(Git(repo), "shop/v9.0.0")
    with pytest.raises(UsageError, match="no tag named"):
        read_manifest(Git(repo), "shop/v9.9.9")


# -- races ---------------------------------------------------------------------------------------


def test_runs_racing_in_one_clone_make_one_tag(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    reports: list[ReleaseReport] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def run() -> None:
        try:
            start.wait()
            reports.append(do(root))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    created = sorted(tag for r in reports for tag in r.created)
    assert created == ["desk/v0.1.0", "shop/v0.1.0"]  # each made exactly once
    for r in reports:
        assert sorted(r.created + r.existing) == ["desk/v0.1.0", "shop/v0.1.0"]
    assert sorted(tags(root)) == ["desk/v0.1.0", "shop/v0.1.0"]


def test_two_clones_pushing_the_same_release_at_once_make_one_tag(
    remote: Path, tmp_path: Path
) -> None:
    clones = [clone(remote, tmp_path / name) for name in ("a", "b")]
    reports: dict[Path, ReleaseReport] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(clones))

    def run(root: Path) -> None:
        try:
            start.wait()
            reports[root] = do(root, push=True)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(tags(remote)) == ["desk/v0.1.0", "shop/v0.1.0"]
    assert sorted(t for r in reports.values() for t in r.created) == ["desk/v0.1.0", "shop/v0.1.0"]
    for c, r in reports.items():
        assert sorted(r.created + r.existing) == ["desk/v0.1.0", "shop/v0.1.0"]
        assert tags(c) == tags(remote)  # every clone ends with the published tag objects


def test_a_tag_pushed_by_another_run_during_our_push_is_adopted(
    remote: Path, tmp_path: Path
) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    do(b)  # b's tags exist, unpublished; the hook publishes them while a's push is received
    land_mid_push(remote, b, ["desk/v0.1.0", "shop/v0.1.0"])

    report = do(a, push=True)
    assert report.created == [] and report.pushed == []
    assert sorted(report.existing) == ["desk/v0.1.0", "shop/v0.1.0"]
    assert any("pushed by another run" in m for m in report.messages)
    assert tags(a) == tags(remote) == tags(b)


def land_mid_push(remote: Path, other: Path, names: list[str]) -> None:
    """Make the remote's pre-receive hook publish ``other``'s tags while our push is received:
    another run winning the race between our check and our ref update."""
    for name in names:
        git(other, "push", "-q", str(remote), f"refs/tags/{name}:refs/pending/{name}")
    lines = [
        "#!/bin/sh",
        "unset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES",
    ]
    for name in names:
        lines.append(
            f'git update-ref "refs/tags/{name}" "$(git rev-parse refs/pending/{name})" || exit 1'
        )
        lines.append(f'git update-ref -d "refs/pending/{name}"')
    lines.append("rm -f hooks/pre-receive")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("\n".join(lines) + "\n")
    hook.chmod(0o755)


def test_a_different_release_pushed_during_our_push_wins_and_ours_is_dropped(
    remote: Path, tmp_path: Path
) -> None:
    a = clone(remote, tmp_path / "a")
    b = clone(remote, tmp_path / "b")
    edit(b, "agents/shop/prompts/system.md", "You work for", "B: you work for")
    commit_all(b, "b's change")
    do(b)
    land_mid_push(remote, b, ["desk/v0.1.0", "shop/v0.1.0"])
    with pytest.raises(GitError, match="never moved or reused"):
        do(a, push=True)
    assert tags(a) == {}  # this run's tags were deleted
    assert tags(remote) == tags(b)


# -- pushing -------------------------------------------------------------------------------------


def test_push_publishes_the_new_tags(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    report = do(a, push=True)
    assert sorted(report.pushed) == ["desk/v0.1.0", "shop/v0.1.0"]
    assert tags(remote) == tags(a)
    # a fresh clone, with no tags fetched yet, plans from the published ones
    b = clone(remote, tmp_path / "b")
    git(b, "tag", "-d", "shop/v0.1.0", "desk/v0.1.0")
    edit(b, "agents/shop/prompts/system.md", "You work for", "You work well for")
    commit_all(b, "shop")
    report = do(b, push=True)
    assert report.created == ["shop/v0.2.0"] and report.pushed == ["shop/v0.2.0"]
    assert any("fetched 2 release tags" in m for m in report.messages)


def test_a_refused_push_leaves_no_local_tag_and_says_why(
    remote: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'tags need approval from @release-managers' >&2\nexit 1\n")
    hook.chmod(0o755)
    a = clone(remote, tmp_path / "a")
    code, out, err = release(a, capsys, "--push")
    assert code == 3 and out is None
    assert "origin refused the release tags" in err
    assert "pre-receive hook declined" in err
    assert "tags need approval from @release-managers" in err
    assert "were deleted" in err
    assert tags(a) == {} and tags(remote) == {}


def test_push_sends_tags_an_earlier_run_made_but_did_not_push(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    assert do(a).created == ["desk/v0.1.0", "shop/v0.1.0"]
    report = do(a, push=True)
    assert report.created == []
    assert sorted(report.pushed) == ["desk/v0.1.0", "shop/v0.1.0"]
    assert tags(remote) == tags(a)

    edit(a, "agents/shop/prompts/system.md", "You work for", "You work well for")
    commit_all(a, "shop")
    do(a)  # shop/v0.2.0, not pushed
    edit(a, "agents/shop/prompts/system.md", "You work well for", "You work very well for")
    commit_all(a, "shop again")
    report = do(a, push=True)
    assert report.created == ["shop/v0.3.0"]
    assert sorted(report.pushed) == ["shop/v0.2.0", "shop/v0.3.0"]  # its "previous" too
    assert tags(remote) == tags(a)


def test_push_without_the_remote_is_a_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = release(repo, capsys, "--push")
    assert code == 2 and "no remote named 'origin'" in err


def test_an_unreachable_remote_is_exit_3_and_tags_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    git(root, "remote", "add", "origin", str(tmp_path / "gone.git"))
    code, _, err = release(root, capsys, "--push")
    assert code == 3 and "could not list the tags of origin" in err
    assert tags(root) == {}
    with pytest.raises(GitError):
        do(root, push=True)


# -- eval summary --------------------------------------------------------------------------------


def test_the_manifest_carries_the_agents_part_of_the_eval_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    head = git(root, "rev-parse", "HEAD").strip()

    def case(agent: str, name: str, status: str, provider: str = "local") -> dict[str, Any]:
        return {"agent": agent, "suite": "pr", "case": name, "provider": provider, "status": status}

    results = {
        "version": 1,
        "kind": "eval-results",
        "commit": head,
        "cases": [
            case("shop", "hello", "pass"),
            case("shop", "tool", "fail", "openai"),
            case("shop", "other", "skipped", "openai"),
            case("desk", "hello", "pass"),
        ],
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    code, _, _ = release(root, capsys, "--eval-results", str(path))
    assert code == 0
    summary = read_manifest(Git(root), "shop/v0.1.0")["eval"]
    assert summary == {
        "source": str(path),
        "commit": head,
        "cases": 3,
        "passed": 1,
        "failed": 1,
        "errors": 0,
        "skipped": 1,
        "flaky": 0,
        "pass_rate": 0.5,
        "suites": ["pr"],
        "providers": ["local", "openai"],
    }
    assert read_manifest(Git(root), "desk/v0.1.0")["eval"]["passed"] == 1


def test_eval_results_of_another_commit_are_noted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo", ("shop",))
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"commit": "0" * 40, "cases": []}))
    code, out, _ = release(root, capsys, "--eval-results", str(path))
    assert code == 0
    assert any("not of the release commit" in m for m in out["messages"])
    path.write_text("{not json")
    code, _, err = release(root, capsys, "--eval-results", str(path))
    assert code == 2 and "is not JSON" in err


def test_stored_results_of_the_commit_are_used_by_default(tmp_path: Path) -> None:
    from pipeline.records import RecordStore

    root = make_repo(tmp_path / "repo", ("shop",))
    results = {
        "commit": git(root, "rev-parse", "HEAD").strip(),
        "cases": [
            {"agent": "shop", "suite": "pr", "case": "hello", "provider": "local", "status": "pass"}
        ],
    }
    RecordStore(Git(root)).put_results("HEAD", results)
    do(root)
    summary = read_manifest(Git(root), "shop/v0.1.0")["eval"]
    assert summary["source"] == "records" and summary["passed"] == 1


def test_github_step_outputs_list_the_new_tags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(tmp_path / "repo")
    output = tmp_path / "github_output"
    output.write_text("")
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    code, _, _ = release(root, capsys)
    assert code == 0
    text = output.read_text()
    assert "desk/v0.1.0 shop/v0.1.0" in text and "desk shop" in text


def test_outside_a_git_repository_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "plain"
    write_repo(root, repo_files(("shop",)))
    code, _, err = release(root, capsys)
    assert code == 2 and "not inside a git repository" in err
