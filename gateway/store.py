"""Gateway: the durable buffer between polling and the platform (SQLite in WAL mode).

A polled sample counts as collected only once it is committed here; it leaves only when the
platform confirms it stored the batch that carried it (``gateway/uplink.py``). Each entry is one
batch entry of the wire contract (a sample, an event or a device's status), already encoded, with
a sequence number that never goes back: a batch names the range of numbers it carries, and the
platform's acknowledgement names the ranges it stored.

The buffer is bounded by the bytes of its entries: an entry that would go over the limit first
pushes out the oldest, and the number pushed out is counted (and kept across restarts) so that
the gateway can report the gap. The file itself takes somewhat more than the entries (SQLite's
pages and indexes, the WAL until a checkpoint): size the disk at about twice the limit.

One connection, used from one thread (the gateway's event loop).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS entries (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class Kind(IntEnum):
    SAMPLE = 0
    EVENT = 1
    STATUS = 2


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    kind: Kind
    body: bytes


@dataclass(frozen=True, slots=True)
class Fill:
    entries: int
    bytes: int
    max_bytes: int
    dropped: int  # entries pushed out by the limit since the buffer was created


class Store:
    def __init__(self, path: Path, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("the buffer's byte limit is positive")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives a power cut, not only a crash of the process.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT count(*), coalesce(sum(length(body)), 0) FROM entries")
        self._entries, self._bytes = row.fetchone()
        self._dropped = self._counter("dropped")

    def close(self) -> None:
        self._db.close()

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def add(self, items: list[tuple[Kind, bytes]]) -> int:
        """Commit ``items`` (in one transaction); returns how many old entries were pushed out
        to make room. An item larger than the whole buffer is refused."""
        size = sum(len(b) for _, b in items)
        if any(len(b) > self.max_bytes for _, b in items):
            raise ValueError(f"an entry is larger than the whole buffer ({self.max_bytes} bytes)")
        db = self._db
        dropped = dropped_bytes = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            over = self._bytes + size - self.max_bytes
            if over > 0:
                dropped, dropped_bytes = self._drop_oldest(over)
            db.executemany("INSERT INTO entries (kind, body) VALUES (?, ?)", items)
            if dropped:
                self._count_dropped(dropped)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._entries += len(items) - dropped
        self._bytes += size - dropped_bytes
        self._dropped += dropped
        return dropped

    def _count_dropped(self, n: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?)"
            " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (n,),
        )

    def _drop_oldest(self, need: int) -> tuple[int, int]:
        """Delete the oldest entries until ``need`` bytes are free (inside the caller's
        transaction)."""
        n = freed = 0
        last = None
        for seq, length in self._db.execute("SELECT seq, length(body) FROM entries ORDER BY seq"):
            n, freed, last = n + 1, freed + int(length), seq
            if freed >= need:
                break
        if last is not None:
            self._db.execute("DELETE FROM entries WHERE seq <= ?", (last,))
        return n, freed

    def oldest(self, after: int, max_bytes: int, max_entries: int = 100_000) -> list[Entry]:
        """Entries after ``after``, oldest first, whose bodies add up to at most ``max_bytes``
        (at least one entry, if there is any)."""
        out: list[Entry] = []
        total = 0
        for seq, kind, body in self._db.execute(
            "SELECT seq, kind, body FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, max_entries),
        ):
            if out and total + len(body) > max_bytes:
                break
            out.append(Entry(int(seq), Kind(kind), bytes(body)))
            total += len(body)
        return out

    def between(self, first: int, last: int) -> list[Entry]:
        """The entries still held of ``first`` … ``last``."""
        return [
            Entry(int(s), Kind(k), bytes(b))
            for s, k, b in self._db.execute(
                "SELECT seq, kind, body FROM entries WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (first, last),
            )
        ]

    def confirm(self, first: int, last: int) -> int:
        """The platform stored ``first`` … ``last``: forget them. Returns how many were held
        (0 for a confirmation that came twice)."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            n, size = db.execute(
                "SELECT count(*), coalesce(sum(length(body)), 0) FROM entries"
                " WHERE seq BETWEEN ? AND ?",
                (first, last),
            ).fetchone()
            db.execute("DELETE FROM entries WHERE seq BETWEEN ? AND ?", (first, last))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._entries -= int(n)
        self._bytes -= int(size)
        return int(n)

    def counter(self, name: str) -> int:
        """A number kept with the buffer (``dropped``, ``config_version``); 0 when never set."""
        return self._counter(name)

    def set_counter(self, name: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def resize(self, max_bytes: int) -> int:
        """A new byte limit (from a pushed config); returns how many of the oldest entries were
        pushed out (and counted) to fit under a smaller one."""
        if max_bytes <= 0:
            raise ValueError("the buffer's byte limit is positive")
        self.max_bytes = max_bytes
        over = self._bytes - max_bytes
        if over <= 0:
            return 0
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            dropped, dropped_bytes = self._drop_oldest(over)
            self._count_dropped(dropped)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._entries -= dropped
        self._bytes -= dropped_bytes
        self._dropped += dropped
        return dropped

    def fill(self) -> Fill:
        return Fill(self._entries, self._bytes, self.max_bytes, self._dropped)
