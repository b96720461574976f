"""The one "validate this revision or raise with its first errors" that eval, bundle and release use."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import CheckFailed, ConfigError
from pipeline.validate import valid_repo

AGENT = "name: {name}\ndescription: d\nmodel: {{provider: {provider}}}\nprompt: {{system: prompts/system.md}}\n"


def write(root: Path, agents: int, provider: str) -> Path:
    (root / "knowngood.yaml").write_text("version: 1\nproviders:\n  local: {model: openai/x}\n")
    for i in range(agents):
        agent = root / "agents" / f"bot{i}"
        (agent / "prompts").mkdir(parents=True)
        (agent / "prompts" / "system.md").write_text("You help.\n")
        (agent / "agent.yaml").write_text(AGENT.format(name=f"bot{i}", provider=provider))
    return root


def test_a_valid_repository_is_built(tmp_path: Path) -> None:
    repo = valid_repo(write(tmp_path, 2, "local"), "x does not validate", hint="h")
    assert sorted(repo.agents) == ["bot0", "bot1"]


def test_the_first_errors_are_listed_and_the_rest_counted(tmp_path: Path) -> None:
    root = write(tmp_path, 4, "nowhere")
    with pytest.raises(ConfigError) as info:
        valid_repo(root, "commit 1a2b does not validate", after="; nothing was tagged", hint="fix")
    lines = info.value.message.splitlines()
    assert lines[0] == "commit 1a2b does not validate (4 errors); nothing was tagged:"
    assert lines[1].startswith("  agents/bot0/agent.yaml:3:9: $.model.provider: provider 'nowhere'")
    assert len(lines) == 5 and info.value.hint == "fix"
    with pytest.raises(CheckFailed) as short:
        valid_repo(root, "the repository does not validate", hint="h", error=CheckFailed, show=3)
    assert short.value.message.splitlines()[1:] == [*lines[1:4], "  ... and 1 more"]
