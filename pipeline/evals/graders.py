"""Who grades the model-graded assertions: ``judge`` (a rubric) and ``similar`` (embeddings).

By default a run's own settings do: ``eval.judge_provider`` for a judge that names no provider,
``eval.embedding_provider`` for ``similar`` (None: the local embedding model), and the
definitions in ``providers:``. The pull-request gate grades HEAD's answers with BASE's graders
instead (:mod:`pipeline.gate.graders`): a grader the change introduced is *refused*, and a case
it would grade is skipped rather than graded (:class:`Ungraded`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.repo import Provider, Settings

__all__ = ["Graders", "Ungraded"]


class Ungraded(Exception):
    """The grader an assertion needs may not be called: its case is skipped, with the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Graders:
    judge_provider: str | None  # for a judge that names no provider
    embedding_provider: str | None  # for similar; None: the local embedding model
    providers: Mapping[str, Provider]  # grader name -> the provider called for it
    refused: Mapping[str, str] = field(default_factory=dict)  # grader name -> why not called
    no_judge: str | None = None  # why a judge that names no provider may not be graded
    no_embedding: str | None = None  # why similar may not be graded

    @classmethod
    def of(cls, settings: Settings) -> Graders:
        """The repository's own graders."""
        ev = settings.eval
        return cls(ev.judge_provider, ev.embedding_provider, settings.providers)

    def judge(self, named: str | None) -> Provider | None:
        """The provider that grades a judge naming ``named`` (None: the default grader); None
        when there is none. Raises Ungraded for a refused grader."""
        if named is None and self.no_judge is not None:
            raise Ungraded(self.no_judge)
        name = named or self.judge_provider
        if name is None:
            return None
        if name in self.refused:
            raise Ungraded(self.refused[name])
        return self.providers.get(name)

    def embedding(self) -> Provider | None:
        """The provider ``similar`` embeds with; None: the local embedding model. Raises
        Ungraded for a refused one."""
        name = self.embedding_provider
        if self.no_embedding is not None:
            raise Ungraded(self.no_embedding)
        if name is None:
            return None
        if name in self.refused:
            raise Ungraded(self.refused[name])
        if name not in self.providers:
            raise Ungraded(f"eval.embedding_provider {name!r} is not among the providers")
        return self.providers[name]
