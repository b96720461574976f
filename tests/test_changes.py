"""``knowngood diff``: semantic diff of two revisions, tool-schema compatibility, semver bumps.

Every test builds its own small repository in a real temporary git repo (tests/gitutil.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from gitutil import commit_all, init_repo

from pipeline.changes import (
    DiffReport,
    affected_agents,
    agent_bump,
    compare_schema,
    compare_tools,
    diff_revisions,
)
from pipeline.cli import main
from pipeline.git import Git
from pipeline.report.diff import markdown, text, to_json
from pipeline.schemas import validator

SETTINGS = {
    "version": 1,
    "providers": {
        "openai": {"model": "openai/gpt-4o-mini"},
        "local": {"model": "openai/smollm2-135m-instruct"},
    },
}
LOOKUP_ORDER: dict[str, Any] = {
    "name": "lookup_order",
    "description": "Look up an order by its id.",
    "parameters": {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "description": "Like A1001."},
            "channel": {"type": "string", "enum": ["web", "phone", "email"]},
        },
        "required": ["order_id"],
    },
}
CHARGE: dict[str, Any] = {
    "name": "charge",
    "description": "Charge a card.",
    "parameters": {
        "type": "object",
        "properties": {"amount": {"type": "number"}},
        "required": ["amount"],
    },
}


class Repo:
    """A knowngood repository at ``root`` inside the git repository at ``top``."""

    def __init__(self, top: Path, root: Path) -> None:
        self.top = top
        self.root = root

    def write(self, rel: str, content: Any) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(content, str):
            content = (
                json.dumps(content, indent=2) if rel.endswith(".json") else yaml.safe_dump(content)
            )
        path.write_text(content, encoding="utf-8")

    def edit_json(self, rel: str, change: Any) -> None:
        data = json.loads((self.root / rel).read_text(encoding="utf-8"))
        change(data)
        self.write(rel, data)

    def delete(self, rel: str) -> None:
        path = self.root / rel
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()

    def commit(self, message: str = "change") -> str:
        return commit_all(self.top, message)

    def diff(self, base: str = "HEAD~1", head: str = "HEAD") -> DiffReport:
        return diff_revisions(Git(self.root), self.root, base, head)

    def add_agent(
        self, name: str, tools: dict[str, Any] | None = None, prompt: str | None = None
    ) -> None:
        self.write(
            f"agents/{name}/agent.yaml",
            {
                "name": name,
                "description": f"The {name} agent.",
                "model": {
                    "provider": "openai",
                    "fallbacks": ["local"],
                    "params": {"temperature": 0},
                },
                "prompt": {"system": "prompts/system.md", "vars": {"company": "Acme"}},
            },
        )
        self.write(
            f"agents/{name}/prompts/system.md",
            prompt or f"You are the {name} agent of {{{{ company }}}}.\nBe brief.\n",
        )
        for file, tool in (tools or {}).items():
            self.write(f"agents/{name}/tools/{file}", tool)
        self.write(
            f"evals/{name}/smoke.yaml",
            {
                "agent": name,
                "cases": [{"id": "hello", "input": "Hi", "expect": [{"contains": "Hi"}]}],
            },
        )


def make(tmp_path: Path, subfolder: str = "") -> Repo:
    top = init_repo(tmp_path / "repo")
    root = top / subfolder if subfolder else top
    repo = Repo(top, root)
    repo.write("knowngood.yaml", SETTINGS)
    repo.add_agent("support", {"lookup_order.json": LOOKUP_ORDER})
    repo.add_agent("billing", {"charge.yaml": CHARGE})
    repo.write("schemas/agent.schema.json", {"type": "object"})
    repo.commit("base")
    return repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return make(tmp_path)


def changes_of(report: DiffReport, agent: str) -> list[tuple[str, str]]:
    return [(c.change, c.kind) for c in report.agents[agent].tool_changes]


# -- bumps from tool-schema changes -----------------------------------------------------------


def test_removing_a_required_property_is_major(repo: Repo) -> None:
    def drop(t: dict[str, Any]) -> None:
        del t["parameters"]["properties"]["order_id"]
        t["parameters"]["required"] = []

    repo.edit_json("agents/support/tools/lookup_order.json", drop)
    repo.commit()
    report = repo.diff()
    support = report.agents["support"]
    assert support.bump == "major"
    assert support.status == "modified"
    assert [c.message for c in support.tool_changes] == [
        "lookup_order: property 'order_id' removed (breaking)"
    ]
    assert support.tool_changes[0].path == "$.parameters.properties.order_id"
    assert list(report.agents) == ["support"]  # billing is untouched


def test_adding_an_optional_property_is_minor(repo: Repo) -> None:
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"]["properties"].update(email={"type": "string"}),
    )
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump == "minor"
    assert changes_of(repo.diff(), "support") == [("property.added", "additive")]


def test_description_only_change_is_patch(repo: Repo) -> None:
    def describe(t: dict[str, Any]) -> None:
        t["description"] = "Find one order."
        t["parameters"]["properties"]["order_id"]["description"] = "Like A1001 or B2002."

    repo.edit_json("agents/support/tools/lookup_order.json", describe)
    repo.commit()
    report = repo.diff()
    assert report.agents["support"].bump == "patch"
    assert changes_of(report, "support") == [
        ("annotation", "cosmetic"),
        ("tool.description", "cosmetic"),
    ]


def test_enum_narrowed_is_major(repo: Repo) -> None:
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"]["properties"]["channel"].update(enum=["web", "phone"]),
    )
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump == "major"
    assert (
        support.tool_changes[0].message
        == "lookup_order: 'channel' enum value \"email\" removed (breaking)"
    )


def test_additional_properties_closed_is_major(repo: Repo) -> None:
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"].update(additionalProperties=False),
    )
    repo.commit()
    report = repo.diff()
    assert report.agents["support"].bump == "major"
    assert changes_of(report, "support") == [("additional-properties.closed", "breaking")]


def test_tools_are_matched_by_name_not_file(repo: Repo) -> None:
    repo.delete("agents/support/tools/lookup_order.json")
    repo.write("agents/support/tools/orders.yaml", LOOKUP_ORDER)
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.tool_changes == []
    assert support.bump is None
    assert {f.status for f in support.files} == {"added", "deleted"}


def test_tool_renamed_or_removed_is_major(repo: Repo) -> None:
    repo.edit_json("agents/support/tools/lookup_order.json", lambda t: t.update(name="find_order"))
    repo.write("agents/billing/tools/refund.json", {**CHARGE, "name": "refund"})
    repo.delete("agents/billing/tools/charge.yaml")
    repo.commit()
    report = repo.diff()
    assert report.agents["support"].bump == "major"
    assert (
        report.agents["support"].tool_changes[0].message
        == "lookup_order: renamed to 'find_order' (breaking)"
    )
    assert changes_of(report, "billing") == [
        ("tool.removed", "breaking"),
        ("tool.added", "additive"),
    ]


# -- prompt and config ------------------------------------------------------------------------


def test_prompt_wording_change_is_minor_with_rendered_diff(repo: Repo) -> None:
    repo.write(
        "agents/support/prompts/system.md",
        "You are the friendly support agent of {{ company }}.\nBe brief.\n",
    )
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump == "minor"
    assert "prompt changed" in support.reasons
    assert support.prompt_note is None
    assert support.prompt_diff == (
        "--- a/agents/support/prompts/system.md (rendered)\n"
        "+++ b/agents/support/prompts/system.md (rendered)\n"
        "@@ -1,2 +1,2 @@\n"
        "-You are the support agent of Acme.\n"
        "+You are the friendly support agent of Acme.\n"
        " Be brief.\n"
    )


def test_prompt_var_change_shows_in_the_rendered_prompt(repo: Repo) -> None:
    config = yaml.safe_load((repo.root / "agents/support/agent.yaml").read_text())
    config["prompt"]["vars"]["company"] = "Acme Corp"
    repo.write("agents/support/agent.yaml", config)
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump == "minor"
    assert "+You are the support agent of Acme Corp." in support.prompt_diff
    assert [c.message for c in support.config_diff["base"]] == [
        'prompt.vars.company: "Acme" -> "Acme Corp"'
    ]


def test_prompt_needing_case_vars_falls_back_to_the_template(repo: Repo) -> None:
    repo.write(
        "agents/support/prompts/system.md", "Hello {{ customer }}, you talk to {{ company }}.\n"
    )
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump == "minor"
    assert support.prompt_note is not None
    assert "'customer' is undefined" in support.prompt_note
    assert "raw template" in support.prompt_note
    assert "+Hello {{ customer }}, you talk to {{ company }}." in support.prompt_diff
    assert "(template)" in support.prompt_diff.splitlines()[0]


def test_model_params_change_is_minor_per_environment(repo: Repo) -> None:
    repo.write(
        "agents/support/environments/production.yaml", {"model": {"params": {"temperature": 0.2}}}
    )
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump == "minor"
    assert list(support.config_diff) == ["production"]
    change = support.config_diff["production"][0]
    assert (change.path, change.kind, change.old, change.new) == (
        "model.params.temperature",
        "changed",
        0,
        0.2,
    )


def test_fallback_list_is_reported_whole(repo: Repo) -> None:
    config = yaml.safe_load((repo.root / "agents/support/agent.yaml").read_text())
    config["model"]["fallbacks"] = []
    repo.write("agents/support/agent.yaml", config)
    repo.commit()
    support = repo.diff().agents["support"]
    messages = [c.message for c in support.config_diff["base"]]
    assert 'model.fallbacks: ["local"] -> []' in messages
    assert sorted(support.config_diff) == ["base", "production", "staging"]


def test_formatting_only_yaml_change_is_none(repo: Repo) -> None:
    path = repo.root / "agents/support/agent.yaml"
    path.write_text(
        "# the support agent\n" + path.read_text().replace(": ", ":   "), encoding="utf-8"
    )
    repo.commit()
    support = repo.diff().agents["support"]
    assert support.bump is None
    assert support.config_diff == {}
    assert any(r.startswith("formatting only") for r in support.reasons)


def test_agent_description_is_patch_and_suites_are_not_in_config(repo: Repo) -> None:
    config = yaml.safe_load((repo.root / "agents/billing/agent.yaml").read_text())
    config["description"] = "Charges cards."
    config["evals"] = {"pass_rate": 0.9}
    repo.write("agents/billing/agent.yaml", config)
    repo.commit()
    billing = repo.diff().agents["billing"]
    assert billing.bump == "patch"


# -- which agents are affected ----------------------------------------------------------------


def test_knowngood_yaml_change_affects_every_agent(repo: Repo) -> None:
    settings = {**SETTINGS, "eval": {"repeat": 3}}
    repo.write("knowngood.yaml", settings)
    repo.commit()
    assert affected_agents(Git(repo.root), repo.root, "HEAD~1") == {
        "billing": ["knowngood.yaml"],
        "support": ["knowngood.yaml"],
    }
    report = repo.diff()
    assert [f.path for f in report.repo_wide] == ["knowngood.yaml"]
    assert {n: (a.status, a.bump) for n, a in report.agents.items()} == {
        "billing": ("affected", None),
        "support": ("affected", None),
    }


def test_provider_change_in_knowngood_yaml_is_minor_for_agents_using_it(repo: Repo) -> None:
    repo.add_agent("triage")
    repo.commit("add triage")
    config = yaml.safe_load((repo.root / "agents/triage/agent.yaml").read_text())
    config["model"] = {"provider": "openai"}
    repo.write("agents/triage/agent.yaml", config)
    repo.commit("triage: openai only")
    settings = json.loads(json.dumps(SETTINGS))
    settings["providers"]["local"]["model"] = "openai/qwen2.5-0.5b-instruct"
    repo.write("knowngood.yaml", settings)
    repo.commit()
    report = repo.diff()
    assert {n: (a.status, a.bump) for n, a in report.agents.items()} == {
        "billing": ("affected", "minor"),
        "support": ("affected", "minor"),
        "triage": ("affected", None),
    }
    change = report.agents["support"].config_diff["base"][0]
    assert change.path == "providers.local.model"


def test_suite_change_affects_only_its_agent_with_no_bump(repo: Repo) -> None:
    repo.write("evals/billing/regression.yaml", {"agent": "billing", "cases": []})
    repo.commit()
    assert affected_agents(Git(repo.root), repo.root, "HEAD~1") == {
        "billing": ["evals/billing/regression.yaml"]
    }
    report = repo.diff()
    assert list(report.agents) == ["billing"]
    billing = report.agents["billing"]
    assert (billing.status, billing.bump) == ("modified", None)
    assert billing.reasons == ["eval suites changed (affects evals, not the release)"]


def test_schemas_and_judge_prompts_are_repo_wide(repo: Repo) -> None:
    repo.write("schemas/agent.schema.json", {"type": "object", "title": "x"})
    repo.write("evals/_judge/v1.md", "Grade it.\n")
    repo.write("README.md", "hello\n")
    repo.commit()
    report = repo.diff()
    assert [f.path for f in report.repo_wide] == ["evals/_judge/v1.md", "schemas/agent.schema.json"]
    assert [f.path for f in report.other] == ["README.md"]
    assert all(a.bump is None and a.status == "affected" for a in report.agents.values())
    assert sorted(report.agents) == ["billing", "support"]


def test_added_and_removed_agents(repo: Repo) -> None:
    repo.add_agent("triage")
    repo.delete("agents/billing")
    repo.commit()
    report = repo.diff()
    assert {n: (a.status, a.bump) for n, a in report.agents.items()} == {
        "billing": ("removed", None),
        "triage": ("added", "minor"),
    }
    git = Git(repo.root)
    assert sorted(affected_agents(git, repo.root, "HEAD~1")) == ["triage"]
    assert sorted(affected_agents(git, repo.root, "HEAD~1", include_removed=True)) == [
        "billing",
        "triage",
    ]


def test_agent_bump_for_release(repo: Repo) -> None:
    base = Git(repo.root).head()
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"]["properties"]["channel"].update(
            enum=["web", "phone", "email", "chat"]
        ),
    )
    repo.commit()
    repo.write("evals/billing/more.yaml", {"agent": "billing", "cases": []})
    repo.commit()
    git = Git(repo.root)
    assert agent_bump(git, repo.root, "support", base) == "minor"
    assert agent_bump(git, repo.root, "billing", base) is None
    assert agent_bump(git, repo.root, "nobody", base) is None


# -- subfolder repositories, malformed files, revisions ---------------------------------------


def test_knowngood_repo_in_a_subfolder(tmp_path: Path) -> None:
    repo = make(tmp_path, subfolder="platform/agents")
    (repo.top / "service.py").write_text("print('unrelated')\n")
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"]["properties"]["order_id"].update(maxLength=12),
    )
    repo.commit()
    report = repo.diff()
    assert list(report.agents) == ["support"]
    assert report.other == []  # service.py is outside the knowngood root
    support = report.agents["support"]
    assert [f.path for f in support.files] == ["agents/support/tools/lookup_order.json"]
    assert (
        support.tool_changes[0].message == "lookup_order: 'order_id' maxLength 12 added (breaking)"
    )
    # a Git opened at the top level works too
    assert affected_agents(Git(repo.top), repo.root, "HEAD~1") == {
        "support": ["agents/support/tools/lookup_order.json"]
    }


def test_malformed_files_on_the_base_side_do_not_crash(repo: Repo) -> None:
    repo.write("agents/support/tools/lookup_order.json", '{"name": "lookup_order", ')
    repo.write("agents/billing/agent.yaml", "name: billing\nmodel: [unclosed\n")
    repo.commit("break things")
    repo.write("agents/support/tools/lookup_order.json", LOOKUP_ORDER)
    repo.add_agent("billing", {"charge.yaml": CHARGE})
    repo.commit("fix them")
    report = repo.diff()
    support, billing = report.agents["support"], report.agents["billing"]
    assert [(p.side, p.path) for p in support.problems] == [
        ("base", "agents/support/tools/lookup_order.json")
    ]
    assert support.problems[0].message.startswith("invalid JSON")
    assert support.tool_changes == []  # an unreadable tool is not "removed"
    assert support.bump == "minor"
    assert [(p.side, p.path) for p in billing.problems] == [("base", "agents/billing/agent.yaml")]
    assert billing.problems[0].line == 3  # where libyaml noticed
    assert billing.bump == "minor"
    validator("diff-report").validate(to_json(report))
    assert "problem: base: agents/billing/agent.yaml:3: invalid YAML" in click.unstyle(text(report))


def test_malformed_knowngood_yaml_is_a_repo_wide_problem(repo: Repo) -> None:
    repo.write("knowngood.yaml", "version: 1\nproviders: {openai: \n")
    repo.commit()
    report = repo.diff()
    assert [(p.side, p.path) for p in report.problems] == [("head", "knowngood.yaml")]
    assert all(a.bump is None for a in report.agents.values())


def test_binary_and_non_utf8_files_are_problems(repo: Repo) -> None:
    (repo.root / "agents/support/prompts/system.md").write_bytes(b"caf\xe9 {{ company }}\n")
    repo.commit()
    support = repo.diff().agents["support"]
    assert [p.message for p in support.problems] == ["file is not valid UTF-8 (byte 0xe9)"]
    assert support.bump == "minor"


def test_unknown_revision_exits_2_with_a_hint(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["diff", "no-such-branch", "--repo", str(repo.root)]) == 2
    err = capsys.readouterr().err
    assert "unknown revision 'no-such-branch'" in err
    assert "fetch-depth: 0" in err
    assert main(["diff", "HEAD", "nope", "--repo", str(repo.root)]) == 2
    assert "unknown revision 'nope'" in capsys.readouterr().err


def test_not_a_git_repository_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "knowngood.yaml").write_text(yaml.safe_dump(SETTINGS))
    assert main(["diff", "HEAD", "--repo", str(tmp_path)]) == 2
    assert "not inside a git repository" in capsys.readouterr().err


# -- the command and its formats --------------------------------------------------------------


def test_cli_json_matches_the_schema(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"]["properties"].pop("channel"),
    )
    repo.write("agents/support/prompts/system.md", "You help {{ company }} customers.\n")
    repo.write(
        "agents/billing/environments/staging.yaml", {"model": {"params": {"temperature": 1}}}
    )
    repo.write("knowngood.yaml", {**SETTINGS, "eval": {"repeat": 2}})
    repo.commit()
    assert main(["diff", "HEAD~1", "--repo", str(repo.root), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    validator("diff-report").validate(out)
    assert out["version"] == 1
    assert out["base"]["rev"] == "HEAD~1"
    support = out["agents"]["support"]
    assert support["bump"] == "major"
    assert support["tool_changes"] == [
        {
            "tool": "lookup_order",
            "path": "$.parameters.properties.channel",
            "kind": "breaking",
            "change": "property.removed",
            "message": "lookup_order: property 'channel' removed (breaking)",
        }
    ]
    assert out["agents"]["billing"]["bump"] == "minor"
    assert list(out["agents"]["billing"]["config_diff"]) == ["staging"]


def test_cli_text_and_markdown(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"].update(required=["order_id", "channel"]),
    )
    repo.commit()
    assert main(["diff", "HEAD~1", "HEAD", "--repo", str(repo.root)]) == 0
    out = capsys.readouterr().out
    assert "support: modified, bump major" in out
    assert "lookup_order: property 'channel' is now required (breaking)" in out
    assert "\x1b[" not in out  # no colour when not a terminal
    assert main(["diff", "HEAD~1", "--repo", str(repo.root), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert "<details>" in md and "<summary><b>support</b>: modified, major</summary>" in md
    assert "| support | modified | **major** |" in md


def test_both_formats_name_the_direct_comparison(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    """BASE's tree against HEAD's (``git diff BASE HEAD``), not against their merge base: a
    change made on BASE after HEAD branched off shows too, so both formats say ``..``."""
    top = str(repo.top)
    subprocess.run(["git", "-C", top, "branch", "side"], check=True)
    repo.edit_json(
        "agents/support/tools/lookup_order.json",
        lambda t: t["parameters"].update(required=["order_id", "channel"]),
    )
    repo.commit("on the base branch only")
    subprocess.run(["git", "-C", top, "checkout", "-q", "side"], check=True)
    assert main(["diff", "main", "--repo", str(repo.root)]) == 0
    out = capsys.readouterr().out
    assert "knowngood diff main..HEAD (" in out
    assert "support: modified" in out  # base's own change: a merge-base diff would not show it
    assert main(["diff", "main", "--repo", str(repo.root), "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("### knowngood diff `main`..`HEAD`\n") and "..." not in md
    assert "| support | modified |" in md


def test_no_changes(repo: Repo) -> None:
    report = repo.diff("HEAD", "HEAD")
    assert report.agents == {}
    assert "no agent affected" in text(report)
    assert "No agent affected." in markdown(report)


def test_process_count_does_not_grow_with_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batched git: a fixed number of processes whatever the number of agents."""
    repo = make(tmp_path)
    for i in range(30):
        repo.add_agent(f"agent{i:02d}", {"t.json": {**CHARGE, "name": f"tool{i}"}})
    repo.commit("many agents")
    repo.write("agents/agent07/prompts/system.md", "Different.\n")
    repo.write("knowngood.yaml", {**SETTINGS, "eval": {"repeat": 2}})
    repo.commit()
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(*args: Any, **kwargs: Any) -> Any:
        calls.append(list(args[0]))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counting_run)
    report = repo.diff()
    assert len(report.agents) == 32
    assert report.agents["agent07"].bump == "minor"
    assert [c[1] for c in calls] == ["rev-parse", "diff", "ls-tree", "ls-tree", "cat-file"]


