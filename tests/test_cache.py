"""The response cache: keys, atomic writes under concurrency and SIGKILL, corruption, pruning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gitutil import git, init_repo

from pipeline.evals.cache import Cache, CacheStats, cache_key

REPO = Path(__file__).resolve().parent.parent

BASE: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "api_base": None,
    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    "tools": [
        {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    ],
    "params": {"temperature": 0, "max_tokens": 100},
    "repeat_index": 0,
}
VALUE = {
    "text": "Hello!",
    "tool_calls": [],
    "prompt_tokens": 12,
    "completion_tokens": 3,
    "cost_usd": 0.00001,
    "latency_ms": 321.5,
    "model": "gpt-4o-mini",
}


def key(**changes: Any) -> str:
    return cache_key(**{**BASE, **changes})


# --- keys ---------------------------------------------------------------------------------------------


def test_key_is_sha256_hex_and_stable() -> None:
    k = key()
    assert len(k) == 64 and all(c in "0123456789abcdef" for c in k)
    assert key() == k
    # mapping order never matters: the JSON is canonical
    reordered = {"max_tokens": 100, "temperature": 0}
    messages = [{"content": "Be brief.", "role": "system"}, {"content": "Hi", "role": "user"}]
    assert key(params=reordered, messages=messages) == k


@pytest.mark.parametrize(
    "change",
    [
        {"model": "openai/gpt-4o"},
        {"api_base": "http://127.0.0.1:8000/v1"},
        {"messages": [{"role": "user", "content": "Hi"}]},
        {"tools": None},
        {"params": {"temperature": 0.7, "max_tokens": 100}},
        {"params": {"temperature": 0, "max_tokens": 100, "seed": 1}},
        {"repeat_index": 1},
        {"kind": "embed"},
    ],
)
def test_everything_that_changes_the_answer_changes_the_key(change: dict[str, Any]) -> None:
    assert key(**change) != key()


def test_no_tools_is_one_key() -> None:
    assert key(tools=None) == key(tools=[])


@pytest.mark.parametrize(
    "secretish",
    [
        {"api_key": "sk-live-123"},
        {"headers": {"Authorization": "Bearer x"}},
        {"extra_headers": {"x-api-key": "y"}},
        {"timeout": 30},
        {"num_retries": 4},
    ],
)
def test_keys_and_transport_params_are_ignored(secretish: dict[str, Any]) -> None:
    assert key(params={**BASE["params"], **secretish}) == key()


def test_credentials_in_api_base_are_ignored() -> None:
    plain = key(api_base="https://example.test/v1")
    assert key(api_base="https://user:s3cret@example.test/v1") == plain  # knowngood: allow-secret


def test_api_keys_in_the_environment_change_nothing_and_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path)
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    before = key()
    secrets = {
        "OPENAI_API_KEY": "sk-test-SENTINEL-openai",  # knowngood: allow-secret
        "ANTHROPIC_API_KEY": "sk-ant-SENTINEL",  # knowngood: allow-secret
        "GEMINI_API_KEY": "AIza-SENTINEL",
    }
    for var, value in secrets.items():
        monkeypatch.setenv(var, value)
    assert key() == before
    cache.put(key(), VALUE)
    cache.put(key(params={**BASE["params"], "api_key": secrets["OPENAI_API_KEY"]}), VALUE)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        assert b"SENTINEL" not in data, path


def test_non_json_params_are_refused() -> None:
    with pytest.raises(TypeError, match="not JSON"):
        key(params={"temperature": object()})


# --- get / put --------------------------------------------------------------------------------------


def test_put_then_get_and_layout(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache")
    k = key()
    assert cache.get(k) is None
    cache.put(k, VALUE)
    assert cache.get(k) == VALUE
    path = tmp_path / "cache" / "v1" / k[:2] / f"{k}.json"
    assert cache.path(k) == path
    assert json.loads(path.read_text()) == {"key": k, "value": VALUE}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    cache.put(k, {**VALUE, "text": "again"})  # replacing is fine
    assert cache.get(k) == {**VALUE, "text": "again"}


def test_unicode_round_trips(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put(key(), {"text": "Grüße, 世界 ✓"})
    assert cache.get(key()) == {"text": "Grüße, 世界 ✓"}


@pytest.mark.parametrize("bad", ["", "abc", "../" + "a" * 61, "A" * 64, "g" * 64])
def test_only_sha256_keys(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="not a cache key"):
        Cache(tmp_path).get(bad)


def test_unserialisable_value_leaves_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(TypeError):
        cache.put(key(), {"text": object()})
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize(
    "content",
    [
        b'{"key": "',  # a partial write
        b"",  # an empty file (power loss)
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b'{"key": "0000000000000000000000000000000000000000000000000000000000000000", "value": {}}',
        b'{"value": "not a dict"}',
    ],
)
def test_corrupt_entries_read_as_a_miss_and_are_removed(tmp_path: Path, content: bytes) -> None:
    cache = Cache(tmp_path)
    k = key()
    cache.put(k, VALUE)
    cache.path(k).write_bytes(content)
    assert cache.get(k) is None
    assert not cache.path(k).exists()
    cache.put(k, VALUE)
    assert cache.get(k) == VALUE


def test_put_survives_the_cache_folder_being_removed(tmp_path: Path) -> None:
    import shutil

    cache = Cache(tmp_path / "c")
    cache.put(key(), VALUE)
    shutil.rmtree(tmp_path / "c")
    cache.put(key(), VALUE)
    assert cache.get(key()) == VALUE


def test_a_thousand_warm_lookups_are_fast(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    keys = [key(repeat_index=i) for i in range(1000)]
    for k in keys:
        cache.put(k, {**VALUE, "text": "x" * 400})
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        assert all(cache.get(k) is not None for k in keys)
        best = min(best, time.perf_counter() - started)
    # Typically 20-40 ms; the bound leaves room for a loaded CI machine.
    assert best < 0.5, f"{best * 1000:.0f} ms for 1,000 lookups"


# --- stats and prune --------------------------------------------------------------------------------


def _fill(cache: Cache, n: int, start: float = 1_000_000.0) -> list[str]:
    """n entries, written 100 s apart (entry i at start + 100 i), 1,000 bytes of text each."""
    keys = []
    for i in range(n):
        k = key(repeat_index=i)
        cache.put(k, {"text": "x" * 1000})
        os.utime(cache.path(k), (start + 100 * i, start + 100 * i))
        keys.append(k)
    return keys


def test_stats(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    assert cache.stats() == CacheStats(0, 0, None, None)
    keys = _fill(cache, 5)
    (cache.path(keys[0]).parent / f".{keys[0]}.x.tmp").write_text("partial")  # not an entry
    stats = cache.stats()
    assert stats.entries == 5
    assert stats.bytes == sum(cache.path(k).stat().st_size for k in keys)
    assert (stats.oldest, stats.newest) == (1_000_000.0, 1_000_400.0)


def test_prune_by_age(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    keys = _fill(cache, 10)
    now = 1_000_000.0 + 1000  # entry i is 1000 - 100 i seconds old
    assert cache.prune(older_than_s=450, now=now) == 6  # ages 1000..500 go
    assert [cache.get(k) is not None for k in keys] == [False] * 6 + [True] * 4
    assert cache.prune(older_than_s=450, now=now) == 0


def test_prune_by_size_removes_the_oldest_first(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    keys = _fill(cache, 10)
    size = cache.path(keys[0]).stat().st_size
    assert cache.prune(max_bytes=3 * size + 10) == 7
    assert [cache.get(k) is not None for k in keys] == [False] * 7 + [True] * 3
    assert cache.stats().bytes <= 3 * size + 10
    assert cache.prune(max_bytes=0) == 3
    assert cache.stats().entries == 0


def test_prune_by_age_and_size(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    keys = _fill(cache, 10)
    size = cache.path(keys[0]).stat().st_size
    assert cache.prune(older_than_s=450, max_bytes=2 * size, now=1_001_000.0) == 8
    assert [cache.get(k) is not None for k in keys] == [False] * 8 + [True] * 2


def test_prune_removes_stale_temp_files_only(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    (k,) = _fill(cache, 1)
    stale = cache.path(k).parent / f".{k}.dead.tmp"
    fresh = cache.path(k).parent / f".{k}.live.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    os.utime(stale, (1.0, 1.0))
    assert cache.prune(now=time.time()) == 0
    assert not stale.exists() and fresh.exists() and cache.path(k).exists()


def test_prune_of_an_empty_or_missing_cache(tmp_path: Path) -> None:
    assert Cache(tmp_path / "nothing").prune(older_than_s=0, max_bytes=0) == 0


# --- processes: concurrency and SIGKILL ---------------------------------------------------------------

WRITER = r"""
import hashlib, json, sys
from pipeline.evals.cache import Cache
root, writer, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cache = Cache(root)

