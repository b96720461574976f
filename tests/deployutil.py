"""A deploy world: a bare remote, the maintainers' clone with the ``shop`` agent released, a
directory deploy target, and ``knowngood`` run in-process against it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Reply
from gitutil import clone, git, make_remote
from repoutil import BASE, write_repo

from pipeline.cli import main
from pipeline.git import Git
from pipeline.records import RecordStore
from pipeline.release import create_releases

AGENT = "shop"
KEYS = {
    "FAKE_KEY": "fake-key-0123456789",  # knowngood: allow-secret
    "OPENAI_API_KEY": "sk-test-openai-0123456789",  # knowngood: allow-secret
}
PROMPT = "agents/shop/prompts/system.md"
FRENCH = (
    "You work for {{ company }}.\nYou are talking to {{ customer }}.\nAlways answer in French.\n"
)


def responder(wire: str, body: dict[str, Any]) -> Reply:
    """Answers as the deployed system prompt says: in French when told to, else as the company."""
    messages = body.get("messages") or []
    system = (
        str(messages[0].get("content")) if messages and messages[0].get("role") == "system" else ""
    )
    if "French" in system:
        return Reply(text="Bonjour ! Comment puis-je vous aider ?")
    company = re.search(r"work for ([\w ]+?)\.", system)
    return Reply(text=f"Hello from {company.group(1) if company else 'nowhere'}! How can I help?")


def settings_yaml(server: FakeProvider, target: dict[str, Any], extra: str = "") -> str:
    base = server.openai_base
    return (
        "version: 1\nproviders:\n"
        f"  local: {{model: openai/smol, api_base: '{base}', api_key_env: FAKE_KEY}}\n"
        f"  openai: {{model: openai/gpt-4o-mini, api_base: '{base}', api_key_env: OPENAI_API_KEY}}\n"
        "eval:\n  judge_provider: openai\n  retries: 0\n"
        f"deploy:\n  target: {json.dumps(target)}\n  environments: [staging, production]\n"
        "revert:\n  auto: true\n  max_per_day: 3\n  notify_webhook_env: KNOWNGOOD_WEBHOOK_URL\n"
        + extra
    )


@dataclass
class World:
    tmp: Path
    server: FakeProvider
    remote: Path
    repo: Path  # the maintainers' clone: merges, releases and deploys run here
    target: Path  # the directory deploy target, shared by every clone

    @property
    def git(self) -> Git:
        return Git(self.repo)

    def merge(self, branch: str, files: dict[str, str], message: str, *, number: int = 7) -> str:
        """A pull request from another clone, merged into main with a merge commit; pushed."""
        dev = self.tmp / f"dev-{branch}"
        if not dev.exists():
            clone(self.remote, dev)
        git(dev, "fetch", "-q", "origin")
        git(dev, "checkout", "-q", "-B", branch, "origin/main")
        write_repo(dev, {**files})
        git(dev, "add", "-A")
        git(dev, "commit", "-qm", f"{branch}: change")
        git(dev, "push", "-q", "origin", branch)
        git(self.repo, "fetch", "-q", "origin")
        git(
            self.repo,
            "merge",
            "-q",
            "--no-ff",
            f"origin/{branch}",
            "-m",
            f"Merge pull request #{number} from dev/{branch}\n\n{message}",
        )
        git(self.repo, "push", "-q", "origin", "main")
        return git(self.repo, "rev-parse", "HEAD").strip()

    def release(self) -> list[str]:
        return create_releases(self.git, self.repo, push=True).created

    def current(self, env: str = "production") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.target / env / AGENT / "current.json").read_text())
        return data

    def records(self) -> RecordStore:
        """The records as any other clone sees them: a fresh clone of the remote."""
        fresh = self.tmp / f"reader-{len(list(self.tmp.glob('reader-*')))}"
        clone(self.remote, fresh)
        return RecordStore(Git(fresh))

    def remote_main(self) -> str:
        return git(self.remote, "rev-parse", "main").strip()


def kg(capsys: pytest.CaptureFixture[str], world: World, *args: str) -> tuple[int, dict[str, Any]]:
    code = main([*args, "--repo", str(world.repo), "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip() else {}


def make_world(
    tmp: Path, server: FakeProvider, *, target: dict[str, Any] | None = None, extra: str = ""
) -> World:
    remote = make_remote(tmp)
    repo = clone(remote, tmp / "maintainer")
    deployments = tmp / "deployments"
    files: dict[str, str | None] = dict(BASE)
    files["knowngood.yaml"] = settings_yaml(
        server, target or {"type": "directory", "path": str(deployments)}, extra
    )
    files[".gitignore"] = ".knowngood/\n"
    write_repo(repo, files)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "shop agent")
    git(repo, "push", "-q", "origin", "main")
    world = World(tmp, server, remote, repo, deployments)
    assert world.release() == ["shop/v0.1.0"]
    return world


def good_change(world: World, company: str = "Acme Corp", number: int = 8) -> str:
    """A harmless release: the production overlay names the company differently."""
    return world.merge(
        f"rename-{number}",
        {
            "agents/shop/environments/production.yaml": f"model:\n  params: {{temperature: 0}}\nprompt:\n  vars: {{company: {company}}}\n"
        },
        "Rename the company",
        number=number,
    )
