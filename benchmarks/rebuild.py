"""Benchmark the full rebuild drill: the runtime rebuilt from the remote and the latest backup in
a fresh scratch directory, each stage timed.

    .venv/bin/python benchmarks/rebuild.py [--turns 100000]

Builds a bare remote and a maintainer's clone with the ``shop`` agent (tests/deployutil.py),
whose ``.ci/install`` installs this checkout of knowngood and its lock (the llama.cpp wheel from
this machine's wheel cache, as any machine that built it once), a loopback provider, a
deployment whose post-deploy check passed (its last known good release), a state store of
``--turns`` turns and a backup of it; then runs ``knowngood drill rebuild`` and prints each
stage (clone, install, restore, deploy, serve, answer) and the total. Goal: < 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from backuputil import add_turns, make_store  # noqa: E402
from deployutil import KEYS, make_world, responder  # noqa: E402
from fakeproviders import FakeProvider  # noqa: E402
from gitutil import BENCH_IDENTITY as IDENTITY  # noqa: E402
from gitutil import git  # noqa: E402

from pipeline.cli import main as knowngood  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.update({**IDENTITY, **KEYS})
    tmp = Path(tempfile.mkdtemp(prefix="knowngood-bench-rebuild-"))
    try:
        with FakeProvider(responder=responder) as server:
            block = (
                f"runtime:\n  backup:\n    target: {{type: directory, path: {tmp / 'offsite'}}}\n"
            )
            world = make_world(tmp, server, extra=block)
            install = world.repo / ".ci" / "install"
            install.parent.mkdir()
            install.write_text(
                f'#!/bin/sh\nset -e\nKNOWNGOOD_VENV="$(pwd)/.venv" exec {ROOT / ".ci" / "install"}\n'
            )
            install.chmod(0o755)
            git(world.repo, "add", "-A")
            git(world.repo, "commit", "-qm", "installer")
            git(world.repo, "push", "-q", "origin", "main")
            repo = ["--repo", str(world.repo), "--format", "json"]
            assert knowngood(["deploy", "shop", "--check", *repo]) == 0
            add_turns(make_store(world.repo), "s", args.turns)
            assert knowngood(["backup", *repo]) == 0
            print("--- drill rebuild ---", file=sys.stderr)
            out = Path(tmp / "drill.json")
            saved = sys.stdout
            with out.open("w") as sys.stdout:
                code = knowngood(["drill", "rebuild", *repo])
            sys.stdout = saved
            drill = json.loads(out.read_text())
        print(f"drill rebuild: {drill['outcome']} (exit {code}), {args.turns} turns restored")
        for stage in drill["stages"]:
            print(f"  {stage['name']:<8} {stage['duration_s']:7.1f}s  {stage['detail'][:100]}")
        total = drill["total_s"]
        print(f"  total    {total:7.1f}s; goal < 600 s: {'met' if total < 600 else 'MISSED'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