# -- the tool-schema classifier, table-driven -------------------------------------------------

S = "string"
OBJ = "object"

CLASSIFIER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[tuple[str, str, str]]]] = [
    # (id, old parameters, new parameters, [(json path, change, kind)])
    ("identical", {"type": OBJ}, {"type": OBJ}, []),
    (
        "property removed",
        {"type": OBJ, "properties": {"a": {"type": S}}},
        {"type": OBJ, "properties": {}},
        [("$.parameters.properties.a", "property.removed", "breaking")],
    ),
    (
        "new required property",
        {"type": OBJ, "properties": {}},
        {"type": OBJ, "properties": {"a": {"type": S}}, "required": ["a"]},
        [("$.parameters.properties.a", "property.added-required", "breaking")],
    ),
    (
        "new optional property",
        {"type": OBJ, "properties": {}},
        {"type": OBJ, "properties": {"a": {"type": S}}},
        [("$.parameters.properties.a", "property.added", "additive")],
    ),
    (
        "existing property becomes required",
        {"type": OBJ, "properties": {"a": {}}},
        {"type": OBJ, "properties": {"a": {}}, "required": ["a"]},
        [("$.parameters.properties.a", "property.now-required", "breaking")],
    ),
    (
        "required property becomes optional",
        {"type": OBJ, "properties": {"a": {}}, "required": ["a"]},
        {"type": OBJ, "properties": {"a": {}}},
        [("$.parameters.properties.a", "property.now-optional", "additive")],
    ),
    (
        "nullable dropped",
        {"properties": {"a": {"type": [S, "null"]}}},
        {"properties": {"a": {"type": S}}},
        [("$.parameters.properties.a.type", "type.narrowed", "breaking")],
    ),
    (
        "number to integer",
        {"properties": {"a": {"type": "number"}}},
        {"properties": {"a": {"type": "integer"}}},
        [("$.parameters.properties.a.type", "type.narrowed", "breaking")],
    ),
    (
        "integer to number",
        {"properties": {"a": {"type": "integer"}}},
        {"properties": {"a": {"type": "number"}}},
        [("$.parameters.properties.a.type", "type.widened", "additive")],
    ),
    (
        "type made nullable",
        {"properties": {"a": {"type": S}}},
        {"properties": {"a": {"type": [S, "null"]}}},
        [("$.parameters.properties.a.type", "type.widened", "additive")],
    ),
    (
        "type swapped",
        {"properties": {"a": {"type": S}}},
        {"properties": {"a": {"type": "integer"}}},
        [("$.parameters.properties.a.type", "type.changed", "breaking")],
    ),
    (
        "type added to an untyped property",
        {"properties": {"a": {}}},
        {"properties": {"a": {"type": S}}},
        [("$.parameters.properties.a.type", "type.narrowed", "breaking")],
    ),
    (
        "gemini nullable dropped",
        {"properties": {"a": {"type": S, "nullable": True}}},
        {"properties": {"a": {"type": S}}},
        [("$.parameters.properties.a.type", "type.narrowed", "breaking")],
    ),
    (
        "enum value removed",
        {"properties": {"a": {"enum": ["x", "y"]}}},
        {"properties": {"a": {"enum": ["x"]}}},
        [("$.parameters.properties.a.enum", "enum.narrowed", "breaking")],
    ),
    (
        "enum widened",
        {"properties": {"a": {"enum": ["x"]}}},
        {"properties": {"a": {"enum": ["x", "y"]}}},
        [("$.parameters.properties.a.enum", "enum.widened", "additive")],
    ),
    (
        "enum added",
        {"properties": {"a": {"type": S}}},
        {"properties": {"a": {"type": S, "enum": ["x"]}}},
        [("$.parameters.properties.a.enum", "enum.added", "breaking")],
    ),
    (
        "enum reordered",
        {"properties": {"a": {"enum": ["x", "y"]}}},
        {"properties": {"a": {"enum": ["y", "x"]}}},
        [],
    ),
    (
        "minimum raised",
        {"properties": {"a": {"minimum": 0}}},
        {"properties": {"a": {"minimum": 1}}},
        [("$.parameters.properties.a.minimum", "bound.tightened", "breaking")],
    ),
    (
        "minimum lowered",
        {"properties": {"a": {"minimum": 1}}},
        {"properties": {"a": {"minimum": 0}}},
        [("$.parameters.properties.a.minimum", "bound.loosened", "additive")],
    ),
    (
        "maximum lowered",
        {"properties": {"a": {"maximum": 10}}},
        {"properties": {"a": {"maximum": 5}}},
        [("$.parameters.properties.a.maximum", "bound.tightened", "breaking")],
    ),
    (
        "maximum removed",
        {"properties": {"a": {"maximum": 10}}},
        {"properties": {"a": {}}},
        [("$.parameters.properties.a.maximum", "bound.loosened", "additive")],
    ),
    (
        "minLength added",
        {"properties": {"a": {"type": S}}},
        {"properties": {"a": {"type": S, "minLength": 3}}},
        [("$.parameters.properties.a.minLength", "bound.tightened", "breaking")],
    ),
    (
        "maxLength raised",
        {"properties": {"a": {"maxLength": 3}}},
        {"properties": {"a": {"maxLength": 30}}},
        [("$.parameters.properties.a.maxLength", "bound.loosened", "additive")],
    ),
    (
        "maxItems lowered",
        {"properties": {"a": {"type": "array", "maxItems": 5}}},
        {"properties": {"a": {"type": "array", "maxItems": 2}}},
        [("$.parameters.properties.a.maxItems", "bound.tightened", "breaking")],
    ),
    (
        "minItems raised",
        {"properties": {"a": {"minItems": 0}}},
        {"properties": {"a": {"minItems": 1}}},
        [("$.parameters.properties.a.minItems", "bound.tightened", "breaking")],
    ),
    (
        "pattern added",
        {"properties": {"a": {"type": S}}},
        {"properties": {"a": {"type": S, "pattern": "^A"}}},
        [("$.parameters.properties.a.pattern", "pattern.added", "breaking")],
    ),
    (
        "pattern changed",
        {"properties": {"a": {"pattern": "^A"}}},
        {"properties": {"a": {"pattern": "^[AB]"}}},
        [("$.parameters.properties.a.pattern", "pattern.changed", "breaking")],
    ),
    (
        "pattern removed",
        {"properties": {"a": {"pattern": "^A"}}},
        {"properties": {"a": {}}},
        [("$.parameters.properties.a.pattern", "pattern.removed", "additive")],
    ),
    (
        "additionalProperties closed",
        {"type": OBJ},
        {"type": OBJ, "additionalProperties": False},
        [("$.parameters.additionalProperties", "additional-properties.closed", "breaking")],
    ),
    (
        "additionalProperties true closed",
        {"type": OBJ, "additionalProperties": True},
        {"type": OBJ, "additionalProperties": False},
        [("$.parameters.additionalProperties", "additional-properties.closed", "breaking")],
    ),
    (
        "additionalProperties opened",
        {"type": OBJ, "additionalProperties": False},
        {"type": OBJ},
        [("$.parameters.additionalProperties", "additional-properties.opened", "additive")],
    ),
    (
        "descriptions only",
        {"properties": {"a": {"type": S, "description": "x"}}},
        {"properties": {"a": {"type": S, "description": "y", "title": "A", "examples": ["z"]}}},
        [("$.parameters.properties.a", "annotation", "cosmetic")],
    ),
    (
        "nested object property removed",
        {
            "properties": {
                "addr": {"type": OBJ, "properties": {"zip": {"type": S}, "city": {"type": S}}}
            }
        },
        {"properties": {"addr": {"type": OBJ, "properties": {"city": {"type": S}}}}},
        [("$.parameters.properties.addr.properties.zip", "property.removed", "breaking")],
    ),
    (
        "nested object gains a required property",
        {"properties": {"addr": {"type": OBJ, "properties": {}}}},
        {
            "properties": {
                "addr": {"type": OBJ, "properties": {"zip": {"type": S}}, "required": ["zip"]}
            }
        },
        [("$.parameters.properties.addr.properties.zip", "property.added-required", "breaking")],
    ),
    (
        "array items narrowed",
        {"properties": {"ids": {"type": "array", "items": {"type": [S, "integer"]}}}},
        {"properties": {"ids": {"type": "array", "items": {"type": S}}}},
        [("$.parameters.properties.ids.items.type", "type.narrowed", "breaking")],
    ),
    (
        "array of objects loses an item property",
        {
            "properties": {
                "lines": {
                    "type": "array",
                    "items": {"type": OBJ, "properties": {"sku": {}, "qty": {}}},
                }
            }
        },
        {
            "properties": {
                "lines": {"type": "array", "items": {"type": OBJ, "properties": {"sku": {}}}}
            }
        },
        [("$.parameters.properties.lines.items.properties.qty", "property.removed", "breaking")],
    ),
    (
        "array items enum widened",
        {"properties": {"tags": {"items": {"enum": ["a"]}}}},
        {"properties": {"tags": {"items": {"enum": ["a", "b"]}}}},
        [("$.parameters.properties.tags.items.enum", "enum.widened", "additive")],
    ),
    (
        "uniqueItems required",
        {"properties": {"a": {"type": "array"}}},
        {"properties": {"a": {"type": "array", "uniqueItems": True}}},
        [("$.parameters.properties.a.uniqueItems", "bound.tightened", "breaking")],
    ),
    (
        "const added",
        {"properties": {"a": {"type": S}}},
        {"properties": {"a": {"type": S, "const": "x"}}},
        [("$.parameters.properties.a.const", "const.added", "breaking")],
    ),
    (
        "format removed",
        {"properties": {"a": {"type": S, "format": "email"}}},
        {"properties": {"a": {"type": S}}},
        [("$.parameters.properties.a.format", "format.removed", "additive")],
    ),
    (
        "anyOf gains an alternative",
        {"properties": {"a": {"anyOf": [{"type": S}]}}},
        {"properties": {"a": {"anyOf": [{"type": S}, {"type": "null"}]}}},
        [("$.parameters.properties.a.anyOf", "anyOf.widened", "additive")],
    ),
    (
        "anyOf loses an alternative",
        {"properties": {"a": {"anyOf": [{"type": S}, {"type": "null"}]}}},
        {"properties": {"a": {"anyOf": [{"type": S}]}}},
        [("$.parameters.properties.a.anyOf", "anyOf.narrowed", "breaking")],
    ),
    (
        "unknown keyword changed is breaking",
        {"properties": {"a": {"not": {"type": S}}}},
        {"properties": {"a": {"not": {"type": "integer"}}}},
        [("$.parameters.properties.a.not", "keyword.changed", "breaking")],
    ),
    (
        "boolean property schema false",
        {"properties": {"a": True}},
        {"properties": {"a": False}},
        [("$.parameters.properties.a.not", "keyword.changed", "breaking")],
    ),
    (
        "several at once, in a stable order",
        {
            "type": OBJ,
            "properties": {"a": {"type": S}, "b": {"type": "integer", "minimum": 0}},
            "required": ["a"],
        },
        {
            "type": OBJ,
            "properties": {"b": {"type": "number", "minimum": 0, "description": "b"}, "c": {}},
            "required": ["b"],
        },
        [
            ("$.parameters.properties.a", "property.removed", "breaking"),
            ("$.parameters.properties.c", "property.added", "additive"),
            ("$.parameters.properties.b", "property.now-required", "breaking"),
            ("$.parameters.properties.b.type", "type.widened", "additive"),
            ("$.parameters.properties.b", "annotation", "cosmetic"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [c[1:] for c in CLASSIFIER_CASES],
    ids=[c[0] for c in CLASSIFIER_CASES],
)
def test_schema_classifier(
    old: dict[str, Any], new: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    got = [(c.path, c.change, c.kind) for c in compare_schema("t", old, new)]
    assert got == expected


@pytest.mark.parametrize(
    ("old", "new", "messages"),
    [
        ({"a": {"type": OBJ}}, {}, ["a: tool removed (breaking)"]),
        ({}, {"a": {"type": OBJ}}, ["a: new tool (additive)"]),
        (
            {"a": {"properties": {"x": {}}}},
            {"a": {"properties": {"x": {}, "y": {}}, "required": ["y"]}},
            ["a: new required property 'y' (breaking)"],
        ),
        (
            {"a": {"properties": {"n": {"properties": {"m": {"type": S}}}}}},
            {"a": {"properties": {"n": {"properties": {"m": {"type": S, "maxLength": 4}}}}}},
            ["a: 'n.m' maxLength 4 added (breaking)"],
        ),
        (
            {"a": {"properties": {"l": {"items": {"properties": {"s": {}}}}}}},
            {"a": {"properties": {"l": {"items": {"properties": {}}}}}},
            ["a: property 'l[].s' removed (breaking)"],
        ),
    ],
)
def test_tool_messages(old: dict[str, Any], new: dict[str, Any], messages: list[str]) -> None:
    def tools(params: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
        return {
            n: (f"tools/{n}.json", {"name": n, "description": n, "parameters": p})
            for n, p in params.items()
        }

    assert [c.message for c in compare_tools(tools(old), tools(new))] == messages


def test_strict_mode_toggle_is_additive() -> None:
    old = {"name": "t", "description": "d", "parameters": {"type": OBJ}}
    changes = compare_tools({"t": ("p", old)}, {"t": ("p", {**old, "strict": True})})
    assert [(c.change, c.kind) for c in changes] == [("tool.strict", "additive")]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("agents/support/agent.yaml", "- just\n- a list\n"),
        (
            "agents/support/agent.yaml",
            "name: support\nprompt: 42\ntools: [1, {a: b}]\nmodel: nope\n",
        ),
        (
            "agents/support/agent.yaml",
            "name: support\nmodel: {provider: [x]}\nprompt: {system: ../../../etc/passwd}\n",
        ),
        ("agents/support/tools/lookup_order.json", "[1, 2, 3]"),
        ("agents/support/tools/lookup_order.json", '{"name": "lookup_order", "parameters": [1]}'),
        (
            "agents/support/tools/lookup_order.json",
            '{"name": "lookup_order", "parameters": {"properties": [], "required": "x"}}',
        ),
        (
            "agents/support/tools/lookup_order.json",
            '{"name": "lookup_order", "parameters": {"properties": {"a": 1}, "items": 2}}',
        ),
        ("agents/support/prompts/system.md", "{% for %}\n"),
        ("agents/support/prompts/system.md", "{{ ''.__class__.__mro__ }}\n"),
        ("agents/support/environments/production.yaml", "[1]\n"),
        ("agents/support/environments/production.yaml", "a: &a [*a]\n"),
        ("knowngood.yaml", "providers: [1]\ndeploy: {environments: 3}\n"),
        ("knowngood.yaml", ""),
    ],
)
def test_hostile_head_files_do_not_crash(repo: Repo, path: str, content: str) -> None:
    repo.write(path, content)
    repo.commit()
    report = repo.diff()
    validator("diff-report").validate(to_json(report))
    text(report)
    markdown(report)
    assert report.agents["support"].status in ("modified", "affected", "removed")


@pytest.mark.parametrize(
    ("levels", "problem"),
    [
        (40, "nests deeper than 64 levels"),  # 82 levels of data: loads, too deep to compare
        (300, "JSON nests deeper than 100 levels here"),  # does not load
    ],
)
def test_deeply_nested_tool_schema_is_a_problem(repo: Repo, levels: int, problem: str) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"x": schema}}
    repo.write("agents/support/tools/lookup_order.json", {**LOOKUP_ORDER, "parameters": schema})
    repo.commit()
    support = repo.diff().agents["support"]
    assert [p.message for p in support.problems] == [problem]
    assert support.bump == "minor"


def test_the_schema_example_is_valid() -> None:
    schema = validator("diff-report").schema
    assert isinstance(schema, dict) and schema["examples"]
    for example in schema["examples"]:
        validator("diff-report").validate(example)
