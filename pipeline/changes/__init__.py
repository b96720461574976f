"""Semantic diff between two revisions of a knowngood repository (``knowngood diff``).

Per agent: which files changed, the resolved config per environment, the rendered system
prompt, tool-schema compatibility, and the semver bump a release needs. Values only; the
reporters in ``pipeline.report.diff`` render them.

Modules: ``revision`` reads git objects (never a checkout), ``config`` diffs resolved configs,
``toolschema`` classifies tool-schema changes, ``agent`` compares one agent, ``core`` ties it up.
"""

from __future__ import annotations

from pipeline.changes.core import affected_agents, agent_bump, diff_revisions
from pipeline.changes.model import (
    AgentDiff,
    Bump,
    ConfigChange,
    DiffReport,
    FileChange,
    Kind,
    Problem,
    Revision,
    ToolChange,
    max_bump,
)
from pipeline.changes.toolschema import compare_schema, compare_tool, compare_tools

__all__ = [
    "AgentDiff",
    "Bump",
    "ConfigChange",
    "DiffReport",
    "FileChange",
    "Kind",
    "Problem",
    "Revision",
    "ToolChange",
    "affected_agents",
    "agent_bump",
    "compare_schema",
    "compare_tool",
    "compare_tools",
    "diff_revisions",
    "max_bump",
]
