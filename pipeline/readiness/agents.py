"""Checklist items measured on each agent's configuration and eval results: vendors, circuit
breakers, contacts, the providers' suites, runbooks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.git import Git
from pipeline.readiness.model import Check, Item
from pipeline.records import RecordStore
from pipeline.runbookfacts import Facts, fingerprint, header_of, runbook_path
from pipeline.words import plural

MAX_RUNBOOK_BYTES = 1024 * 1024
RESULTS_LOOKBACK = 200  # first-parent commits of HEAD searched for stored eval results


def vendors(facts: Mapping[str, Facts]) -> Item:
    item = Item("vendors")
    for agent, f in facts.items():
        short = []
        for env in f["environments"]:
            names = sorted({p["vendor"] for p in env["chain"]})
            if len(names) < 2:
                short.append(f"{env['env']}: {', '.join(names) or 'no provider'}")
        if short:
            item.checks.append(
                Check(
                    agent,
                    False,
                    "one vendor only in " + "; ".join(short),
                    f"add a fallback from another vendor to model.fallbacks in "
                    f"agents/{agent}/agent.yaml (or the environment overlay)",
                )
            )
        else:
            spans = {e["env"]: len({p["vendor"] for p in e["chain"]}) for e in f["environments"]}
            item.checks.append(
                Check(
                    agent,
                    True,
                    ", ".join(f"{env}: {plural(n, 'vendor')}" for env, n in spans.items()),
                )
            )
    return item


def breakers(facts: Mapping[str, Facts]) -> Item:
    item = Item("breakers")
    for agent, f in facts.items():
        missing = [
            e["env"] for e in f["environments"] if not e["resilience"].get("circuit_breaker")
        ]
        if missing:
            item.checks.append(
                Check(
                    agent,
                    False,
                    f"no resilience.circuit_breaker in {', '.join(missing)} (defaults apply, "
                    "never chosen)",
                    f"set resilience.circuit_breaker in agents/{agent}/agent.yaml, e.g. "
                    "{failure_rate: 0.5, open_s: 30}",
                )
            )
        else:
            item.checks.append(Check(agent, True, "configured in every environment"))
    return item


def contacts(facts: Mapping[str, Facts]) -> Item:
    item = Item("contacts")
    for agent, f in facts.items():
        lacking = []
        for env in f["environments"]:
            if not env["owner"]:
                lacking.append(f"no owner in {env['env']}")
            if not env["escalation"]:
                lacking.append(f"no escalation contact in {env['env']}")
        if lacking:
            item.checks.append(
                Check(
                    agent,
                    False,
                    "; ".join(lacking),
                    f"set `owner` and `escalation: [...]` in agents/{agent}/agent.yaml",
                )
            )
        else:
            item.checks.append(
                Check(agent, True, f"owner {f['owner']}, escalation {', '.join(f['escalation'])}")
            )
    return item


def runbooks(root: Path, facts: Mapping[str, Facts], expected: Mapping[str, str]) -> Item:
    item = Item("runbooks")
    for agent, f in facts.items():
        rel = runbook_path(agent)
        fix = f"run `knowngood runbook {agent}` and commit {rel}"
        text = _read_runbook(root / rel)
        if text is None:
            item.checks.append(Check(agent, False, f"{rel} is missing", fix))
        elif text == expected[agent]:
            item.checks.append(Check(agent, True, f"{rel} is current"))
        else:
            header = header_of(text)
            why = (
                "the drill figures changed since it was generated"
                if header is not None and header[1] == fingerprint(f)
                else "the configuration changed since it was generated"
            )
            item.checks.append(Check(agent, False, f"{rel} is stale: {why}", fix))
    return item


def _read_runbook(path: Path) -> str | None:
    """The runbook's text; None when it is missing, not a regular file, not UTF-8 or over
    MAX_RUNBOOK_BYTES (no generated runbook comes near it)."""
    try:
        if path.is_symlink() or path.stat().st_size > MAX_RUNBOOK_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def provider_suites(git: Git, store: RecordStore, facts: Mapping[str, Facts]) -> Item:
    """Per agent: every provider of its chains passed its suites in the newest eval results
    stored for a first-parent ancestor of HEAD that evaluated the agent."""
    item = Item("provider-suites")
    results = _newest_results(git, store, set(facts))
    for agent, f in facts.items():
        providers = sorted({p["provider"] for e in f["environments"] for p in e["chain"]})
        found = results.get(agent)
        if found is None:
            item.checks.append(
                Check(
                    agent,
                    False,
                    "no stored eval results evaluate it",
                    "record the results of main: `knowngood eval --record` (the main-branch "
                    "workflow does it on every push)",
                )
            )
            continue
        commit, cases = found
        threshold = float((f["suites"] or {}).get("pass_rate", 1.0))
        item.checks.append(_suites_check(agent, commit, cases, providers, threshold))
    return item


def _suites_check(
    agent: str,
    commit: str,
    cases: Sequence[Mapping[str, Any]],
    providers: Sequence[str],
    threshold: float,
) -> Check:
    parts, bad = [], []
    for provider in providers:
        mine = [c for c in cases if c.get("provider") == provider]
        run = [c for c in mine if c.get("status") in ("pass", "fail", "error")]
        passed = sum(c.get("status") == "pass" for c in run)
        skipped = len(mine) - len(run)
        parts.append(
            f"{provider} {passed}/{len(run)}" + (f" ({skipped} skipped)" if skipped else "")
        )
        if not run or skipped or passed / len(run) < threshold:
            bad.append(provider)
    detail = f"results of {commit[:10]}: " + ", ".join(parts)
    if not bad:
        return Check(agent, True, detail)
    return Check(
        agent,
        False,
        detail,
        f"make {', '.join(bad)} pass: `knowngood eval {agent} --provider {bad[0]}` (a skipped "
        "provider needs its key in the workflow's secrets)",
    )


def _newest_results(
    git: Git, store: RecordStore, agents: set[str]
) -> dict[str, tuple[str, list[Mapping[str, Any]]]]:
    """agent -> (commit, its cases) from the newest stored results that evaluated it."""
    stored = {path.rsplit("/", 1)[1][:-5]: blob for path, blob in store.data.ls("results")}
    if not stored:
        return {}
    history = git.try_run("rev-list", "--first-parent", f"-n{RESULTS_LOOKBACK}", "HEAD")
    found: dict[str, tuple[str, list[Mapping[str, Any]]]] = {}
    for commit in history.stdout.split() if history.code == 0 else []:
        if commit not in stored:
            continue
        (data,) = store.data.read_blobs([stored[commit]])
        try:
            cases = json.loads(data)["results"]["cases"]
        except (ValueError, KeyError, TypeError, RecursionError):  # not results we can read
            continue
        by_agent: dict[str, list[Mapping[str, Any]]] = {}
        for case in cases:
            if isinstance(case, Mapping) and case.get("agent") in agents:
                by_agent.setdefault(str(case["agent"]), []).append(case)
        for agent, mine in by_agent.items():
            found.setdefault(agent, (commit, mine))
        if len(found) == len(agents):
            break
    return found
