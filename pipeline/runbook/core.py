"""Write or check ``runbooks/<agent>.md`` for every agent (or the ones named).

Inputs: the working tree's configuration (validated like ``knowngood validate``) and the drill and
incident records of this clone (fetched first unless told not to). Each file is written only when
its content changes, through a temporary file renamed over it, so an interrupted run leaves
every runbook either old or new, never half written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import outputs
from pipeline.errors import GitError, UsageError
from pipeline.git import Git
from pipeline.outcome import Say, silent
from pipeline.records import RecordStore
from pipeline.recordtypes import DrillRecord
from pipeline.runbook.figures import agent_figures, newest_of_each_kind, newest_passed
from pipeline.runbook.render import render
from pipeline.runbookfacts import RUNBOOK_DIR, Facts, header_of, load_tree
from pipeline.source import working_tree


@dataclass(frozen=True, slots=True)
class RunbookRequest:
    agents: tuple[str, ...] = ()  # none: every agent
    output: Path | None = None  # default <root>/runbooks
    check: bool = False  # compare only; write nothing
    fetch: bool = True
    say: Say = silent  # the revision read (stderr)


@dataclass(frozen=True, slots=True)
class RunbookFile:
    agent: str
    path: str  # as shown: relative to the root when inside it
    state: str  # written | unchanged | stale | missing | orphan

    def to_json(self) -> dict[str, str]:
        return {"agent": self.agent, "path": self.path, "state": self.state}


@dataclass(slots=True)
class RunbookOutcome:
    check: bool
    files: list[RunbookFile] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        bad = any(f.state in ("stale", "missing", "orphan") for f in self.files)
        return 1 if self.check and bad else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "check": self.check,
            "files": [f.to_json() for f in self.files],
            "notices": self.notices,
        }


def run(root: Path, request: RunbookRequest) -> RunbookOutcome:
    """Generate (or with ``check``, compare) the runbooks."""
    from pipeline.validate import valid_repo

    working_tree(root).tell(request.say)
    valid_repo(root, "the configuration does not validate", hint="run `knowngood validate`")
    settings, facts = load_tree(root)
    unknown = sorted(set(request.agents) - set(facts))
    if unknown:
        raise UsageError(
            f"no agent named {', '.join(map(repr, unknown))}",
            hint=f"agents: {', '.join(sorted(facts)) or 'none'}",
        )
    folder = request.output or root / RUNBOOK_DIR
    if not request.check:  # a folder that cannot be written: said before the records are fetched
        outputs.check_folder(folder, "--output" if request.output else "")
    outcome = RunbookOutcome(request.check)
    store = RecordStore(
        Git(root), (settings.get("records") or {}).get("branch", "knowngood/records")
    )
    if request.fetch:
        try:
            store.fetch()
        except GitError as e:
            outcome.notices.append(f"{e.message}: using the records this clone has")
    chosen = {a: facts[a] for a in (request.agents or sorted(facts))}
    texts = expected_runbooks(store, chosen)
    for agent, text in texts.items():
        path = folder / f"{agent}.md"
        shown = _shown(root, path)
        current = _read(path)
        if current == text:
            outcome.files.append(RunbookFile(agent, shown, "unchanged"))
        elif request.check:
            outcome.files.append(
                RunbookFile(agent, shown, "missing" if current is None else "stale")
            )
        else:
            outputs.write_output(path, text.encode("utf-8"), redact=False)
            outcome.files.append(RunbookFile(agent, shown, "written"))
    if not request.agents:
        outcome.files += _orphans(root, folder, set(facts))
    return outcome


def expected_runbooks(
    store: RecordStore, facts: Mapping[str, Facts], drills: Sequence[DrillRecord] | None = None
) -> dict[str, str]:
    """agent -> the runbook it should have now (two reads of the records for any count;
    ``drills``: the drill records when the caller has them already)."""
    passed = newest_passed(store.list("drill") if drills is None else drills)
    repository = newest_of_each_kind(passed)
    incidents: dict[str, list[dict[str, Any]]] = {}
    for incident in store.incidents():
        incidents.setdefault(incident.agent, []).append(incident.to_dict())
    return {
        agent: render(f, agent_figures(agent, passed, incidents.get(agent, ()), repository))
        for agent, f in facts.items()
    }


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _orphans(root: Path, folder: Path, agents: set[str]) -> Sequence[RunbookFile]:
    """Generated runbooks whose agent is gone."""
    out = []
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else ():
        header = header_of(_read(path) or "")
        if header is not None and header[0] not in agents:
            out.append(RunbookFile(header[0], _shown(root, path), "orphan"))
    return out


def _shown(root: Path, path: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
