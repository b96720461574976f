"""The backup schedule ``knowngood serve`` runs while it serves (knowngood.yaml
``runtime.backup`` set): a plain background thread, not a DBOS scheduled workflow (the engine
belongs to another part of the runtime; a thread needs nothing but the store and the target).

Several serve processes may share one store: the one holding an advisory lock on
``<store>.backup.lock`` (``flock``; released by the kernel when the process dies, even by
SIGKILL) ships, the others take over when it goes. Every ``ship_every_s`` the shipper journals
any new table, writes a canary row every ``canary_every_s``, ships the journal, and takes a
snapshot (then applies the retention) every ``snapshot_every_s``, or at once when the target
holds no snapshot of the store's journal chain. A failure is logged and retried next cycle.

The newest restorable point it reached is what ``/metrics`` reports as the achieved RPO
(``knowngood_backup_rpo_seconds``); a process that is not the shipper reads it from the target
(at most every few seconds).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.errors import KnowngoodError
from pipeline.runtime.backup.core import describe_target, read_catalog, retain
from pipeline.runtime.backup.pgrestore import pg_backup_notes, pg_retain
from pipeline.runtime.backup.postgres import Postgres
from pipeline.runtime.backup.settings import BackupSettings
from pipeline.runtime.backup.sqlitebackup import SqliteBackup
from pipeline.runtime.backup.targets import BackupTarget
from pipeline.words import plural

__all__ = ["BackupRunner", "start_backups"]

READ_EVERY_S = 5.0  # a non-shipping process reads the newest point from the target this often


class BackupRunner:
    def __init__(
        self,
        path: Path,
        target: BackupTarget,
        settings: BackupSettings,
        log: Callable[[str], None],
    ) -> None:
        self.path = path
        self.target = target
        self.settings = settings
        self.log = log
        self.newest: float | None = None  # the newest restorable point known
        self.last_snapshot: float | None = None
        self.shipping = False
        self.failures = 0
        self._read_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="knowngood-backup", daemon=True)

    def start(self) -> BackupRunner:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        every = self.settings.ship_every_s
        while not self._stop.is_set():
            with self._lock() as held:
                if held:
                    self._ship_while_held()
            self._stop.wait(every)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        lock: IO[bytes] = open(f"{self.path}.backup.lock", "ab")  # noqa: SIM115
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            yield False
            return
        try:
            yield True
        finally:
            lock.close()

    def _ship_while_held(self) -> None:
        self.shipping = True
        engine: SqliteBackup | None = None
        canary_at = 0.0
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    engine = engine or self._engine()
                    canary_at = self._cycle(engine, canary_at)
                except (KnowngoodError, OSError) as e:
                    self.failures += 1
                    message = e.message if isinstance(e, KnowngoodError) else str(e)
                    self.log(f"backup: {message} (retrying in {self.settings.ship_every_s:g}s)")
                    if engine is not None:
                        engine.close()
                        engine = None
                self._stop.wait(max(0.0, self.settings.ship_every_s - (time.monotonic() - started)))
        finally:
            self.shipping = False
            if engine is not None:
                engine.close()

    def _engine(self) -> SqliteBackup:
        return SqliteBackup(self.path, self.target)

    def _cycle(self, engine: SqliteBackup, canary_at: float) -> float:
        s = self.settings
        _chain, changed, new = engine.prepare(dump=True)
        if changed and not new:
            self.log(f"backup: journaling {', '.join(changed)}")
        if self.last_snapshot is None and not new:
            mine = [x for x in read_catalog(self.target).snapshots if x.chain == engine.chain]
            self.last_snapshot = mine[-1].taken_at if mine else None
        now = time.time()
        if now - canary_at >= s.canary_every_s:
            engine.canary()
            canary_at = now
        if new or self.last_snapshot is None or now - self.last_snapshot >= s.snapshot_every_s:
            taken = engine.snapshot()
            self.last_snapshot = time.time()
            self.log(f"backup: snapshot {taken.name} in {taken.seconds:.2f}s")
            deleted = retain(self.target, s, time.time())
            if deleted:
                self.log(f"backup: retention deleted {plural(len(deleted), 'object')}")
        shipped = engine.ship()
        if shipped.through is not None:
            self.newest = shipped.through
        return canary_at

    def newest_point(self) -> float | None:
        """The newest restorable point: the shipper's own, else read from the target."""
        if self.shipping or time.monotonic() - self._read_at < READ_EVERY_S:
            return self.newest
        self._read_at = time.monotonic()
        with contextlib.suppress(KnowngoodError, OSError):
            self.newest = self._read_newest()
        return self.newest

    def _read_newest(self) -> float | None:
        return describe_target(self.target, "").newest


