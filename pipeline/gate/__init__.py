"""The pull-request gate (``knowngood gate --base REV``): values only; ``pipeline.report.gate``
renders them.

Modules: ``model`` (the result), ``compare`` (base against head, case by case), ``locate``
(annotations on HEAD's files and lines), ``core`` (validate, evaluate, get BASE's results),
``data`` (the report's JSON and verdict line), ``command`` (the command: the check, then the
report files, step summary and PR comment it asks for).
"""

from __future__ import annotations

from pipeline.gate.compare import compare_runs, filter_run
from pipeline.gate.core import GateOptions, run_gate
from pipeline.gate.locate import parse_json_path
from pipeline.gate.model import (
    COMPARISONS,
    AgentGate,
    Annotation,
    CaseDiff,
    Comparison,
    GateResult,
    Side,
    SideStatus,
)

__all__ = [
    "COMPARISONS",
    "AgentGate",
    "Annotation",
    "CaseDiff",
    "Comparison",
    "GateOptions",
    "GateResult",
    "Side",
    "SideStatus",
    "compare_runs",
    "filter_run",
    "parse_json_path",
    "run_gate",
]
