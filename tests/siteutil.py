"""A published history for ``knowngood report``: releases, eval results, deployments, checks,
incidents (one with the severity and timeline steps newer records carry), drills of three kinds.

:func:`publish` builds it once on a bare remote (tests get a mirror of it); the figures the
report must show are the module constants below, counted by hand from the records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gitutil import IDENTITY, clone, commit_all, git, make_remote
from repoutil import do, edit, make_repo

from pipeline.git import Git
from pipeline.recordbuild import dump, record_path
from pipeline.records import RecordStore, new_record, resolve_incident

SHA = "0123456789abcdef0123456789abcdef01234567"
HASH = "ab" * 32
# (passed, failed, skipped) per provider, per release of shop: what the results records hold.
SHOP_CASES = {
    "shop/v0.1.0": {"openai": (3, 1, 0), "anthropic": (4, 0, 1)},
    "shop/v0.2.0": {"openai": (2, 2, 0), "anthropic": (3, 1, 0)},
}
# ... and the pass rates (%) the report must show, counted by hand (skipped cases do not count).
SHOP_PASS_RATE = {"shop/v0.1.0": 87.5, "shop/v0.2.0": 62.5}
SHOP_PROVIDER_RATE = {"openai": [75.0, 50.0], "anthropic": [100.0, 75.0]}
# Successful deployments per environment as the timeline shows them: "when: version".
SHOP_DEPLOYMENTS = {
    "production": ["2026-02-01 10:01: 0.1.0", "2026-02-01 10:03: 0.2.0", "2026-02-01 10:05: 0.1.0"],
    "staging": ["2026-02-01 10:07: 0.2.0"],
}
# Resolved incidents' recovery times in minutes, oldest first, and their running mean (MTTR).
SHOP_RECOVERY_MIN = [2.0, 5.0]
SHOP_MTTR_MIN = [2.0, 3.5]
# Drills' recovery times in seconds, oldest first: rollback, failover, restore.
SHOP_DRILL_S = [12.5, 0.4, 95.0]
P1_INCIDENT = "aaaaaaaaaaaa"


def t(n: int) -> str:
    return f"2026-02-01T10:{n:02d}:00.000000Z"


def results(commit: str, cases: dict[str, dict[str, tuple[int, int, int]]]) -> dict[str, Any]:
    """An eval results document (``knowngood eval --output``) with these case counts."""
    rows = []
    for agent, providers in cases.items():
        for provider, (passed, failed, skipped) in providers.items():
            statuses = ["pass"] * passed + ["fail"] * failed + ["skipped"] * skipped
            for n, status in enumerate(statuses):
                row = {
                    "agent": agent, "suite": "smoke", "case": f"c{n}", "provider": provider,
                    "status": status, "flaky": False, "passes": int(status == "pass"),
                    "repeats": 1, "pass_rate": 1.0 if status == "pass" else 0.0, "runs": [],
                }  # fmt: skip
                rows.append(row)
    return {
        "version": 1,
        "kind": "eval-results",
        "commit": commit,
        "summary": {},
        "providers": {},
        "cases": rows,
    }


def deployment(env: str, release: str, at: str, **fields: Any) -> dict[str, Any]:
    return new_record(
        "deployment", agent="shop", env=env, what=f"deploy {release} to {env}", why="test",
        outcome="success", at=at, by="octocat", release=release, commit=SHA, content_hash=HASH,
        target="directory", **fields,
    )  # fmt: skip


def incident(at: str, release: str, dep: dict[str, Any]) -> dict[str, Any]:
    return new_record(
        "incident", agent="shop", env="production", what="post-deploy check failed",
        why="smoke", outcome="open", at=at, deployment=dep["id"], release=release,
        severity="P2",
    )  # fmt: skip


def drill(env: str, kind: str, at: str, recovery_s: float, **fields: Any) -> dict[str, Any]:
    return new_record(
        "drill", agent="shop", env=env, what=f"{kind} drill", outcome="passed", at=at,
        drill=kind, recovery_s=recovery_s, **fields,
    )  # fmt: skip


def newer_records() -> list[dict[str, Any]]:
    """Records as other parts of knowngood write them in newer versions (severity, timeline
    steps, a restore drill's figures): the report shows what it finds, schema or not."""
    opened = {
        "version": 1, "kind": "incident", "id": P1_INCIDENT, "incident": P1_INCIDENT,
        "agent": "shop", "env": "production", "at": t(20), "detected_at": t(20),
        "actor": "knowngood", "what": "every provider down <script>alert(1)</script>",
        "why": "", "outcome": "open",
        "severity": "P1", "release": "shop/v0.2.0",
    }  # fmt: skip
    ack = {
        **opened, "id": "bbbbbbbbbbbb", "at": t(21), "actor": "alice",
        "what": "acknowledged", "outcome": "acknowledged", "step": "acknowledged",
    }  # fmt: skip
    mitigated = {
        **opened, "id": "cccccccccccc", "at": t(23), "actor": "knowngood", "what": "note",
        "outcome": "open", "timeline": {"mitigated": {"at": t(22), "by": "bob"}},
    }  # fmt: skip
    restore = drill("production", "restore", t(30), 95.0)
    restore["restore"] = {"rpo_s": 1800.0, "restore_s": 95.0, "verified": True}
    return [opened, ack, mitigated, restore]


def record_history(a: Path) -> None:
    do(a, push=True)  # shop/v0.1.0 and desk/v0.1.0
    first = git(a, "rev-parse", "HEAD").strip()
    edit(a, "agents/shop/prompts/system.md", "You work for", "You proudly work for")
    second = commit_all(a, "better prompt")
    git(a, "push", "-q", "origin", "main")
    do(a, push=True)  # shop/v0.2.0

    store = RecordStore(Git(a))
    desk = {"openai": (1, 0, 0)}
    store.put_results(first, results(first, {"shop": SHOP_CASES["shop/v0.1.0"], "desk": desk}))
    store.put_results(second, results(second, {"shop": SHOP_CASES["shop/v0.2.0"]}))
    good = deployment("production", "shop/v0.1.0", t(1))
    bad = deployment("production", "shop/v0.2.0", t(3), previous=good["id"])
    one = incident(t(4), "shop/v0.2.0", bad)
    back = deployment("production", "shop/v0.1.0", t(5), rollback=True, previous=bad["id"])
    two = incident(t(10), "shop/v0.2.0", bad)
    failover = {
        "primary": "openai", "fallback": "anthropic", "release": "shop/v0.1.0", "requests": 50,
        "failed_requests": 0, "first_fallback_s": 0.4, "breaker_open_s": 1.2,
        "primary_back_s": 31.0, "calls_to_open_breaker": 0, "open_s": 30.0,
    }  # fmt: skip
    for record in (
        good,
        bad,
        one,
        back,
        resolve_incident(one, restored=back["id"], restored_release="shop/v0.1.0", at=t(6)),
        two,
        resolve_incident(two, restored=back["id"], restored_release="shop/v0.1.0", at=t(15)),
        deployment("staging", "shop/v0.2.0", t(7)),
        drill("staging", "rollback", t(8), 12.5, to_release="shop/v0.1.0"),
        drill("production", "failover", t(9), 0.4, failover=failover),
    ):
        store.append(record)
    for record in newer_records():
        store.data.write({record_path(record): dump(record)}, f"newer {record['kind']}\n")
    store.push()


def publish(tmp: Path) -> Path:
    """The bare remote holding the history (with fixed identities and dates)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp))
        for var, value in IDENTITY.items():
            mp.setenv(var, value)
        bare = make_remote(tmp)
        seed = make_repo(tmp / "seed")
        git(seed, "push", "-q", str(bare), "main")
        record_history(clone(bare, tmp / "writer"))
    return bare
