"""The post-mortem skeleton written when an incident is resolved.

``postmortems/<date detected>-<incident id>.md`` in the repository (commit it like any file):
the timeline filled in from the incident's records, the figures (time to acknowledge, to
recovery), the runbook sections it followed, what the runbook expected (the newest passed drill
of the matching kind, and the RTO target for a P1) against what it took, and headings for what
worked and the follow-ups. A file that exists already is never overwritten (someone may have
started writing it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.incidents.metrics import Targets
from pipeline.incidents.paging import SCENARIO_DRILL, runbook_sections
from pipeline.recordbuild import Incident
from pipeline.recordtypes import DrillRecord

POSTMORTEM_DIR = "postmortems"


def postmortem_path(incident: Incident) -> str:
    """Relative to the repository root."""
    return f"{POSTMORTEM_DIR}/{incident.detected_at[:10]}-{incident.id}.md"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.1f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def expectations(
    incident: Incident, drills: Sequence[DrillRecord], targets: Targets
) -> list[tuple[str, float, str]]:
    """(what the runbook expects, seconds, where that figure comes from) for this incident."""
    out: list[tuple[str, float, str]] = []
    kind = SCENARIO_DRILL.get(incident.scenario or "")
    passed = [
        (d, seconds)
        for d in drills
        if d["drill"] == kind
        and d["outcome"] == "passed"
        and (seconds := d["recovery_s"]) is not None
    ]
    if passed:
        newest, seconds = max(passed, key=lambda p: p[0]["at"])
        out.append(
            (
                f"recovery as in the {kind} drill",
                float(seconds),
                f"{kind} drill {newest['id']} at {newest['at']}",
            )
        )
    if incident.severity == "P1":
        out.append(("recovery within the RTO", targets.rto_s, "knowngood.yaml runtime.targets"))
    return out


def render(incident: Incident, drills: Sequence[DrillRecord], targets: Targets) -> str:
    """The skeleton (Markdown) for a resolved ``incident``; ``drills``: the agent's drills."""
    opening = incident.records[0]
    title = f"# Post-mortem: {opening['what']}"
    lines = [
        title,
        "",
        f"- Incident: `{incident.id}` ({incident.severity or 'no severity'})",
        f"- Agent: {incident.agent}, environment: {incident.env}",
        f"- Release: {incident.release or '-'}"
        + (f", restored: {incident.restored_release}" if incident.restored_release else ""),
        f"- Detected: {incident.detected_at} by {opening.get('by') or opening.get('actor')}",
        f"- Time to acknowledge: {duration(incident.acknowledge_s)}",
        f"- Time to recovery: {duration(incident.recovery_s)}",
        "- Runbook: "
        + ", ".join(
            f"[{s}]({'../' + s})"
            for s in runbook_sections(incident.agent, incident.severity, incident.scenario)
        ),
        "",
        "## Timeline",
        "",
        "| when (UTC) | step | by | what |",
        "|---|---|---|---|",
    ]
    for row in incident.timeline():
        said = str(row["what"]) + (f": {row['why']}" if row["why"] else "")
        lines.append(f"| {row['at']} | {row['step']} | {_cell(row['by'])} | {_cell(said)} |")
    lines += ["", "## What worked", "", "- ", "", "## What took longer than the runbook said", ""]
    lines += _longer(incident, expectations(incident, drills, targets))
    lines += ["", "## Follow-ups", "", "- [ ] ", ""]
    return "\n".join(lines)


def _longer(incident: Incident, expected: list[tuple[str, float, str]]) -> list[str]:
    if not expected:
        return ["- (no drill has measured this scenario yet: nothing to compare with)", "- "]
    taken = incident.recovery_s
    rows = []
    for label, seconds, source in expected:
        verdict = "not recovered" if taken is None else "longer" if taken > seconds else "within"
        rows.append(
            f"- Expected {label}: {duration(seconds)} ({source}); took {duration(taken)}: {verdict}"
        )
    return [*rows, "- "]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def write(root: Path, rel: str, text: str) -> bool:
    """Write ``text`` to ``root/rel`` through a temporary file and a rename; False (nothing
    written) when the file exists."""
    final = root / rel
    if final.exists():
        return False
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".postmortem-", suffix=".tmp", dir=final.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            os.link(tmp, final)  # never replaces a file that appeared meanwhile
        except FileExistsError:
            return False
    finally:
        Path(tmp).unlink(missing_ok=True)
    return True
