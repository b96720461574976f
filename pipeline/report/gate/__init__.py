"""Render a gate result: JSON, text, the PR comment / step summary (markdown), JUnit XML.

JSON follows ``schemas/gate-report.schema.json``. The PR comment starts with the hidden marker
``<!-- knowngood:gate -->`` (how the one comment per PR is found and updated) and a verdict
line; it is built compact enough for GitHub's 65,536-character limit (details are dropped
before anything is cut). The step summary is the full version (the 1 MiB cap is applied when
it is written).
"""

from __future__ import annotations

from pipeline.gate.data import REPORT_VERSION, cost, headline, to_json
from pipeline.report.gate.common import MARKER
from pipeline.report.gate.markdown import comment, markdown
from pipeline.report.gate.plain import junit_xml, text

__all__ = [
    "MARKER",
    "REPORT_VERSION",
    "comment",
    "cost",
    "headline",
    "junit_xml",
    "markdown",
    "text",
    "to_json",
]
