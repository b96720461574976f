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

__all__ = ["EVERY_S", "ParseErrors", "Throttle", "say_parse_errors", "throttle"]

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


class ParseErrors(logging.Filter):
    """aiohttp's records of the requests its parser refused (a malformed request line, a header
    over 8 KB, a control character in a header), said through serve's own ``say`` as one line.

    aiohttp logs each with its traceback, whose message quotes up to 100 bytes of the offending
    line: an ``Authorization`` header with a stray control character put the client's key in
    serve's log (and a traceback broke ``--format json``'s one object per line). The line
    said names the client and the kind of error, never the bytes; a flood of them is said
    once per ``every_s`` (:class:`Throttle`). Any other record goes through unchanged.
    """

    def __init__(self, say: Callable[[str], None], every_s: float = EVERY_S) -> None:
        super().__init__()
        self.say = say
        self.throttle = Throttle(every_s)

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        said = logging.LogRecord(
            record.name,
            record.levelno,
            __file__,  # one kind for the throttle, whichever parser callback raised it
            0,
            "refused a malformed request from %s: %s (%d; its bytes are not logged)",
            (_client(record), type(error).__name__, error.code or 400),
            None,
        )
        if self.throttle.filter(said):
            self.say(said.getMessage())
        return False


def _client(record: logging.LogRecord) -> str:
    """The peer aiohttp names in "Error handling request from %s"."""
    args = record.args
    return str(args[0]) if isinstance(args, tuple) and args else "a client"


def say_parse_errors(say: Callable[[str], None]) -> None:
    """Have ``aiohttp.server``'s parse-error records said by ``say`` (:class:`ParseErrors`)."""
    logger = logging.getLogger("aiohttp.server")
    for old in [f for f in logger.filters if isinstance(f, ParseErrors)]:
        logger.removeFilter(old)
    logger.addFilter(ParseErrors(say))
