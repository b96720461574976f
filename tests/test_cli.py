"""Command-line behaviour not covered elsewhere: init, cache stats/prune, eval --changed-since,
and the start-up cost of --help."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from evalutil import KEYS, make_repo, responder
from fakeproviders import FakeProvider
from gitutil import commit_all, init_repo

from pipeline.cli import main
from pipeline.loading import load


def test_help_lists_every_command_without_importing_heavy_modules() -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('litellm', 'jsonschema', 'jinja2', 'deepdiff', 'rich', 'aiohttp',\n"
        "    'prometheus_client', 'pipeline.runtime', 'sqlite3', 'dbos', 'sqlalchemy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for command in (
        "init",
        "validate",
        "eval",
        "diff",
        "gate",
        "release",
        "deploy",
        "check",
        "revert",
        "rollback",
        "status",
        "history",
        "drill",
        "results",
        "cache",
        "serve",
        "run",
        "workflows",
    ):
        assert f"\n  {command} " in proc.stdout


# Commands without --repo, and why: they make a repository, or read only the files named.
NO_REPO = {"init": "DIR is the repository it makes", "results merge": "merges the files named"}


def leaf_commands(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from leaf_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", command


def test_every_command_takes_format_and_repo_as_design_says() -> None:
    from pipeline.cli import cli

    found = dict(leaf_commands(cli))
    assert {"serve", "run", "init", "workflows prune", "incident open"} <= set(found)
    for name, command in found.items():
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        assert "--format" in options, name
        assert ("--repo" in options) is (name not in NO_REPO), name


@pytest.mark.parametrize("command", ["serve", "run"])
def test_runtime_commands_help_imports_no_runtime(command: str) -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        f"assert main([{command!r}, '--help']) == 0\n"
        "heavy = [m for m in ('litellm', 'aiohttp', 'prometheus_client', 'pipeline.runtime')\n"
        "    if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Examples:" in proc.stdout


def test_init_scaffolds_a_valid_repository_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "agents-repo"
    assert main(["init", str(target)]) == 0
    assert (target / "knowngood.yaml").is_file()
    assert (target / "schemas" / "agent.schema.json").is_file()
    assert main(["validate", "--repo", str(target)]) == 0
    before = sorted(p.relative_to(target).as_posix() for p in target.rglob("*"))
    capsys.readouterr()
    assert main(["init", str(target)]) == 2
    assert "already has" in capsys.readouterr().err
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == before


def test_cache_stats_and_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    with FakeProvider(responder=responder) as server:
        root = make_repo(tmp_path, server)
        assert main(["eval", "--repo", str(root), "--provider", "openai"]) == 0
    # a large YAML file parsed once: an entry of the parse cache, which the commands cover too
    parsed = tmp_path / "parsed"
    monkeypatch.setenv("KNOWNGOOD_PARSE_CACHE", str(parsed))
    big = tmp_path / "big.yaml"
    big.write_text("cases:\n" + "".join(f"  - {{id: c{i}, input: q{i}}}\n" for i in range(2000)))
    assert load(big, "big.yaml")[0] is not None
    capsys.readouterr()
    assert main(["cache", "stats", "--repo", str(root), "--format", "json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["entries"] == 3 and stats["bytes"] > 0
    assert stats["parsed"]["dir"] == str(parsed) and stats["parsed"]["entries"] == 1
    assert main(["cache", "stats", "--repo", str(root)]) == 0
    assert "3 cached answers" in (text := capsys.readouterr().out)
    assert "1 parsed YAML files" in text
    assert main(["cache", "prune", "--repo", str(root), "--older-than", "1"]) == 0  # all are fresh
    capsys.readouterr()
    assert main(["cache", "stats", "--repo", str(root), "--format", "json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["entries"], stats["parsed"]["entries"]) == (3, 1)
    assert main(["cache", "prune", "--repo", str(root), "--format", "json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert (pruned["removed"], pruned["parsed"]["removed"]) == (3, 1)
    assert (pruned["entries"], pruned["parsed"]["entries"]) == (0, 0)


def test_eval_changed_since_runs_only_the_agents_that_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    with FakeProvider(responder=responder) as server:
        root = make_repo(tmp_path / "repo", server)
        # a second agent, a copy of the first
        for src in sorted((root / "agents" / "shop").rglob("*")):
            if src.is_file():
                dest = root / "agents" / "other" / src.relative_to(root / "agents" / "shop")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_text(src.read_text().replace("name: shop", "name: other"))
        for suite in ("pr", "smoke"):
            text = (
                (root / "evals" / "shop" / f"{suite}.yaml")
                .read_text()
                .replace("agent: shop", "agent: other")
            )
            (root / "evals" / "other").mkdir(exist_ok=True)
            (root / "evals" / "other" / f"{suite}.yaml").write_text(text)
        init_repo(root)
        base = commit_all(root, "two agents")
        prompt = root / "agents" / "other" / "prompts" / "system.md"
        prompt.write_text(prompt.read_text() + "Be brief.\n")
        commit_all(root, "tweak other")
        out = tmp_path / "r.json"
        assert (
            main(
                [
                    "eval",
                    "--repo",
                    str(root),
                    "--changed-since",
                    base,
                    "--provider",
                    "openai",
                    "--output",
                    str(out),
                ]
            )
            == 0
        )
    agents = {c["agent"] for c in json.loads(out.read_text())["cases"]}
    assert agents == {"other"}
    assert main(["eval", "--repo", str(root), "--changed-since", "no-such-rev"]) == 2
