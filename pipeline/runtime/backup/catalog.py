"""What a backup target holds, read from the object names alone, and which times it can
restore.

Names (under the target)::

    sqlite/snapshots/<stamp>-<chain>-<seq>.sqlite.gz     a snapshot (gzip of the database file)
    sqlite/snapshots/<stamp>-<chain>-<seq>.json          its manifest, written after it
    sqlite/journal/<chain>/<first>-<last>-<through>.jsonl.gz   changes first..last of a chain,
                                                         complete up to unix time <through> (µs)
    sqlite/journal/<chain>/head.json                     the newest point shipped while idle

A snapshot counts once its manifest exists. A time T is restorable when a snapshot of some
chain was taken at or before T and that chain's segments follow it without a gap up to a point
at or after T.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "Catalog",
    "Plan",
    "Segment",
    "Snapshot",
    "iso",
    "parse_time",
    "segment_name",
    "snapshot_names",
    "stamp",
]

SNAPSHOTS = "sqlite/snapshots/"
JOURNAL = "sqlite/journal/"
_SNAPSHOT = re.compile(
    r"^sqlite/snapshots/(\d{8}T\d{6}\.\d{6}Z)-([0-9a-f]{16})-(\d{16})\.(sqlite\.gz|json)$"
)
_SEGMENT = re.compile(r"^sqlite/journal/([0-9a-f]{16})/(\d{16})-(\d{16})-(\d{1,20})\.jsonl\.gz$")
_HEAD = re.compile(r"^sqlite/journal/([0-9a-f]{16})/head\.json$")


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float | None:
    """Unix time of an ISO 8601 timestamp (no zone: UTC), or of a stamp; None if neither."""
    value = text.strip()
    for form in ("%Y%m%dT%H%M%S.%fZ",):
        try:
            return datetime.strptime(value, form).replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def snapshot_names(at: float, chain: str, seq: int) -> tuple[str, str]:
    base = f"{SNAPSHOTS}{stamp(at)}-{chain}-{seq:016d}"
    return base + ".sqlite.gz", base + ".json"


def segment_name(chain: str, first: int, last: int, through: float) -> str:
    return f"{JOURNAL}{chain}/{first:016d}-{last:016d}-{round(through * 1e6)}.jsonl.gz"


def head_name(chain: str) -> str:
    return f"{JOURNAL}{chain}/head.json"


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float
    chain: str
    seq: int
    data: str
    manifest: str

    def to_json(self) -> dict[str, Any]:
        return {"taken_at": iso(self.taken_at), "chain": self.chain, "seq": self.seq}


@dataclass(frozen=True, slots=True)
class Segment:
    chain: str
    first: int
    last: int
    through: float
    name: str


@dataclass(slots=True)
class Plan:
    """How to restore time ``at``: this snapshot, then these segments' changes up to ``at``."""

    at: float
    snapshot: Snapshot
    segments: list[Segment]


@dataclass(slots=True)
class Catalog:
    snapshots: list[Snapshot] = field(default_factory=list)  # oldest first
    segments: dict[str, list[Segment]] = field(default_factory=dict)  # per chain, by first
    heads: dict[str, str] = field(default_factory=dict)  # chain -> head object name
    incomplete: list[str] = field(default_factory=list)  # snapshots without a manifest

    @classmethod
    def from_names(cls, names: list[str]) -> Catalog:
        found: dict[str, dict[str, str]] = {}
        catalog = cls()
        for name in names:
            if m := _SNAPSHOT.match(name):
                found.setdefault(m.group(1, 2, 3).__str__(), {})[m.group(4)] = name
            elif m := _SEGMENT.match(name):
                segment = Segment(
                    m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)) / 1e6, name
                )
                catalog.segments.setdefault(segment.chain, []).append(segment)
            elif m := _HEAD.match(name):
                catalog.heads[m.group(1)] = name
        for parts in found.values():
            data, manifest = parts.get("sqlite.gz"), parts.get("json")
            if data and manifest:
                m = _SNAPSHOT.match(data)
                assert m is not None
                taken = parse_time(m.group(1)) or 0.0
                catalog.snapshots.append(
                    Snapshot(taken, m.group(2), int(m.group(3)), data, manifest)
                )
            elif data:
                catalog.incomplete.append(data)
        catalog.snapshots.sort(key=lambda s: s.taken_at)
        for segments in catalog.segments.values():
            segments.sort(key=lambda s: (s.first, s.last))
        return catalog

    def chain_after(self, snapshot: Snapshot) -> list[Segment]:
        """The segments that follow ``snapshot`` without a gap."""
        chained: list[Segment] = []
        next_seq = snapshot.seq + 1
        for segment in self.segments.get(snapshot.chain, []):
            if segment.last < next_seq:
                continue
            if segment.first > next_seq:
                break
            chained.append(segment)
            next_seq = segment.last + 1
        return chained

    def reach(self, snapshot: Snapshot, head: Callable[[str], tuple[int, float] | None]) -> float:
        """The newest time restorable from ``snapshot``. ``head(chain)`` reads the chain's head
        (its last shipped seq and time) when the segments alone do not tell."""
        chained = self.chain_after(snapshot)
        reach = max([snapshot.taken_at, *(s.through for s in chained)])
        last = chained[-1].last if chained else snapshot.seq
        if snapshot.chain in self.heads:
            found = head(snapshot.chain)
            if found is not None and found[0] == last:
                reach = max(reach, found[1])
        return reach

    def plan(self, at: float, head: Callable[[str], tuple[int, float] | None]) -> Plan | None:
        """The newest snapshot at or before ``at`` whose chain reaches ``at``; None if none."""
        for snapshot in reversed(self.snapshots):
            if snapshot.taken_at > at:
                continue
            if self.reach(snapshot, head) >= at:
                needed = []
                for segment in self.chain_after(snapshot):
                    needed.append(segment)
                    if segment.through >= at:
                        break
                return Plan(at, snapshot, needed)
        return None

    def ranges(self, head: Callable[[str], tuple[int, float] | None]) -> list[tuple[float, float]]:
        """The restorable time ranges, oldest first, overlapping ones merged."""
        spans = sorted((s.taken_at, self.reach(s, head)) for s in self.snapshots)
        merged: list[tuple[float, float]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged
