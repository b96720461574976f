"""Head's answers, graded by base's graders.

A ``judge`` assertion is graded by a model and ``similar`` by embeddings; which model, and how
it is called, is knowngood.yaml's: ``eval.judge_provider`` (for a judge that names no provider),
``eval.embedding_provider`` and the providers' definitions. A pull request that points them at
a lenient grader (a tiny model that says PASS to anything, other ``params``) would have its
judge cases passed without changing one expectation. So the gate grades HEAD's answers with
BASE's graders (read from BASE's knowngood.yaml, ``gate.policy``): BASE's default judge and
embedding provider, and BASE's definition of every provider a grader is. A grader BASE does not
have (a provider the change adds, or an ``eval.judge_provider`` or ``eval.embedding_provider``
BASE leaves unset) is not called: the cases it would grade are skipped on HEAD, so a case BASE
evaluated is *unverified* (a new one, *skipped*). The change's graders apply once it is merged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from typing import Any

from pipeline.evals.graders import Graders
from pipeline.gate.policy import BasePolicy
from pipeline.repo import Provider, Repo

BASE_SUFFIX = "@base"  # base's definition of a grader the change redefines (no name has an @)
ONCE_MERGED = "the change's applies once it is merged"


def base_graders(
    policy: BasePolicy, repo: Repo, agents: Iterable[str]
) -> tuple[Graders, list[str]]:
    """Who grades ``repo``'s (HEAD's) answers, and a notice for every way that differs from
    what HEAD configures for ``agents``' cases. HEAD's own graders when BASE has no valid
    knowngood.yaml (knowngood arrives with the change: there is nothing to keep)."""
    settings = repo.settings
    if not policy.configured:
        return Graders.of(settings), []
    mine, theirs = settings.providers, policy.providers
    providers: dict[str, Provider] = {}
    for name, base in theirs.items():
        head = mine.get(name)
        if head is None or head == base:
            providers[name] = head or base
        else:  # another name: runs, caches and calls keep the two definitions apart
            providers[name] = replace(base, name=name + BASE_SUFFIX)
    refused = {
        name: f"graded by provider {name!r}, which base's knowngood.yaml does not define "
        f"({ONCE_MERGED})"
        for name in mine
        if name not in theirs
    }
    ev = settings.eval
    graders = Graders(
        policy.judge_provider,
        policy.embedding_provider,
        providers,
        refused,
        _unset(policy.judge_provider, ev.judge_provider, "eval.judge_provider"),
        _unset(policy.embedding_provider, ev.embedding_provider, "eval.embedding_provider"),
    )
    return graders, _notices(policy, repo, agents)


def _unset(base: str | None, head: str | None, setting: str) -> str | None:
    """Why the default grader ``setting`` may not grade: the change sets one and base does not
    (base's default -- no judge, or the local embedding model -- is not the change's grader)."""
    if base is not None or head is None:
        return None
    return f"graded by {setting}, which base's knowngood.yaml does not set ({ONCE_MERGED})"


def _notices(policy: BasePolicy, repo: Repo, agents: Iterable[str]) -> list[str]:
    ev = repo.settings.eval
    out = []
    for setting, mine, theirs, what in (
        ("eval.judge_provider", ev.judge_provider, policy.judge_provider, "judge assertions "
         "that name no provider are"),
        ("eval.embedding_provider", ev.embedding_provider, policy.embedding_provider,
         "similar assertions are"),
    ):  # fmt: skip
        if mine == theirs:
            continue
        said = f"{setting} is {_name(mine)} in this change and {_name(theirs)} on base"
        if theirs is None:
            out.append(f"{said}: {what} not graded on head, their cases unverified ({ONCE_MERGED})")
        else:
            out.append(f"{said}: head's answers are graded by base's ({ONCE_MERGED})")
    used = {ev.judge_provider, ev.embedding_provider, policy.judge_provider}
    used |= {policy.embedding_provider, *_named(repo, agents)}
    for name in sorted(n for n in used if n is not None):
        head, base = repo.settings.providers.get(name), policy.providers.get(name)
        if head is None or head == base:
            continue
        if base is None:
            out.append(
                f"grader provider {name!r} is not in base's knowngood.yaml: the cases it grades "
                f"are not graded on head, and unverified ({ONCE_MERGED})"
            )
            continue
        changed = ", ".join(f.name for f in fields(Provider) if _differs(f.name, head, base))
        out.append(
            f"grader provider {name!r}: this change alters its {changed} "
            f"({head.model} on head, {base.model} on base); head's answers are graded by base's "
            f"definition ({ONCE_MERGED})"
        )
    return out


def _differs(attr: str, head: Provider, base: Provider) -> bool:
    return attr != "name" and getattr(head, attr) != getattr(base, attr)


def _name(value: str | None) -> str:
    return "unset" if value is None else repr(value)


def _named(repo: Repo, agents: Iterable[str]) -> set[str]:
    """The providers the judge assertions of ``agents``' cases name themselves."""
    found: set[str] = set()
    for agent in agents:
        for suite in repo.suites.get(agent, {}).values():
            for case in suite.cases:
                found |= _judges(case.expect)
    return found


def _judges(expect: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for assertion in expect:
        if not isinstance(assertion, Mapping):
            continue
        judge = assertion.get("judge")
        if isinstance(judge, Mapping) and isinstance(judge.get("provider"), str):
            found.add(judge["provider"])
        if "not" in assertion:
            found |= _judges([assertion["not"]])
    return found
