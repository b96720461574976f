"""The tables of the state store, for SQLite and PostgreSQL (one text, two spellings).

Tables are prefixed ``knowngood_`` so that other tenants (DBOS's system tables) can live in the
same database. ``{real}`` is a float of 8 bytes (PostgreSQL's ``REAL`` has 4: unix times would
lose their milliseconds), ``{serial}`` an auto-increment key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.runtime.store.rows import Tx

__all__ = ["SCHEMA_VERSION", "create", "statements"]

SCHEMA_VERSION = 7  # 2: sessions and their turns, the queue of requests made while all was down
# 3: knowngood_answers.session (a session's cached answers go with it; added to older stores)
# 4: knowngood_breakers.open_for (a provider's Retry-After; added to older stores)
# 5: knowngood_replays (the answers kept for an Idempotency-Key)
# 6: knowngood_spend (what each agent spent a day, for resilience.daily_budget_usd)
# 7: knowngood_holds (what requests in flight set aside of that budget)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowngood_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS knowngood_breakers (
    provider TEXT PRIMARY KEY,
    state TEXT NOT NULL,           -- closed | open | half_open
    generation INTEGER NOT NULL,   -- +1 at every transition: late outcomes are ignored
    since {real} NOT NULL,         -- unix time of the last transition
    outcomes TEXT NOT NULL,        -- the window, oldest first: o ok, s slow, f failed, x both
    permits INTEGER NOT NULL,      -- half-open: probe calls let through so far
    permit_at {real} NOT NULL,     -- unix time the last probe was let through
    open_for {real}                -- open this long, not open_s: a 429's Retry-After (version 4)
);
CREATE TABLE IF NOT EXISTS knowngood_breaker_events (
    id {serial},
    at {real} NOT NULL,
    provider TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    calls INTEGER NOT NULL,
    failure_rate {real} NOT NULL,
    slow_call_rate {real} NOT NULL,
    agent TEXT,
    pid INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS knowngood_breaker_events_provider
    ON knowngood_breaker_events (provider, id);
CREATE INDEX IF NOT EXISTS knowngood_breaker_events_at ON knowngood_breaker_events (at);
CREATE TABLE IF NOT EXISTS knowngood_answers (
    key TEXT PRIMARY KEY,          -- sha256 of the agent, environment and the exact request
    agent TEXT NOT NULL,
    env TEXT NOT NULL,
    provider TEXT NOT NULL,
    at {real} NOT NULL,
    response TEXT NOT NULL,        -- the chat.completion JSON that was answered
    session TEXT                   -- the session of the request, if any (version 3)
);
CREATE INDEX IF NOT EXISTS knowngood_answers_age ON knowngood_answers (agent, at);
CREATE TABLE IF NOT EXISTS knowngood_faults (
    provider TEXT PRIMARY KEY,     -- injected fault: every call to it fails at once ...
    until {real} NOT NULL,         -- ... until this unix time
    set_at {real} NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS knowngood_sessions (
    session TEXT PRIMARY KEY,
    agent TEXT NOT NULL,           -- a session belongs to one agent ...
    env TEXT NOT NULL,             -- ... in one environment
    turns INTEGER NOT NULL,        -- turns stored so far (the last one's n)
    created {real} NOT NULL,
    updated {real} NOT NULL
);
CREATE INDEX IF NOT EXISTS knowngood_sessions_updated ON knowngood_sessions (updated);
CREATE TABLE IF NOT EXISTS knowngood_turns (
    session TEXT NOT NULL,
    n INTEGER NOT NULL,            -- 1, 2, ... in the order they were answered
    at {real} NOT NULL,
    agent TEXT NOT NULL,
    env TEXT NOT NULL,
    release TEXT,                  -- the release that served it (agent/vX.Y.Z)
    version TEXT,
    provider TEXT,                 -- the provider that answered (NULL: on_all_down did)
    model TEXT,
    fallback TEXT,                 -- message | cached when no provider answered
    messages TEXT NOT NULL,        -- JSON: the client's messages of this turn
    answer TEXT NOT NULL,          -- JSON: the assistant message
    attempts TEXT NOT NULL,        -- JSON: each provider tried, how it went, how long
    PRIMARY KEY (session, n)
);
CREATE TABLE IF NOT EXISTS knowngood_queued (
    id TEXT PRIMARY KEY,           -- the id the 202 gave (also the DBOS workflow id)
    agent TEXT NOT NULL,
    env TEXT NOT NULL,
    session TEXT,                  -- answered in order with the session's other requests:
    seq INTEGER NOT NULL,          -- 1, 2, ... per session (its DBOS priority: the order)
    status TEXT NOT NULL,          -- queued | answered | failed
    created {real} NOT NULL,
    answered {real},
    provider TEXT,
    release TEXT,
    turn INTEGER,                  -- the session's turn the answer was stored as
    response TEXT,                 -- JSON: the chat.completion, once answered
    error TEXT,                    -- why it failed (a provider refused it, the agent is gone)
    callback TEXT,                 -- the URL the answer is POSTed to, if any
    delivered {real},              -- when the callback accepted it
    callback_error TEXT
);
CREATE INDEX IF NOT EXISTS knowngood_queued_session ON knowngood_queued (session, status);
CREATE TABLE IF NOT EXISTS knowngood_replays (
    key TEXT PRIMARY KEY,          -- sha256 of the client (its API key's place) and its key
    owner TEXT NOT NULL,           -- the claim of the request answering it (machine:pid:start:random)
    fingerprint TEXT NOT NULL,     -- sha256 of the request body the key came with
    created {real} NOT NULL,
    done {real},                   -- when its answer was kept (NULL: still being answered)
    status INTEGER,                -- the answer: its HTTP status ...
    body TEXT,                     -- ... its body (JSON; a stream's: the chat.completion) ...
    headers TEXT                   -- ... and its X-Knowngood-* headers (JSON)
);
CREATE INDEX IF NOT EXISTS knowngood_replays_created ON knowngood_replays (created);
CREATE TABLE IF NOT EXISTS knowngood_spend (
    agent TEXT NOT NULL,
    env TEXT NOT NULL,
    day TEXT NOT NULL,             -- YYYY-MM-DD, UTC
    usd {real} NOT NULL,           -- at litellm's price of the tokens the answers reported
    PRIMARY KEY (agent, env, day)
);
CREATE TABLE IF NOT EXISTS knowngood_holds (
    owner TEXT PRIMARY KEY,        -- the request holding (machine:pid:start:random)
    agent TEXT NOT NULL,
    env TEXT NOT NULL,
    day TEXT NOT NULL,             -- YYYY-MM-DD, UTC: the day of the budget it holds
    usd {real} NOT NULL,           -- the most the request may cost
    expires {real} NOT NULL        -- unix time it lapses, were its worker killed
);
CREATE INDEX IF NOT EXISTS knowngood_holds_day ON knowngood_holds (agent, env, day)
"""

