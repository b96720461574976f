"""The suite files of the agents a change affects, as one commit has them, read once per gate.

Three checks read BASE's and HEAD's committed suites: the changed expectations
(:mod:`pipeline.gate.expectations`), the changed inputs (:mod:`pipeline.gate.inputs`) and the
repeats BASE asks for (:mod:`pipeline.gate.repeats`). :class:`CommittedSuites` lists each
agent's suite files at a commit once (``git ls-tree``) and parses and validates each once
(``gate.policy.committed_data``), for all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pipeline.gate.policy import committed_data
from pipeline.git import Git
from pipeline.layout import DATA_SUFFIXES

__all__ = ["CommittedSuites"]


class CommittedSuites:
    """The suite files of agents at commits of ``git`` (run in the knowngood root), memoised."""

    def __init__(self, git: Git) -> None:
        self.git = git
        self._files: dict[tuple[str, str], dict[str, str]] = {}
        self._documents: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}

    def files(self, commit: str, agent: str) -> dict[str, str]:
        """Path -> blob of each suite file of ``agent`` at ``commit``."""
        key = (commit, agent)
        if key not in self._files:
            from pipeline.changes.revision import list_tree

            folder = f"evals/{agent}"
            self._files[key] = {
                rel: entry.sha
                for rel, entry in sorted(list_tree(self.git, commit, [folder + "/"]).items())
                if str(PurePosixPath(rel).parent) == folder
                and PurePosixPath(rel).suffix in DATA_SUFFIXES
            }
        return self._files[key]

    def documents(self, commit: str, agent: str) -> dict[str, Mapping[str, Any]]:
        """Path -> data of each suite file of ``agent`` at ``commit`` that parses and passes the
        suite schema (one that does not is left out)."""
        key = (commit, agent)
        if key not in self._documents:
            found: dict[str, Mapping[str, Any]] = {}
            for rel in self.files(commit, agent):
                data = committed_data(self.git, commit, rel, "suite")
                if isinstance(data, Mapping):
                    found[rel] = data
            self._documents[key] = found
        return self._documents[key]
