"""How many times the gate runs a case on HEAD: at least as many as BASE runs it.

A case runs ``repeat`` times (set on the case, else its suite, else ``eval.repeat``) and passes
when the share of passing repeats reaches its pass rate. A change that breaks an agent so it
passes only now and then could, in the same commit, lower ``repeat`` to 1: one lucky repeat
would be "no regression". So BASE's effective repeat of each case is read from BASE's
committed suite files and knowngood.yaml (as the commit has them, ``gate.policy.committed_data``)
and a case HEAD runs fewer times is run BASE's number of times on HEAD; the lower count
applies once the change is merged. A higher count on HEAD is HEAD's own. The extra repeats are
eval calls like any other: through the cache, within the gate's budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import Any

from pipeline.gate.expectations import CaseId
from pipeline.gate.model import CaseDiff
from pipeline.gate.policy import committed_data
from pipeline.gate.suites import CommittedSuites
from pipeline.repo import CONFIG_FILE, Repo
from pipeline.words import printable


@dataclass(frozen=True, slots=True)
class Raised:
    """A case the gate runs more often on HEAD than HEAD says: ``base`` times, not ``head``."""

    base: int
    head: int

    @property
    def note(self) -> str:
        return (
            f"run {self.base} times as base does (this change lowers it to {self.head}, "
            "which applies once merged)"
        )


def base_repeats(suites: CommittedSuites, commit: str, agents: Iterable[str]) -> dict[CaseId, int]:
    """(agent, suite, case) -> how many times ``commit`` runs the case, for every case of
    ``agents``' suite files there (one that does not validate counts as none)."""
    config = committed_data(suites.git, commit, CONFIG_FILE, "knowngood")
    evals = config.get("eval") if isinstance(config, Mapping) else None
    default = _count(evals.get("repeat")) if isinstance(evals, Mapping) else None
    out: dict[CaseId, int] = {}
    for agent in agents:
        for rel, data in suites.documents(commit, agent).items():
            shared = _count(data.get("repeat"))
            cases = data.get("cases")
            for case in cases if isinstance(cases, list) else ():
                if isinstance(case, Mapping):
                    key = (agent, PurePosixPath(rel).stem, str(case.get("id")))
                    out[key] = _count(case.get("repeat")) or shared or default or 1
    return out


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def raise_repeats(
    repo: Repo, agents: Iterable[str], base: Mapping[CaseId, int]
) -> tuple[Repo, dict[CaseId, Raised]]:
    """``repo`` with each case of ``agents`` that it runs fewer times than ``base`` does set to
    run ``base``'s number of times, and those cases. ``repo`` itself is left as it is."""
    raised: dict[CaseId, Raised] = {}
    suites = dict(repo.suites)
    default = repo.settings.eval.repeat
    for agent in agents:
        named = dict(suites.get(agent, {}))
        for name, suite in named.items():
            cases = []
            for case in suite.cases:
                mine = case.repeat or suite.repeat or default
                theirs = base.get((agent, name, case.id), 0)
                if theirs > mine:
                    raised[(agent, name, case.id)] = Raised(theirs, mine)
                    case = replace(case, repeat=theirs)
                cases.append(case)
            named[name] = replace(suite, cases=tuple(cases))
        suites[agent] = named
    if not raised:
        return repo, raised
    return replace(repo, suites=suites), raised


def note_raised(rows: Sequence[CaseDiff], raised: Mapping[CaseId, Raised]) -> None:
    """Say in each evaluated row of a raised case how many times it ran, and why."""
    for row in rows:
        found = raised.get((row.agent, row.suite, row.case))
        if found is not None and row.head in ("pass", "fail"):
            row.detail = printable("; ".join(p for p in (row.detail, found.note) if p))
