"""``readiness --base REV``: the bar comes from a commit the pull request cannot change.

Run on a pull request, readiness measures the pull request's tree, and that tree holds
knowngood.yaml too: without ``--base`` a change could lower ``runtime.readiness.min_score``,
drop ``required`` items, widen ``runtime.targets.rpo_s``, point ``runtime.backup.target`` at a
folder it commits or ``records.branch`` at a branch of its own, and pass. With ``--base`` those
settings are read from REV's committed knowngood.yaml (the strictest defaults when it has none
or it does not validate), like the gate reads its policy; the rest is measured on the tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import GitError, UsageError
from pipeline.git import Git
from pipeline.repo import CONFIG_FILE

# The settings that make up the bar: (section, key) of knowngood.yaml.
POLICY_KEYS = (
    ("runtime", "readiness"),
    ("runtime", "targets"),
    ("runtime", "backup"),
    ("records", "branch"),
)


def base_settings(git: Git, rev: str) -> tuple[str, Mapping[str, Any]]:
    """(the commit, its knowngood.yaml) for ``rev``; ``{}`` when it has none or it does not
    validate. UsageError for an unknown revision."""
    from pipeline.gate.policy import committed_data

    try:
        commit = git.rev_parse(rev)
    except GitError as e:
        raise UsageError(
            f"--base {rev}: {e.message}", hint="name a commit, branch or tag this clone has"
        ) from e
    data = committed_data(git, commit, CONFIG_FILE, "knowngood")
    return commit, data if isinstance(data, dict) else {}


def policy_of(settings: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    for section, key in POLICY_KEYS:
        part = settings.get(section)
        out[(section, key)] = part.get(key) if isinstance(part, Mapping) else None
    return out


def with_policy(settings: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with every policy key replaced by ``base``'s (removed where base has none)."""
    out = {k: dict(v) if isinstance(v, Mapping) else v for k, v in settings.items()}
    for (section, key), value in policy_of(base).items():
        part = out.setdefault(section, {})
        if not isinstance(part, dict):
            part = out[section] = {}
        if value is None:
            part.pop(key, None)
        else:
            part[key] = value
    return out


def differing(settings: Mapping[str, Any], base: Mapping[str, Any]) -> list[str]:
    """The policy keys this tree sets otherwise than base, as ``section.key``."""
    mine, theirs = policy_of(settings), policy_of(base)
    return [f"{s}.{k}" for (s, k) in mine if mine[(s, k)] != theirs[(s, k)]]
