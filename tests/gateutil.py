"""A gate project: a clone of a bare remote with agents ``shop`` and ``desk`` on ``main`` and a
feature branch checked out, a deterministic model for it, and ``knowngood gate`` run in-process."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Reply, ToolCallReply, last_user_text
from gitutil import clone, commit_all, git, make_remote
from repoutil import BASE, write_repo

from pipeline.cli import main
from pipeline.schemas import validator

PR_SUITE = """\
agent: shop
vars: {customer: Ann}
cases:
  - id: hello
    input: Hi
    expect:
      - icontains: acme
  - id: tool
    input: Where is A1?
    expect:
      - tool_call: {name: lookup_order, arguments: {order_id: A1}}
"""
DESK = {
    "agents/desk/agent.yaml": (
        "name: desk\ndescription: The help desk.\nmodel:\n  provider: openai\n"
        "prompt:\n  system: prompts/system.md\n  vars: {company: Acme}\ntools: []\n"
    ),
    "agents/desk/prompts/system.md": "You work for {{ company }}. You run the help desk.\n",
    "evals/desk/pr.yaml": (
        "agent: desk\ncases:\n  - id: hello\n    input: Hi\n    expect:\n      - icontains: acme\n"
    ),
}


def responder(wire: str, body: dict[str, Any]) -> Reply:
    """A deterministic model: answers from the system prompt, calls lookup_order when offered."""
    system = str(body["messages"][0]["content"])
    user = last_user_text(wire, body)
    tools = [t["function"]["name"] for t in body.get("tools") or []]
    if "Where is" in user:
        if "lookup_order" in tools:
            return Reply(tool_calls=[ToolCallReply("lookup_order", {"order_id": "A1"})])
        return Reply(text="I cannot look orders up.")
    found = re.search(r"You work for ([^.]+)\.", system)
    text = f"Hello from {found.group(1) if found else 'nowhere'}!"
    if "say goodbye" in system.lower():
        text += " Goodbye!"
    return Reply(text=text)


def files(
    server: FakeProvider, *, fallbacks: str = "[]", suite: str = PR_SUITE, config: str = ""
) -> dict[str, str | None]:
    out: dict[str, str | None] = dict(BASE)
    out["knowngood.yaml"] = (
        "version: 1\nproviders:\n"
        f"  openai: {{model: openai/gpt-4o-mini, api_base: '{server.openai_base}', api_key_env: OPENAI_API_KEY}}\n"
        f"  anthropic: {{model: anthropic/claude-3-5-haiku-20241022, api_base: '{server.anthropic_base}',"
        " api_key_env: ANTHROPIC_API_KEY}\n"
        "eval:\n  retries: 0\n" + config
    )
    out["agents/shop/agent.yaml"] = str(out["agents/shop/agent.yaml"]).replace(
        "provider: local\n  fallbacks: [openai]", f"provider: openai\n  fallbacks: {fallbacks}"
    )
    out["agents/shop/prompts/system.md"] = (
        "You work for {{ company }}.\nYou are talking to {{ customer }}.\n"
    )
    out["evals/shop/pr.yaml"] = suite
    out["evals/shop/smoke.yaml"] = str(out["evals/shop/smoke.yaml"])
    out.update(DESK)
    out[".gitignore"] = ".knowngood/\n"
    return out


class Project:
    """A clone of a bare remote: ``main`` pushed, work happens on a feature branch."""

    def __init__(self, tmp: Path, server: FakeProvider, *, sub: str = "", **kw: Any) -> None:
        self.remote = make_remote(tmp)
        self.top = clone(self.remote, tmp / "work")
        self.root = self.top / sub if sub else self.top
        write_repo(self.root, files(server, **kw))
        self.base = commit_all(self.top, "agents")
        git(self.top, "push", "-q", "origin", "main")
        git(self.top, "checkout", "-q", "-b", "feature")

    def edit(self, rel: str, old: str, new: str) -> None:
        path = self.root / rel
        text = path.read_text()
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1))

    def commit(self, message: str = "change") -> str:
        return commit_all(self.top, message)


def gate(
    p: Project, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], str, str]:
    report = p.top.parent / "gate.json"
    report.unlink(missing_ok=True)
    code = main(["gate", "--repo", str(p.root), "--base", "main", "--output", str(report), *args])
    captured = capsys.readouterr()
    data = json.loads(report.read_text()) if report.exists() else {}
    if data:
        errors = list(validator("gate-report").iter_errors(data))
        assert not errors, errors[0]
    return code, data, captured.out, captured.err


def rows(data: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """The gate report's cases as ``agent/suite/case@provider: (base, head, comparison)``."""
    return {
        f"{c['agent']}/{c['suite']}/{c['case']}@{c['provider']}": (
            c["base"],
            c["head"],
            c["comparison"],
        )
        for c in data["cases"]
    }