class PgBackupRunner(BackupRunner):
    """The same schedule for a PostgreSQL store: the server archives its WAL itself; this
    writes the canary, takes a base backup every ``snapshot_every_s`` (and applies the
    retention), and reads the newest restorable point (the last archived WAL file). One
    process of all those sharing the database does it: the holder of an advisory lock."""

    # "kgbackup": its own key. It is held for the life of the process, so sharing the key of
    # the lock every opener takes to create the tables (store/postgres.py) would stop every
    # other process from opening the store.
    LOCK_KEY = 0x6B676261636B7570

    def __init__(self, pg: Postgres, settings: BackupSettings, log: Callable[[str], None]):
        super().__init__(Path("."), pg.target, settings, log)
        self.pg = pg

    @contextlib.contextmanager
    def _lock(self) -> Iterator[bool]:
        try:
            conn_cm = self.pg.connect()
            conn = conn_cm.__enter__()
        except KnowngoodError:
            yield False
            return
        try:
            held = bool(
                conn.execute("SELECT pg_try_advisory_lock(%s)", (self.LOCK_KEY,)).fetchone()[0]
            )
            yield held
        finally:
            conn_cm.__exit__(None, None, None)

    def _engine(self) -> Any:
        return _Unclosed(self.pg)

    def _read_newest(self) -> float | None:
        return self.pg.newest_point()

    def _cycle(self, engine: Any, canary_at: float) -> float:
        s, pg = self.settings, self.pg
        now = time.time()
        if now - canary_at >= s.canary_every_s:
            with tempfile.TemporaryDirectory(prefix="knowngood-canary-") as tmp:
                pg.canary(Path(tmp))
            canary_at = now
        if self.last_snapshot is None:
            bases = pg.bases()
            self.last_snapshot = bases[-1].taken_at if bases else None
        if self.last_snapshot is None or now - self.last_snapshot >= s.snapshot_every_s:
            manifest = pg.base_backup()
            self.last_snapshot = time.time()
            self.log(f"backup: base backup {manifest['taken_at']}")
            for note in pg_backup_notes(pg, manifest):
                self.log(f"backup: {note}")
            deleted = pg_retain(pg, s, time.time())
            if deleted:
                self.log(f"backup: retention deleted {plural(len(deleted), 'object')}")
        self.newest = pg.newest_point()
        return canary_at


class _Unclosed:
    def __init__(self, pg: Postgres) -> None:
        self.pg = pg

    def close(self) -> None:
        pass


class BackupCollector(Collector):
    """``knowngood_backup_rpo_seconds`` and friends, computed at each scrape."""

    def __init__(self, runner: BackupRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[Metric]:
        newest = self.runner.newest_point()
        rpo = GaugeMetricFamily(
            "knowngood_backup_rpo_seconds",
            "Age of the newest restorable point of the state store's backups (the recovery point "
            "objective achieved now); NaN while nothing is restorable.",
        )
        rpo.add_metric([], time.time() - newest if newest is not None else float("nan"))
        yield rpo
        shipper = GaugeMetricFamily(
            "knowngood_backup_shipper",
            "1 when this process ships the state store's backups (one process per store does).",
        )
        shipper.add_metric([], 1.0 if self.runner.shipping else 0.0)
        yield shipper
        failures = GaugeMetricFamily(
            "knowngood_backup_failures",
            "Backup cycles of this process that failed (each is logged and retried).",
        )
        failures.add_metric([], float(self.runner.failures))
        yield failures


def start_backups(
    root: Path, state_store: str | None, log: Callable[[str], None]
) -> tuple[BackupRunner, BackupCollector] | None:
    """The schedule for serve, started; None when knowngood.yaml sets no runtime.backup."""
    from pipeline.runtime.backup.core import where

    settings = BackupSettings.load(root)
    if not settings.configured:
        return None
    w = where(root, state_store)
    runner: BackupRunner
    if w.url:
        runner = PgBackupRunner(w.postgres, settings, log).start()
        what = "the server archives its WAL, a base backup every"
    else:
        runner = BackupRunner(w.path, w.target, settings, log).start()
        what = f"journal shipped every {settings.ship_every_s:g}s, a snapshot every"
    log(
        f"backups: {what} {settings.snapshot_every_s:g}s, to {runner.target.type} "
        f"{runner.target.location} (pid {os.getpid()})"
    )
    return runner, BackupCollector(runner)
