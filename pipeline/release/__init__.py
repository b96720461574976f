"""Releases: annotated, never-moved tags ``<agent>/vX.Y.Z`` whose message carries a manifest.

A tag's message is ``<agent> vX.Y.Z``, a blank line, then the JSON manifest::

    {"version": 1, "agent", "release": "v1.2.3", "tag", "commit", "previous", "bump", "reasons",
     "root", "files": {root-relative path: sha256}, "model_chain": [{"provider", "model"}],
     "environments": {env: {"model_chain"}} (only those whose overlay changes the chain),
     "eval": summary or null, "created_at", "created_by"}

Modules: ``version`` (semver, tag names), ``tags`` (git tag plumbing, local and remote),
``plan`` (what to release and why), ``manifest`` (what a tag carries), ``core`` (create, push).
"""

from __future__ import annotations

from pipeline.release.core import ReleaseReport, create_releases
from pipeline.release.manifest import MANIFEST_VERSION, agent_eval, tag_message
from pipeline.release.plan import (
    Plan,
    PlannedRelease,
    Skipped,
    make_plan,
    parse_release_as,
    plan_releases,
)
from pipeline.release.tags import TagRef, agent_tags, latest_tag, read_manifest, release_tags
from pipeline.release.version import FIRST_VERSION, Version, parse_tag, tag_name

__all__ = [
    "FIRST_VERSION",
    "MANIFEST_VERSION",
    "Plan",
    "PlannedRelease",
    "ReleaseReport",
    "Skipped",
    "TagRef",
    "Version",
    "agent_eval",
    "agent_tags",
    "create_releases",
    "latest_tag",
    "make_plan",
    "parse_release_as",
    "parse_tag",
    "plan_releases",
    "read_manifest",
    "release_tags",
    "tag_message",
    "tag_name",
]
