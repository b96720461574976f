"""Keep a library's log readable while something it needs is down: :class:`Throttle` lets the
first record of each kind through, then one per ``every_s``, saying how many it held back.

DBOS logs a warning (with SQLAlchemy's "Background on this error" link) each time one of its
threads finds the state store away: about 27 lines a second while PostgreSQL is stopped. The
outage itself is said once by serve (``state store unavailable``); what DBOS adds should not
bury it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["EVERY_S", "Throttle", "throttle"]

EVERY_S = 60.0


class Throttle(logging.Filter):
    """A record of a kind (its logger, level and the line that logged it) goes through once
    per ``every_s``; the next one that does says how many were held back meanwhile."""

    def __init__(self, every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: dict[tuple[str, int, str, int], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, record.pathname, record.lineno)
        now = self.clock()
        with self._lock:
            last, held = self._seen.get(kind, (None, 0))
            if last is not None and now - last < self.every_s:
                self._seen[kind] = (last, held + 1)
                return False
            self._seen[kind] = (now, 0)
        if held and last is not None:
            record.msg = (
                f"{record.getMessage()} ({held} more like it in the last "
                f"{now - last:.0f}s not shown)"
            )
            record.args = ()
        return True


def throttle(logger_name: str, every_s: float = EVERY_S) -> None:
    """Throttle ``logger_name``'s own records (once per process)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, Throttle) for f in logger.filters):
        logger.addFilter(Throttle(every_s))
