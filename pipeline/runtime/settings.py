"""The runtime's settings: an agent's ``resilience`` block and knowngood.yaml's ``runtime``.

Every key of ``resilience`` in schemas/agent.schema.json is read here, with its documented
default; the schema has already checked types and ranges (the bundle was validated when it was
built), so this only fills in what is absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

__all__ = [
    "DEFAULT_HOLDING_MESSAGE",
    "DEFAULT_STATE_STORE",
    "BreakerSettings",
    "Resilience",
    "is_postgres_url",
    "state_store_location",
    "state_store_path",
    "state_store_url",
]

DEFAULT_STATE_STORE = "sqlite:///.knowngood/state.db"
DEFAULT_HOLDING_MESSAGE = (
    "The assistant is unavailable right now. Please try again in a few minutes."
)
ON_ALL_DOWN = ("error", "message", "cached", "queue")
_PASSWORD = re.compile(r"^[a-z]+://[^/@:]*:[^/@]*@")


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """resilience4j's count-based breaker: its thresholds and timings."""

    window: int = 20
    minimum_calls: int = 5
    failure_rate: float = 0.5
    slow_call_rate: float = 1.0
    open_s: float = 30.0
    half_open_calls: int = 2

    @property
    def needed(self) -> int:
        """Calls the window must hold before the rates count (never more than it can hold)."""
        return min(self.minimum_calls, self.window)


@dataclass(frozen=True, slots=True)
class Resilience:
    timeout_s: float = 30.0
    slow_call_s: float | None = None  # None: timeout_s
    retries: int = 0
    breaker: BreakerSettings = BreakerSettings()
    on_all_down: str = "error"
    holding_message: str | None = None  # None: DEFAULT_HOLDING_MESSAGE for `message`
    daily_budget_usd: float | None = None  # None: no limit on what an agent spends a day

    @property
    def holding_text(self) -> str:
        return self.holding_message or DEFAULT_HOLDING_MESSAGE

    @property
    def slow_after_s(self) -> float:
        """When an attempt becomes slow (never later than its timeout)."""
        if self.slow_call_s is None:
            return self.timeout_s
        return min(self.slow_call_s, self.timeout_s)

    @classmethod
    def from_config(cls, data: Mapping[str, Any] | None) -> Resilience:
        data = data or {}
        cb = data.get("circuit_breaker") or {}
        defaults = BreakerSettings()
        breaker = BreakerSettings(
            window=int(cb.get("window", defaults.window)),
            minimum_calls=int(cb.get("minimum_calls", defaults.minimum_calls)),
            failure_rate=float(cb.get("failure_rate", defaults.failure_rate)),
            slow_call_rate=float(cb.get("slow_call_rate", defaults.slow_call_rate)),
            open_s=float(cb.get("open_s", defaults.open_s)),
            half_open_calls=int(cb.get("half_open_calls", defaults.half_open_calls)),
        )
        on_all_down = str(data.get("on_all_down", "error"))
        if on_all_down not in ON_ALL_DOWN:  # the schema allows no other value
            on_all_down = "error"
        slow = data.get("slow_call_s")
        return cls(
            timeout_s=float(data.get("timeout_s", 30.0)),
            slow_call_s=float(slow) if slow is not None else None,
            retries=int(data.get("retries", 0)),
            breaker=breaker,
            on_all_down=on_all_down,
            holding_message=str(data["holding_message"]) if data.get("holding_message") else None,
            daily_budget_usd=(
                float(data["daily_budget_usd"])
                if data.get("daily_budget_usd") is not None
                else None
            ),
        )


def is_postgres_url(url: str) -> bool:
    """Whether a state store URL names a PostgreSQL database (else a SQLite file)."""
    return url.startswith(("postgresql://", "postgres://"))


def state_store_location(root: Path, url: str | None = None) -> Path | str:
    """Where the state store of ``url`` (default: knowngood.yaml's) is: the SQLite file, or
    the ``postgresql://`` URL as it is. A URL with a password is refused: it would sit in
    knowngood.yaml or a command line; libpq reads ``PGPASSWORD`` or ``~/.pgpass``."""
    url = state_store_url(root, url)
    if is_postgres_url(url):
        if _PASSWORD.match(url):
            raise UsageError(
                "runtime.state_store: the PostgreSQL URL holds a password",
                hint="drop it from the URL and set PGPASSWORD (or ~/.pgpass) where the workers run",
            )
        return url
    return state_store_path(root, url)


def state_store_path(root: Path, url: str | None = None) -> Path:
    """The SQLite file of ``url`` (knowngood.yaml ``runtime.state_store``; default under
    ``.knowngood/``). ``sqlite:///rel/path`` is relative to ``root``, ``sqlite:////abs`` absolute.
    UsageError for any other URL (a PostgreSQL store has no file)."""
    url = state_store_url(root, url)
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        scheme = url.split(":", 1)[0]
        raise UsageError(
            f"runtime.state_store {scheme}:... is not a SQLite file",
            hint=f"use {DEFAULT_STATE_STORE} (one machine) or postgresql://host/db "
            "(several machines)",
        )
    rest = url[len("sqlite:///") :]
    path = Path(rest)
    return path if path.is_absolute() else root / path


def state_store_url(root: Path, url: str | None = None) -> str:
    """``url``, or else knowngood.yaml's ``runtime.state_store``, or else the default."""
    if url is not None:
        return url
    from pipeline.repo import load_settings

    runtime = load_settings(root).raw.get("runtime") or {}
    return str(runtime.get("state_store") or DEFAULT_STATE_STORE)
