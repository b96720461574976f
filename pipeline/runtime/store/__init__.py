"""The state store: what every worker of the runtime shares.

Circuit breakers (one row per provider), their transitions (one row each, never updated), the
injected faults of drills, the last good answer per identical request (for ``on_all_down:
cached``) and the turns of each session. Two backends behind one class,
:class:`StateStore`, chosen by knowngood.yaml ``runtime.state_store``:

- ``sqlite:///path`` (default): one file, every worker on this machine
  (:mod:`.sqlite`: WAL, ``BEGIN IMMEDIATE``);
- ``postgresql://...``: every worker on every machine that points at the same database
  (:mod:`.postgres`: row locks; psycopg is imported only then).

Either way a transition one worker commits is what the next read of any other worker sees.
No provider key is ever written here. This package holds no breaker logic (see
:mod:`pipeline.runtime.breaker`): rows in, rows out.
"""

from __future__ import annotations

from pipeline.runtime.store.rows import (
    BUSY_TIMEOUT_MS,
    BreakerEvent,
    BreakerRow,
    Fault,
    StateStoreError,
    StoreUnavailable,
    Turn,
    Tx,
)
from pipeline.runtime.store.state import StateStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "BreakerEvent",
    "BreakerRow",
    "Fault",
    "StateStore",
    "StateStoreError",
    "StoreUnavailable",
    "Turn",
    "Tx",
]
