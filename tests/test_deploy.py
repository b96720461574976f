"""deploy, check, rollback, drill and auto-revert on real git: a bare remote, several clones,
a directory (or command) deploy target outside the clones, providers on a loopback server whose
answer depends on the deployed system prompt."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from deployutil import AGENT, FRENCH, KEYS, PROMPT, World, good_change, kg, make_world, responder
from fakeproviders import FakeProvider, Fault, Reply
from gitutil import git
from repoutil import BASE

from pipeline.cli import main
from pipeline.records import RecordStore


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KNOWNGOOD_WEBHOOK_URL", raising=False)


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider(responder=responder) as srv:
        yield srv


@pytest.fixture
def world(tmp_path: Path, server: FakeProvider, keys: None) -> World:
    return make_world(tmp_path, server)


# -- deploy ----------------------------------------------------------------------------------------


def test_deploy_builds_from_the_tag_never_the_working_tree(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    (world.repo / PROMPT).write_text(FRENCH)  # an uncommitted edit must not ship
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0, out
    assert (
        out["status"] == "deployed" and out["release"] == "shop/v0.1.0" and out["previous"] is None
    )
    bundle = world.current()
    assert bundle["release"] == "shop/v0.1.0"
    assert bundle["commit"] == git(world.repo, "rev-parse", "shop/v0.1.0^{commit}").strip()
    assert "French" not in bundle["system_prompt"]
    assert bundle["runtime_vars"] == ["customer"]  # the prompt needs a per-conversation variable
    assert bundle["config"]["model"]["params"] == {"temperature": 0}  # production overlay merged
    assert {t["function"]["name"] for t in bundle["tools"]} == {"lookup_order", "issue_refund"}
    assert [m["provider"] for m in bundle["model_chain"]] == ["local", "openai"]
    assert out["content_hash"] == bundle["content_hash"]
    # the record is in git, pushed: who, when, what, why, outcome
    [record] = world.records().list("deployment", AGENT, "production")
    assert record["id"] == out["deployment"]
    assert record["actor"] == "Test Committer" or record["actor"]
    assert record["what"] == "deploy shop/v0.1.0 to production"
    assert record["why"] == "release shop/v0.1.0"
    assert record["outcome"] == "success" and record["content_hash"] == bundle["content_hash"]
    assert record["target"] == "directory" and record["previous"] is None


def test_any_older_release_deploys_the_same_way(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    good_change(world, "Acme Two", 8)
    assert world.release() == ["shop/v0.2.0"]  # a prompt variable changed: minor
    good_change(world, "Acme Three", 9)
    assert world.release() == ["shop/v0.3.0"]
    hashes = {}
    for version in ("v0.3.0", "0.1.0", "shop/v0.2.0"):
        code, out = kg(capsys, world, "deploy", AGENT, "--version", version, "--env", "staging")
        assert code == 0, out
        hashes[out["release"]] = out["content_hash"]
        assert world.current("staging")["release"] == out["release"]
    assert len(set(hashes.values())) == 3
    code, out = kg(capsys, world, "deploy", AGENT, "--version", "0.1.0", "--env", "staging")
    assert out["content_hash"] == hashes["shop/v0.1.0"]  # same tag, same bundle
    assert out["previous"] == "shop/v0.2.0"


def test_deploy_released_deploys_what_release_tagged_at_head(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = kg(capsys, world, "deploy", "--released", "--check")
    assert code == 0, out
    assert [d["release"] for d in out["deployments"]] == ["shop/v0.1.0"]
    assert out["deployments"][0]["check"]["outcome"] == "passed"
    git(world.repo, "commit", "-q", "--allow-empty", "-m", "docs")
    code, out = kg(capsys, world, "deploy", "--released")
    assert code == 0 and out["deployments"] == [] and out["errors"] == []
    assert main(["deploy", "--released", AGENT, "--repo", str(world.repo)]) == 2
    assert main(["deploy", "--released", "--version", "1.0.0", "--repo", str(world.repo)]) == 2
    assert main(["deploy", "--repo", str(world.repo)]) == 2


def test_bad_release_or_environment_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deploy", AGENT, "--version", "v9.9.9", "--repo", str(world.repo)]) == 2
    assert "no release shop/v9.9.9" in capsys.readouterr().err
    assert main(["deploy", AGENT, "--version", "banana", "--repo", str(world.repo)]) == 2
    assert main(["deploy", AGENT, "--env", "moon", "--repo", str(world.repo)]) == 2
    assert "unknown environment 'moon'" in capsys.readouterr().err
    assert main(["deploy", "nobody", "--repo", str(world.repo)]) == 2
    assert "no agent named 'nobody' (agents: shop)" in capsys.readouterr().err
    assert not world.target.exists()
    assert world.records().list("deployment") == []


def test_a_drill_with_nothing_to_drill_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new repository's scheduled drills pass (nothing failed) and say why none ran."""
    root = tmp_path / "fresh"
    assert main(["init", str(root)]) == 0
    git(root, "add", "-A")
    git(root, "commit", "-qm", "knowngood init")
    capsys.readouterr()
    for kind, why in (
        ("rollback", "no agent has a release yet: `knowngood release` tags one"),
        ("failover", "nothing is deployed to production: `knowngood deploy AGENT` first"),
    ):
        assert main(["drill", kind, "--repo", str(root), "--format", "json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["drills"] == [] and report["skipped"] == [why]


@pytest.mark.parametrize(
    "command",
    [
        ["deploy"],
        ["check"],
        ["rollback"],
        ["drill", "rollback"],
        ["drill", "failover"],
        ["drill", "crash"],
    ],
)
def test_a_mistyped_agent_is_named_as_such_not_as_unreleased_or_undeployed(
    world: World, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    assert main([*command, "shpo", "--repo", str(world.repo)]) == 2
    err = capsys.readouterr().err
    assert "no agent named 'shpo' (agents: shop)" in err
    assert "did you mean 'shop'?" in err
    assert world.records().list("deployment") == []


def test_a_refused_records_push_is_a_warning_not_a_failed_deploy(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n  case $ref in refs/heads/knowngood/*) echo 'records are read-only' >&2; exit 1;; esac\ndone\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IEXEC)
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0
    assert any("records not pushed" in w for w in out["warnings"])
    assert world.current()["release"] == "shop/v0.1.0"
    assert RecordStore(world.git).unpushed()  # kept locally, sent with the next push
    hook.unlink()
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0 and out["warnings"] == []
    assert len(world.records().list("deployment", AGENT)) == 2


def test_a_failing_command_target_is_recorded_and_exit_3(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho 'cluster unreachable' >&2\nexit 4\n")
    script.chmod(0o755)
    world = make_world(tmp_path, server, target={"type": "command", "command": [str(script)]})
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 3
    assert out["status"] == "failed" and "cluster unreachable" in out["message"]
    [record] = world.records().list("deployment", AGENT)
    assert record["outcome"] == "failure" and "exited 4" in record["details"]["error"]


def test_a_command_target_waits_its_own_timeout(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """deploy.target.timeout_s in knowngood.yaml: a rollout that takes longer than it is
    killed and the deploy fails (exit 3); a longer timeout lets the same rollout finish."""
    script = tmp_path / "deploy.sh"
    script.write_text("#!/bin/sh\necho 'rolling out'\nsleep 1.5\n")
    script.chmod(0o755)
    target = {"type": "command", "command": [str(script)], "timeout_s": 0.5}
    world = make_world(tmp_path, server, target=target)
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 3, out
    message = str(out["message"])
    assert "timed out after 0.5s" in message and "rolling out" in message
    settings = world.repo / "knowngood.yaml"
    settings.write_text(settings.read_text().replace('"timeout_s": 0.5', '"timeout_s": 30'))
    git(world.repo, "commit", "-qam", "the rollout takes a while")
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0 and out["status"] == "deployed", out


# -- check ------------------------------------------------------------------------------------------


def test_check_runs_the_deployed_bundle_not_the_working_tree(
    world: World, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = kg(capsys, world, "deploy", AGENT)
    assert code == 0
    (world.repo / PROMPT).write_text(FRENCH)  # would fail if the working tree were checked
    git(world.repo, "commit", "-qam", "unreleased French prompt")
    server.reset()
    code, out = kg(capsys, world, "check", AGENT)
    assert code == 0, out
    assert out["outcome"] == "passed" and out["suites"] == ["smoke"]
    assert (
        out["summary"]["total"] == 2 and out["summary"]["threshold"] == 1.0
    )  # smoke on local + openai
    body = next(r.body for r in server.requests)
    assert (
        body["messages"][0]["content"] == "You work for Acme.\nYou are talking to Bob."
    )  # case vars rendered
    assert {t["function"]["name"] for t in body["tools"]} == {"lookup_order", "issue_refund"}
    [check] = world.records().list("check", AGENT, "production")
    assert check["outcome"] == "passed" and check["deployment"] == out["deployment"]
    assert world.records().last_known_good(AGENT, "production")["id"] == out["deployment"]  # type: ignore[index]


def test_check_with_a_command_target_rebuilds_and_verifies_the_recorded_bundle(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/received-$KNOWNGOOD_ENV.json\n')
    script.chmod(0o755)
    world = make_world(tmp_path, server, target={"type": "command", "command": [str(script)]})
    assert kg(capsys, world, "deploy", AGENT)[0] == 0
    received = json.loads((tmp_path / "received-production.json").read_text())
    code, out = kg(capsys, world, "check", AGENT)
    assert code == 0, out
    assert out["content_hash"] == received["content_hash"]


def test_check_threshold_and_provider_errors(
    world: World, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT)[0] == 0
    server.push_faults(*[Fault.server_error(500) for _ in range(10)])
    code, out = kg(capsys, world, "check", AGENT)
    assert code == 3  # could not tell: an outage is not a broken release
    assert out["outcome"] == "error" and "provider errors" in out["message"]
    assert world.records().list("check", AGENT)[0]["outcome"] == "error"
    assert main(["check", AGENT, "--env", "staging", "--repo", str(world.repo)]) == 2
    assert "no successful deployment of shop to staging" in capsys.readouterr().err


def test_pass_rate_threshold_of_the_deployed_config(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    agent_yaml = BASE["agents/shop/agent.yaml"].replace(
        "post_deploy: [smoke]", "post_deploy: [smoke]\n  pass_rate: 0.5"
    )
    world.merge(
        "threshold",
        {
            "agents/shop/agent.yaml": agent_yaml,
            "evals/shop/smoke.yaml": (
                "agent: shop\ncases:\n  - id: smoke\n    input: Hi\n    vars: {customer: Bob}\n    expect:\n      - contains: Acme\n"
                "  - id: impossible\n    input: Hi\n    vars: {customer: Bob}\n    expect:\n      - contains: zebra\n"
            ),
            "agents/shop/environments/production.yaml": "model:\n  params: {temperature: 0}\nprompt:\n  vars: {company: Acme Corp}\n",
        },
        "Looser threshold (an evals-only change needs no release: rename too)",
        number=11,
    )
    assert len(world.release()) == 1
    code, out = kg(capsys, world, "deploy", AGENT, "--check")
    assert code == 0, out
    assert out["check"]["summary"]["pass_rate"] == 0.5, out["check"]
    assert out["check"]["summary"]["threshold"] == 0.5
    assert out["check"]["failing"] == ["smoke/impossible@local", "smoke/impossible@openai"]


# -- auto-revert ------------------------------------------------------------------------------------


def break_it(world: World, message: str = "Answer in French", number: int = 7) -> str:
    return world.merge(f"french-{number}", {PROMPT: FRENCH}, message, number=number)


def test_opt_out_restores_and_notifies_but_does_not_revert(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    break_it(world, "Answer in French\n\nknowngood: no-auto-revert")
    assert len(world.release()) == 1
    main_before = world.remote_main()
    code, out = kg(capsys, world, "deploy", AGENT, "--auto-revert")
    assert code == 1, out
    recovery = out["recovery"]
    assert (
        recovery["revert"]["status"] == "skipped" and recovery["revert"]["safeguard"] == "opt-out"
    )
    assert recovery["restored_release"] == "shop/v0.1.0" and recovery["resolved"] is True
    assert world.current()["release"] == "shop/v0.1.0"
    assert world.remote_main() == main_before


def test_no_known_good_release_still_reverts(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = break_it(world)
    world.release()
    code, out = kg(capsys, world, "deploy", AGENT, "--check", "--auto-revert")
    assert code == 1, out
    recovery = out["recovery"]
    assert recovery["restored"] is None and recovery["resolved"] is False
    assert any("no known good release" in m for m in recovery["messages"])
    assert recovery["revert"]["status"] == "reverted" and recovery["merge"] == merge
    [incident] = world.records().incidents(AGENT, "production")
    assert incident.status == "open"


def test_refused_push_without_github_is_exit_3(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    break_it(world)
    world.release()
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/main ] && { echo 'main is protected' >&2; exit 1; }\ndone\nexit 0\n"
    )
    hook.chmod(0o755)
    code, out = kg(capsys, world, "deploy", AGENT, "--auto-revert")
    assert code == 3  # recovery could not complete: the revert failed (the restore worked)
    assert out["recovery"]["revert"]["status"] == "failed"
    assert "main is protected" in out["recovery"]["revert"]["message"]
    assert world.current()["release"] == "shop/v0.1.0"


def test_same_bundle_that_passed_before_is_not_reverted(
    world: World, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    main_before = world.remote_main()
    server.responder = lambda wire, body: Reply(text="The model changed under us.")
    code, out = kg(capsys, world, "deploy", AGENT, "--auto-revert")
    assert code == 1
    assert out["recovery"]["revert"] is None and out["recovery"]["restored"] is None
    assert any("did not change" in m for m in out["recovery"]["messages"])
    assert world.remote_main() == main_before


def test_recovery_restores_what_ran_before_a_deliberate_rollback(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    good_change(world)
    assert len(world.release()) == 1
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    assert kg(capsys, world, "rollback", AGENT)[0] == 0  # someone went back to v0.1.0 on purpose
    merge = break_it(world)
    world.release()
    code, out = kg(capsys, world, "deploy", AGENT, "--auto-revert")
    assert code == 1
    assert out["recovery"]["restored_release"] == "shop/v0.1.0"  # not the newer v2 it left
    assert world.current()["release"] == "shop/v0.1.0"
    assert out["recovery"]["merge"] == merge


# -- rollback ---------------------------------------------------------------------------------------


def test_rollback_to_the_previous_known_good_release(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    good_change(world)
    [v2] = world.release()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    main_before = world.remote_main()
    code, out = kg(capsys, world, "rollback", AGENT, "--reason", "customers prefer the old name")
    assert code == 0, out
    assert out["status"] == "rolled-back"
    assert (out["from_release"], out["to_release"]) == (v2, "shop/v0.1.0")
    assert world.current()["release"] == "shop/v0.1.0"
    assert world.remote_main() == main_before  # main untouched
    record = world.records().current(AGENT, "production")
    assert record is not None and record["rollback"] is True
    assert record["why"] == f"rollback from {v2}: customers prefer the old name"
    # already there: nothing to do
    code, out = kg(capsys, world, "rollback", AGENT, "--to", "v0.1.0")
    assert code == 0 and out["status"] == "skipped"
    # nothing older than v0.1.0 is known good
    assert main(["rollback", AGENT, "--repo", str(world.repo)]) == 3
    assert (
        "no known good release of shop in production older than shop/v0.1.0"
        in capsys.readouterr().err
    )


def test_rollback_safeguards(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    break_it(world)
    [bad] = world.release()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 1  # the new release failed its check
    code, out = kg(capsys, world, "rollback", AGENT)
    assert code == 0 and out["to_release"] == "shop/v0.1.0"
    code, out = kg(capsys, world, "rollback", AGENT, "--to", bad)
    assert code == 1 and out["status"] == "refused" and out["safeguard"] == "failed-check"
    code, out = kg(capsys, world, "rollback", AGENT, "--to", bad, "--force")
    assert code == 0 and world.current()["release"] == bad
    code, out = kg(capsys, world, "rollback", AGENT, "--to", "0.1.0")
    assert code == 0
    code, out = kg(capsys, world, "rollback", AGENT, "--to", bad, "--force")
    assert code == 0
    code, out = kg(
        capsys, world, "rollback", AGENT, "--to", "0.1.0"
    )  # the 4th in a day: max_per_day is 3
    assert code == 1 and out["safeguard"] == "daily-limit"
    assert world.current()["release"] == bad


# -- drill ------------------------------------------------------------------------------------------


def test_drill_rollback_in_a_scratch_environment(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = kg(capsys, world, "drill", "rollback")
    assert (
        code == 0
        and out["drills"] == []
        and out["skipped"] == ["shop has 1 release: a rollback drill needs two"]
    )
    assert main(["drill", "rollback", AGENT, "--repo", str(world.repo)]) == 2
    assert main(["drill", "rollback", "--env", "prod", "--repo", str(world.repo)]) == 2
    capsys.readouterr()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    good_change(world)
    [v2] = world.release()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    production = world.current()
    code, out = kg(capsys, world, "drill", "rollback", AGENT)
    assert code == 0, out
    [drill] = out["drills"]
    assert drill["outcome"] == "passed" and drill["env"] == "drill"
    assert (drill["from_release"], drill["to_release"]) == (v2, "shop/v0.1.0")
    assert drill["recovery_s"] > 0
    assert [s["name"] for s in drill["steps"]] == [
        f"deploy {v2}",
        "roll back to shop/v0.1.0",
        "check shop/v0.1.0",
        "restore",
    ]
    assert world.current() == production  # production untouched
    assert not (world.target / "drill" / AGENT / "current.json").exists()  # empty, as found
    [record] = world.records().list("drill", AGENT, "drill")
    assert record["outcome"] == "passed" and record["recovery_s"] == drill["recovery_s"]
    assert record["from_release"] == v2 and record["to_release"] == "shop/v0.1.0"
    removed, rolled, deployed = world.records().list("deployment", AGENT, "drill")
    assert (removed["outcome"], rolled["release"], deployed["release"]) == (
        "removed",
        "shop/v0.1.0",
        v2,
    )
    assert deployed["details"]["built_for"] == "production"
    bundle = json.loads(
        (world.target / "drill" / AGENT / f"{deployed['content_hash']}.json").read_text()
    )
    assert bundle["config"]["prompt"]["vars"]["company"] == "Acme Corp"  # production overlay
    # a real environment: drills from what runs there and puts it back
    code, out = kg(capsys, world, "drill", "rollback", "--env", "production")
    assert code == 0, out
    assert (out["drills"][0]["from_release"], out["drills"][0]["to_release"]) == (v2, "shop/v0.1.0")
    assert world.current()["content_hash"] == production["content_hash"]


def test_a_failed_drill_opens_a_p3_incident_and_the_next_passed_drill_resolves_it(
    world: World, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    good_change(world)
    world.release()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    server.responder = lambda wire, body: Reply(text="The model changed under us.")
    code, out = kg(capsys, world, "drill", "rollback", AGENT)
    assert code == 1 and out["drills"][0]["outcome"] == "failed"
    [incident] = world.records().incidents(AGENT, "drill")
    assert (incident.status, incident.severity, incident.scenario) == (
        "open",
        "P3",
        "prompt-change-breaks-the-agent",
    )
    assert incident.records[0]["by"] == "knowngood drill"
    assert kg(capsys, world, "drill", "rollback", AGENT)[0] == 1  # still failing: no second one
    assert len(world.records().incidents(AGENT, "drill")) == 1
    server.responder = responder
    assert kg(capsys, world, "drill", "rollback", AGENT)[0] == 0
    [incident] = world.records().incidents(AGENT, "drill")
    assert incident.status == "resolved" and incident.timeline()[-1]["by"] == "knowngood drill"


def test_cli_help_lists_the_commands() -> None:
    """From whatever environment runs the tests: its console script, else ``python -m pipeline``."""
    script = Path(sys.executable).parent / "knowngood"
    command = [os.fspath(script)] if script.is_file() else [sys.executable, "-m", "pipeline"]
    proc = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    for name in ("deploy", "check", "rollback", "drill"):
        assert name in proc.stdout


# -- safeguards shared by deploy and rollback ------------------------------------------------------


def test_deploy_refuses_a_release_whose_last_check_failed_unless_forced(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    break_it(world)
    [bad] = world.release()
    code, out = kg(capsys, world, "deploy", AGENT, "--auto-revert")
    assert code == 1 and out["recovery"]["restored_release"] == "shop/v0.1.0"
    deployments = len(world.records().list("deployment", AGENT, "production"))
    code, refused = kg(capsys, world, "rollback", AGENT, "--to", bad)
    assert code == 1 and refused["safeguard"] == "failed-check"
    # a plain deploy picks the newest release: the one known bad in production
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 1, out
    assert out["status"] == "refused" and out["safeguard"] == "failed-check"
    assert out["message"] == refused["message"]  # one safeguard, one message
    assert "--force" in out["message"] and out["deployment"] is None
    assert world.current()["release"] == "shop/v0.1.0"
    assert len(world.records().list("deployment", AGENT, "production")) == deployments
    assert main(["deploy", AGENT, "--version", bad, "--repo", str(world.repo)]) == 1
    assert "refused (failed-check)" in capsys.readouterr().out
    # staging never checked it: the safeguard is per environment, like rollback's
    assert kg(capsys, world, "deploy", AGENT, "--env", "staging")[0] == 0
    code, out = kg(capsys, world, "deploy", AGENT, "--force")
    assert code == 0 and out["status"] == "deployed"
    assert world.current()["release"] == bad
    record = world.records().current(AGENT, "production")
    assert record is not None and record["details"]["forced"] is True
    assert record["why"].endswith("(forced)")


def test_drills_start_from_the_last_known_good_release_and_leave_environments_as_found(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "rollback", AGENT, "--repo", str(world.repo)]) == 2  # one release
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    good_change(world)
    [v2] = world.release()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    break_it(world)
    [bad] = world.release()
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 1  # the newest tag is known bad
    assert kg(capsys, world, "deploy", AGENT, "--env", "staging")[0] == 0
    production, staging = world.current(), world.current("staging")
    assert production["release"] == bad

    code, out = kg(capsys, world, "drill", "rollback", AGENT)
    assert code == 0, out
    [drill] = out["drills"]
    assert (drill["from_release"], drill["to_release"]) == (v2, "shop/v0.1.0")
    assert drill["steps"][0]["name"] == f"deploy {v2}" and drill["steps"][-1]["ok"]
    # every environment as the drill found it: the scratch one empty, the others untouched
    assert not (world.target / "drill" / AGENT / "current.json").exists()
    assert world.current() == production and world.current("staging") == staging
    records = world.records()
    assert records.current(AGENT, "drill") is None
    assert all(d.get("release") != bad for d in records.list("deployment", AGENT, "drill"))
    capsys.readouterr()
    assert main(["status", AGENT, "--repo", str(world.repo), "--format", "json"]) == 0
    envs = {e["env"]: e for e in json.loads(capsys.readouterr().out)["agents"][0]["environments"]}
    assert envs["drill"]["health"] == "not deployed" and envs["drill"]["last_drill"]
    assert envs["production"]["current"]["release"] == bad

    # a real environment: the drill starts from its last known good release, and puts back
    # exactly what ran there (even a release known bad: it found it so)
    code, out = kg(capsys, world, "drill", "rollback", AGENT, "--env", "production")
    assert code == 0, out
    [drill] = out["drills"]
    assert (drill["from_release"], drill["to_release"]) == (v2, "shop/v0.1.0")
    assert world.current() == production and world.current("staging") == staging
    current = world.records().current(AGENT, "production")
    assert current is not None and current["release"] == bad


def test_a_drill_on_a_target_that_cannot_remove_leaves_the_last_known_good_release(
    tmp_path: Path, server: FakeProvider, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "deploy.sh"
    script.write_text(f'#!/bin/sh\ncp "$1" {tmp_path}/runs-$KNOWNGOOD_ENV.json\n')
    script.chmod(0o755)
    world = make_world(tmp_path, server, target={"type": "command", "command": [str(script)]})
    assert kg(capsys, world, "deploy", AGENT)[0] == 0  # deployed, never checked
    good_change(world)
    [v2] = world.release()
    assert kg(capsys, world, "deploy", AGENT)[0] == 0
    code, out = kg(capsys, world, "drill", "rollback")
    assert code == 0 and out["drills"] == []
    assert out["skipped"] == [
        "shop has no known good release in production: a rollback drill starts from one"
    ]
    assert main(["drill", "rollback", AGENT, "--repo", str(world.repo)]) == 2
    assert "--check" in capsys.readouterr().err
    assert kg(capsys, world, "check", AGENT)[0] == 0  # v2 is known good now
    code, out = kg(capsys, world, "drill", "rollback", AGENT)
    assert code == 0, out
    [drill] = out["drills"]
    assert (drill["from_release"], drill["to_release"]) == (v2, "shop/v0.1.0")
    assert drill["left"] == v2
    assert any("cannot remove" in w for w in out["warnings"])
    assert json.loads((tmp_path / "runs-drill.json").read_text())["release"] == v2
