"""The size of a batch (pure): the forwarder's count of a batch's bytes is exact, separators and
envelope included, and the batches it takes never exceed the limit."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from core.wire import join_batch
from gateway.batch import encoded_size, fit
from gateway.store import Entry, Kind


def joined(entries: list[Entry]) -> bytes:
    by: dict[Kind, list[bytes]] = {Kind.SAMPLE: [], Kind.EVENT: [], Kind.STATUS: []}
    for e in entries:
        by[e.kind].append(e.body)
    rng = (entries[0].seq, entries[-1].seq)
    return join_batch(rng, by[Kind.SAMPLE], by[Kind.EVENT], by[Kind.STATUS])


@st.composite
def buffers(draw: st.DrawFn) -> list[Entry]:
    """Entries as the buffer holds them: increasing sequence numbers (with gaps, from 1 up to
    large ones), any mix of kinds, bodies of 1 to 600 bytes."""
    seq = draw(st.integers(1, 10**12))
    out = []
    for _ in range(draw(st.integers(1, 300))):
        seq += draw(st.integers(1, 1000))
        kind = draw(st.sampled_from(Kind))
        body = b"x" * draw(st.integers(1, 600))
        out.append(Entry(seq, kind, body))
    return out


@settings(max_examples=300, deadline=None)
@given(buffers())
def test_the_size_is_the_joined_batchs_length(entries: list[Entry]) -> None:
    assert encoded_size(entries) == len(joined(entries))


@settings(max_examples=300, deadline=None)
@given(buffers(), st.integers(700, 64 * 1024))
def test_no_batch_exceeds_the_limit_and_each_is_as_full_as_it_can_be(
    entries: list[Entry], max_bytes: int
) -> None:
    n = fit(entries, max_bytes)
    assert 1 <= n <= len(entries)
    assert len(joined(entries[:n])) <= max_bytes
    if n < len(entries):
        assert len(joined(entries[: n + 1])) > max_bytes


def test_the_benchmarks_batch_fits_the_platforms_limit() -> None:
    """The benchmark's case: small samples at the largest limit the config allows (256 KiB, the
    platform's payload limit), where the bodies alone fit and the commas between them did not."""
    limit = 256 * 1024
    entries = [
        Entry(
            10_000 + i,
            Kind.SAMPLE,
            orjson.dumps(
                {"device": f"BGW-{i:05d}", "ts": 1_764_562_800_000 + i, "values": {"a": 0.5}}
            ),
        )
        for i in range(6000)
    ]
    n = fit(entries, limit)
    assert sum(len(e.body) for e in entries[: n + 1]) <= limit  # the commas make the difference
    assert limit - 100 < len(joined(entries[:n])) <= limit < len(joined(entries[: n + 1]))


def test_an_entry_too_large_for_any_batch_goes_alone() -> None:
    big = Entry(1, Kind.STATUS, b"x" * 5000)
    assert fit([big, Entry(2, Kind.SAMPLE, b"{}")], 4096) == 1
    assert fit([], 4096) == 0
