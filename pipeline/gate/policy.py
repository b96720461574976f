"""What the gate takes from BASE, never from the pull request: its policy, and what it is told.

The pull request controls every file of HEAD, so no setting of HEAD may loosen its own check:
``gate.allow_unverified``, ``gate.allow_expectation_changes``, the records branch (whose results stand in for BASE) and
``eval.budget_usd`` (what the gate may spend) are read from BASE's knowngood.yaml; a change to
them takes effect once it is merged. So does a new ``api_base``: HEAD's evals send a provider's
key only to an (api_base, key variable) pair BASE's knowngood.yaml already uses. So do the
graders (``eval.judge_provider``, ``eval.embedding_provider`` and the definitions of the providers
they and the judges name): see ``pipeline.gate.graders``. So does how many times a case runs, at
the least: see ``pipeline.gate.repeats``. The opt-out from
automatic revert, on the other hand, is the change's own statement: it is shown, so reviewers see
it before they merge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.git import Git
from pipeline.repo import CONFIG_FILE, Provider

DEFAULT_RECORDS_BRANCH = "knowngood/records"


@dataclass(frozen=True, slots=True)
class BasePolicy:
    records_branch: str = DEFAULT_RECORDS_BRANCH
    allow_unverified: bool = False
    allow_expectation_changes: bool = False
    budget_usd: float | None = None  # BASE's eval.budget_usd (None: it sets none)
    configured: bool = False  # BASE has a valid knowngood.yaml (else HEAD's budget applies)
    providers: Mapping[str, Provider] = field(default_factory=dict)  # BASE's definitions
    judge_provider: str | None = None  # BASE's eval.judge_provider
    embedding_provider: str | None = None  # BASE's eval.embedding_provider

    @property
    def endpoints(self) -> frozenset[tuple[str, str]]:
        """(api_base, key variable) pairs BASE's providers use."""
        pairs = (endpoint(p) for p in self.providers.values())
        return frozenset(pair for pair in pairs if pair is not None)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> BasePolicy:
        """From knowngood.yaml's data, valid against its schema."""
        records, gate, evals = data.get("records"), data.get("gate"), data.get("eval")
        branch = records.get("branch") if isinstance(records, Mapping) else None
        gate = gate if isinstance(gate, Mapping) else {}
        evals = evals if isinstance(evals, Mapping) else {}
        allow = gate.get("allow_unverified")
        budget = evals.get("budget_usd")
        providers = data.get("providers")
        judge, embedding = evals.get("judge_provider"), evals.get("embedding_provider")
        return cls(
            records_branch=branch if isinstance(branch, str) and branch else DEFAULT_RECORDS_BRANCH,
            allow_unverified=allow is True,
            allow_expectation_changes=gate.get("allow_expectation_changes") is True,
            budget_usd=float(budget) if isinstance(budget, int | float) else None,
            configured=True,
            providers={
                str(name): Provider.from_data(str(name), p)
                for name, p in (providers.items() if isinstance(providers, Mapping) else ())
                if isinstance(p, Mapping)
            },
            judge_provider=judge if isinstance(judge, str) else None,
            embedding_provider=embedding if isinstance(embedding, str) else None,
        )


def endpoint(provider: Provider) -> tuple[str, str] | None:
    """(api_base, the variable whose key goes there), or None when no key goes to an api_base
    of the provider's choosing (a vendor's own endpoint, a knowngood-served or keyless local
    model)."""
    from pipeline.evals.keys import key_env_var

    if provider.serve or not provider.api_base:
        return None
    var = key_env_var(provider)
    return (provider.api_base, var) if var is not None else None


def base_policy(git: Git, commit: str) -> BasePolicy:
    """The policy in ``commit``'s knowngood.yaml (``git`` runs in the knowngood root). The
    defaults, the strictest, when it has none or it does not validate."""
    data = committed_data(git, commit, CONFIG_FILE, "knowngood")
    return BasePolicy.from_data(data) if isinstance(data, dict) else BasePolicy()


def committed_data(git: Git, commit: str, rel: str, schema: str | None = None) -> Any:
    """The data of the YAML or JSON file ``rel`` as ``commit`` has it; None when it has none,
    or the file is not UTF-8 or does not parse, or (with ``schema``) has an error against it."""
    from pipeline.loading import parse
    from pipeline.schemas import check

    blob = git.show(commit, f"./{rel}")
    if blob is None:
        return None
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError:
        return None
    doc, findings = parse(text, Path(rel), rel)
    if doc is None:
        return None
    if schema is not None and any(f.severity == "error" for f in [*findings, *check(doc, schema)]):
        return None
    return doc.data


def base_pull_request_suites(git: Git, commit: str, agents: list[str]) -> dict[str, set[str]]:
    """agent -> the suites ``commit``'s agents/<agent>/agent.yaml runs on pull requests (none for
    an agent it lacks or cannot read): head's cases of these are compared even when head no
    longer lists the suite."""
    out: dict[str, set[str]] = {}
    for agent in agents:
        data = committed_data(git, commit, f"agents/{agent}/agent.yaml")
        evals = data.get("evals") if isinstance(data, Mapping) else None
        named = evals.get("pull_request") if isinstance(evals, Mapping) else None
        out[agent] = {n for n in named if isinstance(n, str)} if isinstance(named, list) else set()
    return out


def revert_opt_out(git: Git, base: str, head: str, pr_body: str | None) -> str | None:
    """Where the change says ``knowngood: no-auto-revert`` (the pull request's description or a
    commit it brings in), or None."""
    from pipeline.revert.model import OPT_OUT_PATTERN

    if pr_body and OPT_OUT_PATTERN.search(pr_body):
        return "the pull request's description"
    log = git.try_run("log", "-z", "--format=%H%n%B", f"{base}..{head}")
    for entry in log.stdout.split("\0") if log.code == 0 else ():
        sha, _, message = entry.strip("\n").partition("\n")
        if OPT_OUT_PATTERN.search(message):
            return f"the message of commit {sha[:10]}"
    return None
