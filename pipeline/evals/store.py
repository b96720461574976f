"""Stage 4 of a run, store: a provider's answer into the cache, as soon as it arrives.

An entry is serialised (and redacted) when it arrives, so a value that cannot be cached fails
its call at once, then appended to the process's pack (:mod:`pipeline.evals.cachepack`: a crash
leaves no half entry). Writes happen on the loop's thread: appending a line takes microseconds,
less than what a writer thread costs in GIL hand-offs with the loop's many system calls. On
storage where writes take more than :data:`SLOW_WRITE_S` on average (a network file system),
they go to one thread from then on. A failed write is raised when the run ends
(:meth:`Store.flush`). Every answer stored is answered from memory for the rest of the run
(:class:`pipeline.evals.lookup.Answers`); the answers a lane already wrote are only kept there.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from pipeline.evals.lookup import Answers

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["SLOW_WRITES_SEEN", "SLOW_WRITE_S", "Store"]

# Cache writes slower than this on average (over at least SLOW_WRITES_SEEN, the first ones
# creating folders) go to a thread from then on.
SLOW_WRITE_S: Final = 0.002
SLOW_WRITES_SEEN: Final = 32


class Store:
    """Writes a run's answers into ``answers``' cache (none: nothing is stored)."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        self._writer: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []
        self._error: Exception | None = None
        self._count = 0
        self._seconds = 0.0

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Cache ``value``: serialised here (a bad value raises now), then written."""
        cache = self.answers.cache
        if cache is None:
            return
        payload = cache.encode(key, value)
        self.answers.keep(key, value)
        if self._writer is not None:
            self._writes.append(self._writer.submit(cache.write, key, payload))
            return
        started = time.perf_counter()
        try:
            cache.write(key, payload)
        except Exception as e:
            self._error = self._error or e
        self._count += 1
        self._seconds += time.perf_counter() - started
        if self._count >= SLOW_WRITES_SEEN and self._seconds / self._count > SLOW_WRITE_S:
            from concurrent.futures import ThreadPoolExecutor

            self._writer = ThreadPoolExecutor(1, thread_name_prefix="knowngood-cache")

    def written_elsewhere(self, key: str, value: dict[str, Any]) -> None:
        """A lane cached ``value`` itself (the same entry :meth:`put` writes): keep it only."""
        self.answers.keep(key, value)

    def flush(self, *, raise_errors: bool) -> None:
        """Wait for every cache write; raise the first that failed unless already failing."""
        writer, writes = self._writer, self._writes
        error: BaseException | None = self._error
        self._writer, self._writes, self._error = None, [], None
        if writer is not None:
            writer.shutdown(wait=True)
        for write in writes:
            error = error or write.exception()
        if error is not None and raise_errors:
            raise error
