"""Every knowngood command the shipped workflows and action.yml run is one the CLI accepts.

Each step's script runs for real in bash, with the values GitHub would give its `${{ }}`
expressions (every matrix value, every choice of a workflow_dispatch input, a set and an empty
optional input), in a scratch folder where `.venv/bin/knowngood` records its arguments instead
of running. Each recorded command line is then parsed by knowngood's own click commands: an
option that does not exist, a choice it does not take or a missing argument fails here, not in
a team's first release.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from gitutil import ROOT

from pipeline.cli import cli

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
EXPRESSION = re.compile(r"^\$\{\{\s*(.+?)\s*\}\}$")
SAMPLES = {"agent": ["support"], "to": ["", "v0.1.0"]}  # inputs of type string


def _recorder(folder: Path, log: Path) -> None:
    """``folder/.venv/bin/knowngood`` writes its argv to ``log``; ``.ci/install`` does nothing."""
    bin_ = folder / ".venv" / "bin"
    bin_.mkdir(parents=True)
    script = bin_ / "knowngood"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    )
    install = folder / ".ci" / "install"
    install.parent.mkdir()
    install.write_text("#!/bin/sh\nexit 0\n")
    for path in (script, install):
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _values(expression: str, inputs: Mapping[str, Any], matrix: Mapping[str, Any]) -> list[str]:
    """What GitHub may put where ``${{ expression }}`` stands (one sample when any will do)."""
    kind, _, name = expression.partition(".")
    if kind == "matrix":
        return [str(v) for v in matrix[name]]
    if kind == "inputs":
        spec = inputs.get(name) or {}
        if spec.get("type") == "choice":
            return [str(v) for v in spec["options"]]
        if spec.get("type") == "boolean" or str(spec.get("default")) in ("true", "false"):
            return ["true", "false"]  # action.yml's inputs are strings: "true" is a flag
        return SAMPLES.get(name) or [str(spec.get("default") or "x")]
    if expression.startswith("secrets."):
        return [""]
    if expression == "github.action_path":
        return ["<folder>"]
    return ["0123456789abcdef0123456789abcdef01234567"]  # a sha, a token, a path: any word


def _steps() -> Iterator[tuple[str, str, dict[str, Any], dict[str, list[str]]]]:
    """(where, script, shell, env var -> its possible values) of every step that runs one."""
    documents = [(path.name, yaml.safe_load(path.read_text())) for path in WORKFLOWS]
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    for name, doc in documents:
        on = doc.get(True) or doc.get("on") or {}  # YAML 1.1 reads a bare `on` as True
        dispatch = on.get("workflow_dispatch") if isinstance(on, dict) else None
        inputs = (dispatch or {}).get("inputs") or {}
        for job_name, job in doc["jobs"].items():
            matrix = (job.get("strategy") or {}).get("matrix") or {}
            outer = {**(doc.get("env") or {}), **(job.get("env") or {})}
            for i, step in enumerate(job.get("steps") or []):
                if "run" in step:
                    env = {**outer, **(step.get("env") or {})}
                    yield (
                        f"{name} {job_name} step {i + 1}",
                        step["run"],
                        {},
                        _env(env, inputs, matrix),
                    )
    action_inputs = action.get("inputs") or {}
    for i, step in enumerate(action["runs"]["steps"]):
        if "run" in step:
            env = _env(step.get("env") or {}, action_inputs, {})
            yield f"action.yml step {i + 1}", step["run"], action_inputs, env


def _env(
    env: Mapping[str, Any], inputs: Mapping[str, Any], matrix: Mapping[str, Any]
) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in env.items():
        m = EXPRESSION.match(str(value))
        out[key] = _values(m.group(1), inputs, matrix) if m else [str(value)]
    return out


def _command(argv: list[str]) -> tuple[click.Command, list[str], click.Context]:
    """The click command ``argv`` names, the arguments left for it, and its parent context."""
    ctx = click.Context(cli, info_name="knowngood")
    command: click.Command = cli
    args = list(argv)
    while isinstance(command, click.Group):
        assert args, f"knowngood {' '.join(argv)}: no subcommand"
        sub = command.get_command(ctx, args[0])
        assert sub is not None, f"knowngood {' '.join(argv)}: no command {args[0]!r}"
        ctx = click.Context(command, info_name=args[0], parent=ctx)
        command, args = sub, args[1:]
    return command, args, ctx


def _recorded(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """Run every step's script in bash for each combination of its env values: (where, argv)."""
    for n, (where, script, _inputs, env) in enumerate(_steps()):
        if "knowngood" not in script:
            continue
        keys = sorted(env)
        for k, combination in enumerate(itertools.product(*(env[key] for key in keys))):
            folder = tmp_path / f"{n}-{k}"
            log = folder / "argv.jsonl"
            folder.mkdir()
            _recorder(folder, log)
            values = {
                key: v.replace("<folder>", str(folder))
                for key, v in zip(keys, combination, strict=True)
            }
            run_env = {
                "PATH": os.environ["PATH"],
                "GITHUB_STEP_SUMMARY": str(folder / "summary.md"),
                "GITHUB_OUTPUT": str(folder / "output"),
                **values,
            }
            done = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", script],
                cwd=folder, env=run_env, capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert done.returncode == 0, f"{where} with {values}: {done.stderr}"
            lines = log.read_text().splitlines() if log.exists() else []
            assert lines, f"{where} with {values}: the script ran no knowngood command"
            for line in lines:
                yield f"{where} with {values}", json.loads(line)


def test_every_knowngood_command_the_workflows_run_parses(tmp_path: Path) -> None:
    seen: set[str] = set()
    for where, argv in _recorded(tmp_path):
        command, args, parent = _command(argv)
        try:
            command.make_context(argv[0], args, parent=parent)
        except click.exceptions.Exit:  # --help and the like: not in a workflow
            pytest.fail(f"{where}: knowngood {' '.join(argv)} only printed and exited")
        except click.ClickException as e:
            pytest.fail(f"{where}: knowngood {' '.join(argv)}: {e.format_message()}")
        seen.add(" ".join(argv[:2]) if argv[0] in ("drill", "results") else argv[0])
    # every workflow's command was reached: a script that stopped running one would hide here
    assert {"gate", "eval", "release", "deploy", "report", "revert", "rollback", "status"} <= seen
    assert {"drill rollback", "drill failover", "drill crash", "drill restore"} <= seen


def test_a_command_the_cli_does_not_take_fails_the_check(tmp_path: Path) -> None:
    """The check above can fail: the same parsing refuses an option that does not exist."""
    command, args, parent = _command(["deploy", "--released", "--no-such-option"])
    with pytest.raises(click.UsageError, match="no-such-option"):
        command.make_context("deploy", args, parent=parent)
    command, args, parent = _command(["drill", "nonsense"])
    with pytest.raises(click.BadParameter):
        command.make_context("drill", args, parent=parent)
