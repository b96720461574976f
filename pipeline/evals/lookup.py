"""Stage 2 of a run, look up: the answers the cache already holds for the planned jobs.

Before any event loop starts, every job is looked up once (:func:`look_up`); the jobs whose
call must still be sent go on to :mod:`pipeline.evals.call`, the answers found to the
assertions (:mod:`pipeline.evals.verdict`). :class:`Answers` is the cache as the run sees it:
the entries on disk plus the answers this run found or wrote (:mod:`pipeline.evals.store`),
so a request repeated within a run (a judge's, an embedding) is answered once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.evals.cache import Cache
from pipeline.evals.plan import Job
from pipeline.evals.results import EvalRun

__all__ = ["Answers", "look_up"]


class Answers:
    """The run's cached answers by key; with no cache (``--no-cache``) there are none."""

    def __init__(self, cache: Cache | None) -> None:
        self.cache = cache
        self.known: dict[str, dict[str, Any]] = {}  # found before the loop, or written by the run

    def get(self, key: str) -> dict[str, Any] | None:
        if self.cache is None:
            return None
        found = self.known.get(key)
        return found if found is not None else self.cache.get(key)

    def keep(self, key: str, value: dict[str, Any]) -> None:
        """``value`` is cached under ``key`` now (this run wrote it): answer it from memory."""
        if self.cache is not None:
            self.known[key] = value


def look_up(answers: Answers, jobs: Sequence[Job], run: EvalRun, *, offline: bool) -> list[Job]:
    """Look every job up (the answers found stay in ``answers``); return those whose call will
    be sent: no answer cached, not ``offline``, the provider not skipped."""
    sending: list[Job] = []
    for job in jobs:
        if (found := answers.get(job.key)) is not None:
            answers.known[job.key] = found
            continue
        status = run.providers.get(job.provider.name)
        if not offline and (status is None or status.status == "ok"):
            sending.append(job)
    return sending
