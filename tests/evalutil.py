"""An eval repository wired to the fake providers, and ``knowngood eval`` run in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Reply, ToolCallReply, last_user_text
from repoutil import BASE, write_repo

from pipeline.cli import main

KEYS = {
    "OPENAI_API_KEY": "sk-test-openai-0123456789",  # knowngood: allow-secret
    "ANTHROPIC_API_KEY": "sk-ant-test-0123456789",  # knowngood: allow-secret
    "GEMINI_API_KEY": "gemini-test-0123456789",  # knowngood: allow-secret
    "FAKE_KEY": "fake-key-0123456789",  # knowngood: allow-secret
}


def responder(wire: str, body: dict[str, Any]) -> Reply:
    text = last_user_text(wire, body)
    if "Where is" in text:
        return Reply(tool_calls=[ToolCallReply("lookup_order", {"order_id": "A1"})])
    if "refund" in text.lower():
        return Reply(
            tool_calls=[
                ToolCallReply("lookup_order", {"order_id": "A1"}),
                ToolCallReply("issue_refund", {"order_id": "A1", "amount": 5}),
            ]
        )
    return Reply(text="Hello from Acme!")


def make_repo(
    root: Path, server: FakeProvider, *, extra_eval: str = "", suites: dict[str, str] | None = None
) -> Path:
    files = dict(BASE)
    files["knowngood.yaml"] = (
        "version: 1\nproviders:\n"
        f"  local: {{model: openai/smol, api_base: '{server.openai_base}', api_key_env: FAKE_KEY}}\n"
        f"  openai: {{model: openai/gpt-4o-mini, api_base: '{server.openai_base}', api_key_env: OPENAI_API_KEY}}\n"
        f"  anthropic: {{model: anthropic/claude-3-5-haiku-20241022, api_base: '{server.anthropic_base}',"
        " api_key_env: ANTHROPIC_API_KEY}\n"
        f"  gemini: {{model: gemini/gemini-2.0-flash, api_base: '{server.gemini_base}', api_key_env: GEMINI_API_KEY}}\n"
        f"eval:\n  judge_provider: openai\n  retries: 3\n{extra_eval}"
    )
    files["agents/shop/agent.yaml"] = files["agents/shop/agent.yaml"].replace(
        "fallbacks: [openai]", "fallbacks: [openai, anthropic, gemini]"
    )
    files["evals/shop/pr.yaml"] = files["evals/shop/pr.yaml"].replace(
        "providers: [openai]", "providers: [openai, anthropic, gemini]"
    )
    files.update(suites or {})
    return write_repo(root, files)


def run(
    root: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any], str]:
    out = root / "results.json"
    code = main(["eval", "--repo", str(root), "--output", str(out), *args])
    err = capsys.readouterr().err
    return code, json.loads(out.read_text()) if out.exists() else {}, err


MAX_OUTPUT = 16384  # the test model's maximum output tokens in litellm's price table


def greedy(wire: str, body: dict[str, Any]) -> Reply:
    """The costliest answer an honest provider may give: every output token the request allows
    (200,000 when it sets no limit) and a prompt as long as its bytes."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens") or 200_000
    prompt = len(json.dumps(body.get("messages"), ensure_ascii=False).encode())
    return Reply(text="Hello from Acme!", prompt_tokens=prompt, completion_tokens=limit)
