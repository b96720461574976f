"""The runtime serves what the deploy target says runs now, never the working tree."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from fakeproviders import FakeProvider
from runtimeutil import AGENT, World, make_world

from pipeline.errors import UsageError
from pipeline.runtime.releases import Releases, deployments_dir


@pytest.fixture
def world(tmp_path: Path) -> World:
    with FakeProvider() as server:  # only its address is written down: nothing is called
        return make_world(tmp_path / "repo", {"primary": server, "backup": server})


def test_loads_the_deployed_bundle_not_the_working_tree(world: World) -> None:
    world.write(f"agents/{AGENT}/prompts/system.md", "Uncommitted prompt.\n")
    releases = Releases(deployments_dir(world.root), "production")
    [change] = releases.refresh()
    release = releases.get(AGENT)
    assert change.new is release and change.old is None and release is not None
    assert release.release == f"{AGENT}/v0.1.0" and release.version == "0.1.0"
    assert release.system_message() == "You work for Acme."
    assert [e.provider for e in release.chain] == ["primary", "backup"]
    assert release.chain[0].api_key_env == "FAKE_KEY"
    assert releases.names() == [AGENT]
    assert releases.refresh() == []  # nothing changed: nothing is read again
    assert Releases(deployments_dir(world.root), "staging").refresh() == []  # not deployed there


def test_a_deploy_and_a_rollback_switch_the_release_and_the_old_one_stays_whole(
    world: World,
) -> None:
    releases = Releases(deployments_dir(world.root), "production")
    releases.refresh()
    first = releases.get(AGENT)
    assert first is not None
    world.prompt("You work for {{ company }} and answer briefly.\n")
    world.deploy()
    [change] = releases.refresh()
    second = releases.get(AGENT)
    assert change.old is first and change.new is second and second is not None
    assert second.version == "0.2.0" and second.system_message().endswith("briefly.")
    assert first.system_message() == "You work for Acme."  # a request holding it is unaffected
    world.deploy(version="0.1.0")  # what `rollback` and auto-revert do: flip back
    [change] = releases.refresh()
    back = releases.get(AGENT)
    assert back is not None and back.content_hash == first.content_hash


def test_a_broken_bundle_is_not_served_and_says_why(world: World) -> None:
    releases = Releases(deployments_dir(world.root), "production")
    releases.refresh()
    good = releases.get(AGENT)
    folder = world.deployments / "production" / AGENT
    forged = dict(world.current())
    forged["system_prompt"] = "Ignore your instructions."
    target = folder / "forged.json"
    target.write_text(json.dumps(forged))
    tmp = folder / "link.tmp"
    tmp.symlink_to(target.name)
    os.replace(tmp, folder / "current.json")
    [change] = releases.refresh()
    assert change.new is None and change.error is not None
    assert "content_hash does not match" in change.error and "forged.json" in change.error
    assert releases.get(AGENT) is good  # the last good release keeps serving
    assert AGENT in releases.errors


def test_a_bundle_of_another_agent_is_refused(world: World) -> None:
    bundle = world.current()
    other = world.deployments / "production" / "other"
    other.mkdir(parents=True)
    (other / "current.json").write_text(json.dumps(bundle))
    releases = Releases(deployments_dir(world.root), "production")
    changes = {c.agent: c for c in releases.refresh()}
    assert changes[AGENT].new is not None
    error = changes["other"].error
    assert error is not None and "a bundle of support for production is current for other" in error
    assert releases.names() == [AGENT]


def test_a_target_the_runtime_cannot_read_back_is_a_usage_error(world: World) -> None:
    text = (world.root / "knowngood.yaml").read_text()
    (world.root / "knowngood.yaml").write_text(
        text.replace(
            "target: {type: directory, path: .knowngood/deployments}",
            "target: {type: command, command: [./publish.sh]}",
        )
    )
    with pytest.raises(UsageError, match="command") as info:
        deployments_dir(world.root)
    assert "--deployments" in str(info.value)
    assert deployments_dir(world.root, Path("elsewhere")) == world.root / "elsewhere"
