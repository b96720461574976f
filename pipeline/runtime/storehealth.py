"""Whether the state store answers, as the runtime saw it: said once in the log when it goes
away and once when it is back, on ``/metrics`` (``knowngood_state_store_up``) and ``/readyz``.

While it is away (:class:`~pipeline.runtime.store.StoreUnavailable`) the runtime keeps answering
what does not need it: every call goes through, without breakers (a provider's own failures still
fail over), no answer is cached and no injected fault is read; a request with a session, or one
the outage queue would take, gets 503 ``state_store_unavailable``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["StoreHealth"]


class StoreHealth:
    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.log = log
        self.down_since: float | None = None  # unix time of the first failure of this outage
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        return self.down_since is None

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if self.down_since is not None:
                return
            self.down_since = time.time()
        if self.log is not None:
            why = str(error).split("\n", 1)[0]
            self.log(
                f"state store unavailable ({why}): calls go through without breakers; "
                "sessions and the outage queue answer 503 until it is back"
            )

    def answered(self) -> None:
        """The store answered: the outage, if there was one, is over."""
        if self.down_since is None:  # the common case: one attribute read
            return
        with self._lock:
            since, self.down_since = self.down_since, None
        if since is not None and self.log is not None:
            self.log(f"state store back after {time.time() - since:.1f}s")