_SPELLING = {
    "sqlite": {"real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {
        "real": "DOUBLE PRECISION",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}


def statements(dialect: str) -> list[str]:
    """The CREATE statements for ``dialect`` (sqlite or postgresql), in order."""
    text = _SCHEMA.format(**_SPELLING[dialect])
    lines = [line.split("--")[0].rstrip() for line in text.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


# Columns later versions added to a table older stores already have: (table, column, type).
_ADDED = (
    ("knowngood_answers", "session", "TEXT"),
    ("knowngood_breakers", "open_for", "{real}"),
)
_ADDED_INDEXES = (
    "CREATE INDEX IF NOT EXISTS knowngood_answers_session ON knowngood_answers (session)",
)


def create(db: Tx, dialect: str, version: int) -> None:
    """Create the tables in ``db`` (inside the caller's transaction, which the backends hold
    alone: SQLite's write lock, a PostgreSQL advisory lock), add the columns later versions
    added to an older store's tables, and record ``version``."""
    for statement in statements(dialect):
        db.execute(statement)
    for table, column, kind in _ADDED:
        if not _has_column(db, dialect, table, column):
            spelled = kind.format(**_SPELLING[dialect])
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {spelled}")
    for statement in _ADDED_INDEXES:
        db.execute(statement)
    db.execute(
        "INSERT INTO knowngood_meta (key, value) VALUES ('schema_version', ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(version),),
    )


def _has_column(db: Tx, dialect: str, table: str, column: str) -> bool:
    if dialect == "sqlite":
        query = "SELECT count(*) FROM pragma_table_info(?) WHERE name = ?"
    else:
        query = (
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? AND column_name = ?"
        )
    return bool(int(db.execute(query, (table, column)).fetchone()[0]))
