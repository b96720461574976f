"""The answers kept for an ``Idempotency-Key`` (:mod:`pipeline.runtime.idempotency`): one row
per key, claimed by the request that answers it, then holding that answer for the retries."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.runtime.store.rows import Tx

__all__ = ["ReplayRow", "ReplayRows"]

_COLUMNS = "key, owner, fingerprint, created, done, status, body, headers"


@dataclass(frozen=True, slots=True)
class ReplayRow:
    key: str
    owner: str
    fingerprint: str
    created: float
    done: float | None = None  # None: its request is still being answered
    status: int | None = None
    body: str | None = None
    headers: dict[str, str] | None = None

    @classmethod
    def from_row(cls, row: Any) -> ReplayRow:
        values = list(row)
        values[7] = json.loads(values[7]) if values[7] else None
        return cls(*values)


class ReplayRows:
    """The Idempotency-Key methods of :class:`pipeline.runtime.store.StateStore`."""

    if TYPE_CHECKING:

        @property
        def dialect(self) -> str: ...

        def transaction(self) -> contextlib.AbstractContextManager[Tx]: ...

    def claim_replay(
        self,
        key: str,
        owner: str,
        fingerprint: str,
        now: float,
        stale_before: float,
        gone: Callable[[str], bool] = lambda owner: False,
    ) -> ReplayRow | None:
        """Claim ``key`` for the request ``owner`` answers: None when it is claimed (a new
        key, or one whose request never finished and was claimed before ``stale_before`` or by
        an owner that is ``gone``: its worker died), else the row that holds it."""
        lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO knowngood_replays ({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, NULL, NULL, NULL, NULL) ON CONFLICT (key) DO NOTHING",
                (key, owner, fingerprint, now),
            )
            found = db.execute(
                f"SELECT {_COLUMNS} FROM knowngood_replays WHERE key = ?{lock}", (key,)
            ).fetchone()
            row = ReplayRow.from_row(found)
            if row.owner == owner:
                return None
            dead = row.created < stale_before or gone(row.owner)
            if row.done is None and dead and row.fingerprint == fingerprint:
                db.execute(
                    "UPDATE knowngood_replays SET owner = ?, created = ? WHERE key = ?",
                    (owner, now, key),
                )
                return None
            return row

    def keep_replay(
        self, key: str, owner: str, now: float, status: int, body: str, headers: dict[str, str]
    ) -> None:
        """The answer of the request that claimed ``key``, for its retries."""
        with self.transaction() as db:
            db.execute(
                "UPDATE knowngood_replays SET done = ?, status = ?, body = ?, headers = ? "
                "WHERE key = ? AND owner = ?",
                (now, status, body, json.dumps(headers), key, owner),
            )

    def release_replay(self, key: str, owner: str) -> None:
        """Give ``key`` back unanswered (the request failed in a way a retry may not)."""
        with self.transaction() as db:
            db.execute(
                "DELETE FROM knowngood_replays WHERE key = ? AND owner = ? AND done IS NULL",
                (key, owner),
            )

    def prune_replays(self, before: float, limit: int = 500) -> int:
        """Forget up to ``limit`` keys claimed before ``before`` (unix time), oldest first; how
        many went."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM knowngood_replays WHERE key IN (SELECT key FROM knowngood_replays "
                "WHERE created < ? ORDER BY created LIMIT ?)",
                (before, limit),
            )
            return int(cursor.rowcount)
