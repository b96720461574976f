"""Incidents with a severity (P1-P4) and a timeline (detected, acknowledged, mitigated,
resolved), kept as records in git; MTTA and MTTR from the timelines; the runbook section to
follow; a notification for P1 and P2; a post-mortem skeleton when one is resolved.

- :mod:`.lifecycle`: the records of each step, and the rules (no step after resolved);
- :mod:`.auto`: incidents knowngood opens itself (auto-revert, drills, the runtime);
- :mod:`.paging`: runbook sections and the P1/P2 notification;
- :mod:`.metrics`: MTTA, MTTR, drill success rate, measured RTO and RPO against the targets;
- :mod:`.postmortem`: the skeleton written on resolve;
- :mod:`.core`: ``knowngood incident`` (one Request, one Outcome).
"""

from __future__ import annotations

from pipeline.incidents.auto import drill_outcome, open_once, severity_for_env

__all__ = ["drill_outcome", "open_once", "severity_for_env"]
