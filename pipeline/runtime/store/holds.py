"""What requests in flight set aside of their agent's daily budget
(:mod:`pipeline.runtime.spend`): one row per request, from before its first provider call
until it ends (its real cost is then counted in ``knowngood_spend``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.runtime.store.rows import Tx

__all__ = ["HoldRows"]


class HoldRows:
    """The budget-hold methods of :class:`pipeline.runtime.store.StateStore`."""

    if TYPE_CHECKING:

        @property
        def dialect(self) -> str: ...

        def transaction(self) -> contextlib.AbstractContextManager[Tx]: ...

    def hold_spend(
        self,
        key: tuple[str, str, str],
        usd: float,
        budget: float,
        owner: str,
        now: float,
        expires: float,
        gone: Callable[[str], bool] = lambda owner: False,
    ) -> tuple[float, float] | None:
        """Set ``usd`` aside for the request ``owner`` of ``key`` (agent, env, day), in one
        transaction, only if what was spent, what requests in flight hold, and ``usd`` fit in
        ``budget``: None when held, else (spent, held) that left too little. Holds past their
        expiry, or whose owner is ``gone`` (its worker died), are dropped first."""
        agent, env, day = key
        with self.transaction() as db:
            if self.dialect == "postgresql":  # the day's row, locked: holders of it queue here
                db.execute(
                    "INSERT INTO knowngood_spend (agent, env, day, usd) VALUES (?, ?, ?, 0) "
                    "ON CONFLICT (agent, env, day) DO NOTHING",
                    key,
                )
                lock = " FOR UPDATE"
            else:  # BEGIN IMMEDIATE: every writer queues already
                lock = ""
            row = db.execute(
                "SELECT usd FROM knowngood_spend WHERE agent = ? AND env = ? AND day = ?" + lock,
                key,
            ).fetchone()
            spent = float(row[0]) if row is not None else 0.0
            db.execute("DELETE FROM knowngood_holds WHERE expires <= ?", (now,))
            held = 0.0
            rows = db.execute(
                "SELECT owner, usd FROM knowngood_holds WHERE agent = ? AND env = ? AND day = ?",
                key,
            ).fetchall()
            for other, amount in rows:
                if gone(other):
                    db.execute("DELETE FROM knowngood_holds WHERE owner = ?", (other,))
                else:
                    held += float(amount)
            if spent + held + usd > budget:
                return spent, held
            db.execute(
                "INSERT INTO knowngood_holds (owner, agent, env, day, usd, expires) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (owner, agent, env, day, usd, expires),
            )
            return None

    def release_hold(self, owner: str) -> None:
        """Give back what the request ``owner`` held (its real cost is counted on its own)."""
        with self.transaction() as db:
            db.execute("DELETE FROM knowngood_holds WHERE owner = ?", (owner,))

    def held(self, agent: str, env: str, day: str, now: float | None = None) -> float:
        """USD the requests in flight of ``agent`` in ``env`` hold on ``day``: every hold, or
        with ``now`` those that have not lapsed by then."""
        lapse, args = ("", ()) if now is None else (" AND expires > ?", (now,))
        with self.transaction() as db:
            row = db.execute(
                "SELECT coalesce(sum(usd), 0) FROM knowngood_holds "
                "WHERE agent = ? AND env = ? AND day = ?" + lapse,
                (agent, env, day, *args),
            ).fetchone()
        return float(row[0])
