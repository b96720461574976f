"""``knowngood report``: a static site (HTML with inline SVG charts, no script, no request at
view time) of what the records say, per agent: releases and what ran where, pass rates per
release and provider, incidents and their timelines, MTTR, drills against the recovery targets,
breaker and failover events, and the readiness checklist."""

from __future__ import annotations

from pipeline.site.core import ReportOutcome, ReportRequest, run

__all__ = ["ReportOutcome", "ReportRequest", "run"]
