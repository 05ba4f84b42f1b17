"""The gateway's buffer: durable across a crash, bounded by bytes, drained oldest first, and
forgetting only what the platform confirmed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store import Kind, Store


def body(i: int, size: int = 50) -> bytes:
    return f'{{"device":"D","ts":{i},"values":{{"x":{i}}}}}'.encode().ljust(size)


def test_batches_are_read_oldest_first_under_a_byte_limit(tmp_path: Path) -> None:
    s = Store(tmp_path / "b.db", 10_000)
    s.add([(Kind.SAMPLE, body(i)) for i in range(10)])
    first = s.oldest(0, max_bytes=120)
    assert [e.seq for e in first] == [1, 2]
    nxt = s.oldest(first[-1].seq, max_bytes=160)
    assert [e.seq for e in nxt] == [3, 4, 5]
    # one entry over the limit still goes alone, or nothing would ever leave
    assert [e.seq for e in s.oldest(0, max_bytes=10)] == [1]
    assert s.confirm(1, 2) == 2
    assert s.confirm(1, 2) == 0  # a confirmation that came twice
    assert [e.seq for e in s.oldest(0, 120)] == [3, 4]
    assert s.fill().entries == 8
    assert s.fill().bytes == 400


def test_the_oldest_are_dropped_and_counted_when_full(tmp_path: Path) -> None:
    s = Store(tmp_path / "b.db", 500)
    s.add([(Kind.SAMPLE, body(i)) for i in range(10)])
    assert s.add([(Kind.EVENT, body(10)), (Kind.SAMPLE, body(11))]) == 2
    assert s.fill().bytes == 500
    assert s.fill().dropped == 2
    assert [e.seq for e in s.oldest(0, 10_000)] == list(range(3, 13))
    with pytest.raises(ValueError, match="larger than the whole buffer"):
        s.add([(Kind.SAMPLE, b"x" * 501)])
    s.close()
    again = Store(tmp_path / "b.db", 500)
    assert again.fill().dropped == 2  # the gap stays known across restarts
    assert again.fill().bytes == 500


def test_sequence_numbers_never_go_back(tmp_path: Path) -> None:
    s = Store(tmp_path / "b.db", 10_000)
    s.add([(Kind.SAMPLE, body(1))])
    s.confirm(1, 1)
    s.close()
    s = Store(tmp_path / "b.db", 10_000)
    s.add([(Kind.SAMPLE, body(2))])
    assert [e.seq for e in s.oldest(0, 1000)] == [2]


CRASH = """
import os, sys
from pathlib import Path
from gateway.store import Kind, Store
s = Store(Path(sys.argv[1]), 1_000_000)
for i in range(200):
    s.add([(Kind.SAMPLE, b'{"n":%d}' % i)])
    if i == 150:
        s.confirm(1, 100)
print("added", flush=True)
os.kill(os.getpid(), 9)
"""


def test_what_was_added_survives_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    run = subprocess.run(
        [sys.executable, "-c", CRASH, str(path)], check=False, capture_output=True, timeout=60
    )
    assert run.returncode == -9, run.stderr
    assert run.stdout == b"added\n"
    s = Store(path, 1_000_000)
    held = s.oldest(0, 1_000_000)
    assert [e.seq for e in held] == list(range(101, 201))
    assert held[-1].body == b'{"n":199}'
    assert s.fill().entries == 100
    assert s.between(150, 152)[0].kind is Kind.SAMPLE
