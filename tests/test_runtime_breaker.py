"""The circuit breaker on a real SQLite state store: resilience4j's states and thresholds,
shared by several processes, every transition an event row."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from runtimeutil import breaker_worker

from pipeline.runtime.breaker import RETRY_AFTER_MAX_S, Breakers, Ticket
from pipeline.runtime.settings import BreakerSettings, Resilience, state_store_path
from pipeline.runtime.store import BreakerEvent, StateStore

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = BreakerSettings(
    window=4, minimum_calls=4, failure_rate=0.5, slow_call_rate=0.75, open_s=10, half_open_calls=2
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    s = StateStore(tmp_path / "state.db")
    yield s  # type: ignore[misc]
    s.close()


def calls(breakers: Breakers, outcomes: str, provider: str = "p") -> None:
    """Make one call per letter: o ok, s slow, f failed, x slow and failed."""
    for code in outcomes:
        ticket = breakers.acquire(provider, SETTINGS)
        assert ticket is not None, f"refused before {code!r}"
        breakers.record(ticket, SETTINGS, failed=code in "fx", slow=code in "sx")


def test_opens_on_the_failure_rate_once_the_window_holds_the_minimum_calls(
    store: StateStore,
) -> None:
    seen: list[BreakerEvent] = []
    breakers = Breakers(store, clock=Clock(), on_transition=seen.append)
    calls(breakers, "ff")
    assert breakers.state("p") == "closed"  # 100% failed, but only 2 of the 4 minimum calls
    calls(breakers, "o")
    assert breakers.state("p") == "closed"
    calls(breakers, "o")  # window ffoo: 50% failed, threshold 50%
    assert breakers.state("p") == "open"
    assert breakers.acquire("p", SETTINGS) is None
    [event] = store.events("p")
    assert (event.from_state, event.to_state, event.calls, event.failure_rate) == (
        "closed",
        "open",
        4,
        0.5,
    )
    assert [(e.provider, e.to_state) for e in seen] == [("p", "open")]  # told once committed


def test_the_window_slides_and_slow_calls_open_it_too(store: StateStore) -> None:
    breakers = Breakers(store, clock=Clock())
    calls(breakers, "fooo" + "o")  # the failure slides out: 0% of the last 4
    assert breakers.state("p") == "closed"
    calls(breakers, "ss")
    assert breakers.state("p") == "closed"  # 50% slow, threshold 75%
    calls(breakers, "x")  # 75% slow
    assert breakers.state("p") == "open"
    assert store.events("p")[-1].slow_call_rate == 0.75


def test_open_skips_then_half_open_lets_a_bounded_number_of_probes_through(
    store: StateStore,
) -> None:
    clock = Clock()
    breakers = Breakers(store, clock=clock)
    calls(breakers, "ffff")
    clock.now += 9.9
    assert breakers.acquire("p", SETTINGS) is None
    clock.now += 0.2
    first = breakers.acquire("p", SETTINGS)
    second = breakers.acquire("p", SETTINGS)
    assert first is not None and first.probe and second is not None
    assert breakers.acquire("p", SETTINGS) is None  # only half_open_calls probes
    assert breakers.state("p") == "half_open"
    breakers.record(first, SETTINGS, failed=False, slow=False)
    assert breakers.state("p") == "half_open"  # waits for every probe
    breakers.record(second, SETTINGS, failed=False, slow=False)
    assert breakers.state("p") == "closed"
    assert [(e.from_state, e.to_state) for e in store.events("p")] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


def test_a_retry_after_opens_it_for_that_long_at_once(store: StateStore) -> None:
    clock = Clock()
    seen: list[BreakerEvent] = []
    breakers = Breakers(store, clock=clock, on_transition=seen.append)
    ticket = breakers.acquire("p", SETTINGS)
    assert ticket is not None
    breakers.hold_off(ticket, SETTINGS, 25.0, agent="support")  # no window needed: it said so
    assert breakers.state("p") == "open"
    [event] = seen
    assert (event.from_state, event.to_state, event.agent) == ("closed", "open", "support")
    assert event.reason == "the provider said 429, Retry-After 25s"
    clock.now += 24.9  # longer than open_s (10): the provider's word wins
    assert breakers.acquire("p", SETTINGS) is None
    # the rest of the burst says about the same: no new transition
    breakers.hold_off(ticket, SETTINGS, 0.5, agent="support")
    assert len(seen) == 1
    clock.now += 0.2
    probe = breakers.acquire("p", SETTINGS)
    assert probe is not None and probe.probe
    assert store.breaker("p").open_for is None  # type: ignore[union-attr]  # half-open: reset
    # a probe told to wait again opens it again for that long; one over the cap is cut
    breakers.hold_off(probe, SETTINGS, 86400.0)
    row = store.breaker("p")
    assert row is not None and row.state == "open" and row.open_for == RETRY_AFTER_MAX_S
    clock.now += RETRY_AFTER_MAX_S - 0.1
    assert breakers.acquire("p", SETTINGS) is None
    clock.now += 0.2
    assert breakers.acquire("p", SETTINGS) is not None
    assert [(e.from_state, e.to_state) for e in store.events("p")] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "open"),
        ("open", "half_open"),
    ]


def test_a_longer_retry_after_extends_an_open_breaker(store: StateStore) -> None:
    clock = Clock()
    breakers = Breakers(store, clock=clock)
    calls(breakers, "ffff")  # open for open_s = 10
    ticket = Ticket("p", 0, False)
    breakers.hold_off(ticket, SETTINGS, 9.5)  # within a second of what it has: kept
    assert [e.to_state for e in store.events("p")] == ["open"]
    breakers.hold_off(ticket, SETTINGS, 60.0)
    assert [(e.from_state, e.to_state) for e in store.events("p")] == [
        ("closed", "open"),
        ("open", "open"),
    ]
    clock.now += 59.9
    assert breakers.acquire("p", SETTINGS) is None


def test_a_failed_probe_opens_it_again(store: StateStore) -> None:
    clock = Clock()
    breakers = Breakers(store, clock=clock)
    calls(breakers, "ffff")
    clock.now += 11
    a, b = breakers.acquire("p", SETTINGS), breakers.acquire("p", SETTINGS)
    assert a is not None and b is not None
    breakers.record(a, SETTINGS, failed=False, slow=False)
    breakers.record(b, SETTINGS, failed=True, slow=False)  # 50% failed: still over
    assert breakers.state("p") == "open"
    clock.now += 5
    assert breakers.acquire("p", SETTINGS) is None  # a fresh open interval


def test_late_outcomes_from_before_a_transition_do_not_count(store: StateStore) -> None:
    clock = Clock()
    breakers = Breakers(store, clock=clock)
    late = breakers.acquire("p", SETTINGS)
    assert late is not None
    calls(breakers, "ffff")
    breakers.record(late, SETTINGS, failed=False, slow=False)
    clock.now += 11
    probe = breakers.acquire("p", SETTINGS)
    assert probe is not None
    breakers.record(late, SETTINGS, failed=True, slow=False)  # from the closed state: ignored
    row = store.breaker("p")
    assert row is not None and row.state == "half_open" and row.outcomes == ""


def test_a_probe_that_never_reports_is_given_up_after_its_deadline(store: StateStore) -> None:
    clock = Clock()
    breakers = Breakers(store, clock=clock)
    calls(breakers, "ffff")
    clock.now += 11
    assert breakers.acquire("p", SETTINGS, probe_deadline_s=5) is not None
    assert breakers.acquire("p", SETTINGS, probe_deadline_s=5) is not None
    assert breakers.acquire("p", SETTINGS, probe_deadline_s=5) is None  # both out, none back
    clock.now += 6  # their worker died
    again = breakers.acquire("p", SETTINGS, probe_deadline_s=5)
    assert again is not None and again.probe


def test_a_transition_made_by_one_process_is_seen_by_the_others(
    store: StateStore, tmp_path: Path
) -> None:
    """Two real processes on the same file: one opens the breaker, the other skips the
    provider at its next call; and concurrent writers lose no outcome."""
    breakers = Breakers(store)
    assert breakers.acquire("p", SETTINGS) is not None

    def run(*args: str) -> subprocess.Popen[str]:
        return breaker_worker(str(store.path), *args)

    opener = run("p", "f", "4", "4")
    out, _ = opener.communicate(timeout=30)
    assert out.split() == ["open"]
    assert breakers.acquire("p", SETTINGS) is None  # seen here, in this process
    [event] = store.events("p")
    assert event.pid == opener.pid and event.to_state == "open"
    writers = [run("q", "o", "40", "1000") for _ in range(3)]
    for w in writers:
        assert w.communicate(timeout=30)[0].split() == ["closed"]
    row = store.breaker("q")
    assert row is not None and row.outcomes == "o" * 120  # no outcome lost between writers


def test_resilience_reads_every_key_of_the_schema() -> None:
    """A key nothing reads is removed from the schema: each one here changes the settings."""
    schema = json.loads((ROOT / "schemas" / "agent.schema.json").read_text())
    block = schema["$defs"]["resilience"]["properties"]
    config = {
        "timeout_s": 0.5,
        "slow_call_s": 0.2,
        "retries": 2,
        "on_all_down": "cached",
        "holding_message": "Back soon.",
        "daily_budget_usd": 12.5,
        "circuit_breaker": {
            "window": 7,
            "minimum_calls": 3,
            "failure_rate": 0.25,
            "slow_call_rate": 0.9,
            "open_s": 2.5,
            "half_open_calls": 4,
        },
    }
    assert set(config) == set(block)
    assert set(config["circuit_breaker"]) == set(block["circuit_breaker"]["properties"])
    default, read = Resilience.from_config({}), Resilience.from_config(config)
    for name, value in config.items():
        if name != "circuit_breaker":
            assert getattr(read, name) == value != getattr(default, name), name
    for name, value in config["circuit_breaker"].items():
        assert getattr(read.breaker, name) == value != getattr(default.breaker, name), name
    assert read.slow_after_s == 0.2 and default.slow_after_s == default.timeout_s == 30


def test_state_store_urls(tmp_path: Path) -> None:
    assert state_store_path(tmp_path, "sqlite:///.knowngood/x.db") == tmp_path / ".knowngood/x.db"
    assert state_store_path(tmp_path, "sqlite:////var/x.db") == Path("/var/x.db")
    (tmp_path / "knowngood.yaml").write_text("version: 1\nproviders:\n  p: {model: openai/x}\n")
    assert state_store_path(tmp_path) == tmp_path / ".knowngood" / "state.db"
    from pipeline.errors import UsageError

    with pytest.raises(UsageError, match="postgresql"):
        state_store_path(tmp_path, "postgresql://db/knowngood")


def test_the_store_file_is_private(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "deep" / "state.db")
    store.close()
    assert (tmp_path / "deep" / "state.db").stat().st_mode & 0o077 == 0


def test_cached_answers_are_kept_per_request_and_pruned_per_agent(store: StateStore) -> None:
    for i in range(5):
        store.save_answer(f"k{i}", "a", "production", "p", 100.0 + i, {"n": i})
    store.save_answer("other", "b", "production", "p", 1.0, {"n": -1})
    found = store.cached_answer("k4")
    assert found is not None and found[0] == {"n": 4} and found[1] == "p"
    assert store.prune_answers(keep=2) == 3  # agent a keeps its 2 newest, b its one
    assert [store.cached_answer(f"k{i}") is not None for i in range(5)] == [False] * 3 + [True] * 2
    assert store.cached_answer("other") is not None


def test_tickets_are_plain_values() -> None:
    assert Ticket("p", 3, True) == Ticket("p", 3, True)
