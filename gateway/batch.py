"""Gateway: the size of a batch (pure). A batch is the buffer's entries joined as
``core.wire.join_batch`` joins them: the envelope (braces, the sequence range, the three lists'
keys) around the entries of each kind, separated by commas. Its exact encoded size is known from
the entries' lengths, so the forwarder can take as many of the oldest entries as fit under the
platform's payload limit without encoding a batch it would not send.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.store import Entry, Kind

# Bytes of the envelope that do not depend on the entries: '{', '"samples":[', '],"events":[',
# ']', '}'; and the statuses' list, present only when there is a status: ',"statuses":[' and ']'.
ENVELOPE = 1 + 11 + 12 + 1 + 1
STATUSES = 13 + 1


def seq_bytes(first: int, last: int) -> int:
    """The bytes of ``"seq":[first,last],``."""
    return 10 + len(str(first)) + len(str(last))


def encoded_size(entries: Sequence[Entry]) -> int:
    """The length of ``join_batch`` of ``entries`` (oldest first; at least one)."""
    return _Size(entries[0].seq).plus_all(entries)


def fit(entries: Sequence[Entry], max_bytes: int) -> int:
    """How many of ``entries`` (oldest first) make a batch of at most ``max_bytes`` bytes: the
    most that fit, and at least one when there is any (an entry too large for any batch has to
    go alone rather than block the buffer; the store's entries are far smaller than the
    smallest batch limit, 4,096 bytes)."""
    if not entries:
        return 0
    size = _Size(entries[0].seq)
    for n, e in enumerate(entries):
        if size.with_entry(e) > max_bytes and n > 0:
            return n
        size.add(e)
    return len(entries)


class _Size:
    """A batch's size, one entry at a time."""

    def __init__(self, first: int) -> None:
        self.first = first
        self.bodies = {Kind.SAMPLE: 0, Kind.EVENT: 0, Kind.STATUS: 0}
        self.counts = {Kind.SAMPLE: 0, Kind.EVENT: 0, Kind.STATUS: 0}
        self.last = first

    def add(self, e: Entry) -> None:
        self.bodies[e.kind] += len(e.body)
        self.counts[e.kind] += 1
        self.last = e.seq

    def plus_all(self, entries: Sequence[Entry]) -> int:
        for e in entries:
            self.add(e)
        return self.total(self.last)

    def with_entry(self, e: Entry) -> int:
        """The size with ``e`` added (not adding it)."""
        last = self.last
        self.add(e)
        size = self.total(e.seq)
        self.bodies[e.kind] -= len(e.body)
        self.counts[e.kind] -= 1
        self.last = last
        return size

    def total(self, last: int) -> int:
        size = ENVELOPE + seq_bytes(self.first, last)
        for kind in Kind:
            n = self.counts[kind]
            size += self.bodies[kind] + max(0, n - 1)  # the commas between entries
        if self.counts[Kind.STATUS]:
            size += STATUSES
        return size
