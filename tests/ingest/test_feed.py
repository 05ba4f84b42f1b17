"""The internal feed to analytics: every committed event and status is handed on, in messages
under the broker's packet limit however large the events' details are."""

from __future__ import annotations

from core.feed import unpack_events
from ingest.consumer import FEED_MAX_BYTES, _events_under


def test_large_event_details_are_split_under_the_packet_limit() -> None:
    events = [(i, 1, "90", True, {"note": "x" * 200_000}) for i in range(9)]
    statuses = [(i, 2, True, "ok") for i in range(5)]
    messages = _events_under(events, statuses)
    assert len(messages) > 1
    assert all(len(m) <= FEED_MAX_BYTES for m in messages)
    got_e, got_s = [], []
    for m in messages:
        e, s = unpack_events(m)
        got_e += e
        got_s += s
    assert [t for t, *_ in got_e] == list(range(9)), "every event, once, in order"
    assert [t for t, *_ in got_s] == list(range(5))
    assert _events_under(events[:1], []) == _events_under(events[:1], [], limit=10), "one fits"
