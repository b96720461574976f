"""The eval cache's packs: each process appends the entries it writes to a file of its own.

Creating a file costs far more than appending a line to one (measured on ext4: 0.1-0.3 ms of
system time per new file, against about 1 µs per appended line), and a run that fills the cache
writes an entry per call. So every process that writes opens one pack,
``<root>/packs/<nanoseconds>-<pid>-<n>.jsonl``, and appends each entry as one line: the bytes
:meth:`pipeline.evals.cache.Cache.encode` makes, then a newline. A line goes out in one
``write`` on a descriptor opened with ``O_APPEND``, and the newline is its last byte; readers
index complete lines only. A write in flight, a writer killed with SIGKILL or a full disk
therefore leaves at most one partial line at the end of its own pack, which is never read. No
process appends to another's pack (a forked child opens its own), nothing is rewritten in
place, and packs are removed whole when pruned.

Packs sort by name, which starts with the time they were opened: when a key is in more than
one line, the last one wins. A line that does not parse reads as a miss; the answer the run
then gets is written again, later, and wins from then on.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Final

__all__ = ["FOLDER", "PackWriter", "Packs", "read_all", "value_of"]

FOLDER: Final = "packs"  # under the cache's version folder

_OPEN_FLAGS: Final = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
)
_READ_FLAGS: Final = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_COUNTER = itertools.count()


def value_of(line: bytes, key: str) -> dict[str, Any] | None:
    """The value ``line`` stores for ``key``; None for a line that does not parse, names
    another key or holds no object."""
    try:
        document = json.loads(line)
    except ValueError:  # also UnicodeDecodeError
        return None
    if isinstance(document, dict) and document.get("key") == key:
        value = document.get("value")
        if isinstance(value, dict):
            return value
    return None


class Packs:
    """The packs in ``folder`` (a version folder's ``packs``), leaving out those git tracks."""

    def __init__(self, folder: str, tracked: frozenset[str]) -> None:
        self.folder = folder
        self._tracked = tracked  # paths relative to the version folder

    @property
    def tracked(self) -> bool:
        """Git tracks the folder itself (or the version folder): nothing in it is read or written."""
        return "" in self._tracked or FOLDER in self._tracked

    def files(self) -> Iterator[os.DirEntry[str]]:
        """The pack files, oldest first (by name: the time each was opened)."""
        tracked = self._tracked
        if self.tracked:
            return
        try:
            found = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in found:
            name = entry.name
            if not name.endswith(".jsonl") or name.startswith("."):
                continue
            if tracked and f"{FOLDER}/{name}" in tracked:
                continue
            if entry.is_file(follow_symlinks=False):
                yield entry

    def index(self) -> dict[bytes, bytes]:
        """Every complete line of every pack, by the key it names; the last line of a key wins.

        A line is indexed by where an entry's key is (``{"key":"<64 hex>",...``) without being
        parsed: :func:`value_of` checks the one that is looked up. 1-2 ms per MB of packs.
        """
        found: dict[bytes, bytes] = {}
        for entry in self.files():
            lines = _read(entry.path).split(b"\n")
            lines.pop()  # the partial line after the last newline (b"" when there is none)
            for line in lines:
                found[line[8:72]] = line
        return found

    def lines(self, path: str) -> int:
        """How many complete lines (entries) the pack at ``path`` holds; 0 when it is gone."""
        try:
            return _read(path).count(b"\n")
        except OSError:
            return 0


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError:  # removed by a prune meanwhile, or a symlink put in its place
        return b""
    try:
        return read_all(fd)
    finally:
        os.close(fd)


def read_all(fd: int) -> bytes:
    """Everything left to read from ``fd``."""
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


class PackWriter:
    """This process's pack in ``folder``, opened at the first write."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.path: str | None = None
        self._fd: int | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def append(self, line: bytes) -> None:
        """Append ``line`` (one entry and its newline) in one write. On a failed or short write
        the pack is left as it is (a partial line at its end is never read) and the next
        write opens a new one."""
        if self._pid != os.getpid():  # a forked child: its own pack, its own lock
            self._pid, self._fd, self.path = os.getpid(), None, None
            self._lock = threading.Lock()
        with self._lock:
            fd = self._fd
            if fd is not None and os.fstat(fd).st_nlink == 0:  # pruned, or rm -rf of the cache
                self._close()
                fd = None
            if fd is None:
                fd = self._open()
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, f"wrote {written} of {len(line)} bytes", self.path)
            except BaseException:
                self._close()
                raise

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(fd)

    def _open(self) -> int:
        for attempt in range(8):
            path = f"{self.folder}/{time.time_ns():020d}-{os.getpid()}-{next(_COUNTER)}.jsonl"
            try:
                fd = os.open(path, _OPEN_FLAGS, 0o600)
            except FileNotFoundError:  # no folder yet, or removed under us (rm -rf of the cache)
                if attempt:
                    raise
                os.makedirs(self.folder, exist_ok=True)
                continue
            except FileExistsError:  # a dead process with our pid, in the same nanosecond
                continue
            self._fd, self.path = fd, path
            return fd
        raise FileExistsError(errno.EEXIST, "no free pack name", self.folder)

    def __del__(self) -> None:
        self._close()