blobs = {}

def entry(name, n):
    size = 20000 + 4000 * (n % 50)  # 20 to 216 KB: writes take a while, so kills land inside
    if size not in blobs:
        blob = (f"{name}:{size}:" * 50000)[:size]
        blobs[size] = (blob, hashlib.sha256(blob.encode()).hexdigest())
    blob, sha = blobs[size]
    return {"name": name, "n": n, "blob": blob, "sha": sha}

shared = [hashlib.sha256(f"shared-{i}".encode()).hexdigest() for i in range(8)]
for n in range(rounds if rounds else 10**9):
    cache.put(shared[n % len(shared)], entry(f"w{writer}", n))
    own = hashlib.sha256(f"own-{writer}-{n}".encode()).hexdigest()
    cache.put(own, entry(f"w{writer}", n))
    print(own, flush=True)
"""


def _spawn(root: Path, writer: int, rounds: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(root), str(writer), str(rounds)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _assert_complete(path: Path) -> dict[str, Any]:
    import hashlib

    document = json.loads(path.read_bytes())  # raises on a partial file
    assert document["key"] == path.stem
    value = document["value"]
    assert hashlib.sha256(value["blob"].encode()).hexdigest() == value["sha"]
    return dict(value)


def test_concurrent_writers_never_leave_a_partial_file(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    writers = [_spawn(root, w, 60) for w in range(4)]
    seen = 0
    try:
        # Read while they write: every entry file that exists must be complete.
        while any(p.poll() is None for p in writers):
            for path in root.glob("v1/*/*.json"):
                try:
                    _assert_complete(path)
                    seen += 1
                except FileNotFoundError:  # replaced between glob and open: fine
                    pass
    finally:
        outputs = [p.communicate(timeout=120)[0] for p in writers]
    assert [p.returncode for p in writers] == [0, 0, 0, 0]
    cache = Cache(root)
    own = [line for out in outputs for line in out.split()]
    assert len(own) == 4 * 60
    for k in own:
        assert cache.get(k) is not None
    files = list(root.glob("v1/*/*.json"))
    assert len(files) == 4 * 60 + 8  # own keys + the 8 keys every writer shares
    for path in files:
        _assert_complete(path)
    assert not list(root.glob("v1/*/*.tmp"))
    assert seen > 0


def test_sigkill_mid_run_leaves_only_complete_entries(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    child = _spawn(root, 0, 0)  # writes until killed
    assert child.stdout is not None
    written: list[str] = []
    try:
        while len(written) < 200:
            line = child.stdout.readline()
            assert line, "the writer died early"
            written.append(line.strip())
        # Kill it mid-write: while one of its temp files exists (most of its time is writing).
        deadline = time.monotonic() + 30
        while not any(root.glob("v1/*/.*.tmp")) and time.monotonic() < deadline:
            pass
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        rest = child.communicate(timeout=60)[0]
    assert child.returncode == -signal.SIGKILL
    written += rest.split()  # entries it finished before the signal landed
    cache = Cache(root)
    for k in written:  # every entry it reported is there and whole
        assert cache.get(k) is not None
    files = list(root.glob("v1/*/*.json"))
    assert len(files) >= 200
    for path in files:
        _assert_complete(path)
    # The write in flight leaves at most one temp file: never read as an entry, pruned later.
    leftovers = list(root.glob("v1/*/.*.tmp"))
    assert len(leftovers) <= 1
    assert cache.stats().entries == len(files)
    assert cache.prune(now=time.time() + 7200) == 0
    assert not list(root.glob("v1/*/.*.tmp"))
    assert len(list(root.glob("v1/*/*.json"))) == len(files)


# --- entries committed to git are claims, not answers -------------------------------------------


def _repo(path: Path) -> Path:
    init_repo(path)
    (path / ".gitignore").write_text(".knowngood/\n")
    return path


def _track(repo: Path, *paths: str) -> None:
    git(repo, "add", "-f", "--", *paths)
    git(repo, "commit", "-q", "-m", "forged answers")


def test_an_entry_tracked_by_git_is_never_read_whatever_it_holds(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    cache = Cache(repo / ".knowngood" / "cache")
    forged, honest = key(), key(repeat_index=1)
    cache.put(forged, {**VALUE, "text": "forged"})
    _track(repo, str(cache.path(forged).relative_to(repo)))
    cache.put(honest, VALUE)  # written after the commit: untracked, a real answer
    fresh = Cache(repo / ".knowngood" / "cache")  # a new run (a fresh clone, a CI job)
    assert fresh.get(forged) is None  # perfectly formed, right key: still not an answer
    assert cache.path(forged).exists()  # and never deleted: it is the commit's file, not ours
    assert fresh.get(honest) == VALUE
    assert fresh.stats().entries == 1  # stats and prune leave tracked files alone
    assert fresh.prune(older_than_s=0.0) == 1
    assert cache.path(forged).exists()
    fresh.put(forged, VALUE)  # never written through either: the tracked file stays as committed
    assert json.loads(cache.path(forged).read_text())["value"]["text"] == "forged"
    assert Cache(repo / ".knowngood" / "cache").get(forged) is None


def test_a_tracked_symlink_cannot_lead_the_cache_to_tracked_answers(tmp_path: Path) -> None:
    """A committed symlink (the cache folder, or one shard) pointing at committed entries."""
    repo = _repo(tmp_path / "repo")
    k = key()
    stash = Cache(repo / "evals" / "fixtures")
    stash.put(k, VALUE)
    # the whole cache folder is a committed symlink to a committed folder
    (repo / ".knowngood").mkdir()
    (repo / ".knowngood" / "cache").symlink_to("../evals/fixtures")
    _track(repo, "evals", ".knowngood/cache")
    assert Cache(repo / ".knowngood" / "cache").get(k) is None
    # one shard folder is a committed symlink to a folder of committed entries
    other = _repo(tmp_path / "other")
    shard = Cache(other / "stash").path(k).parent
    Cache(other / "stash").put(k, VALUE)
    (other / "cache" / "v1").mkdir(parents=True)
    (other / "cache" / "v1" / k[:2]).symlink_to(os.path.relpath(shard, other / "cache" / "v1"))
    _track(other, "stash", f"cache/v1/{k[:2]}")
    assert Cache(other / "cache").get(k) is None


def test_outside_a_git_repository_every_entry_is_read(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "nogit" / "cache")
    cache.put(key(), VALUE)
    assert Cache(tmp_path / "nogit" / "cache").get(key()) == VALUE
