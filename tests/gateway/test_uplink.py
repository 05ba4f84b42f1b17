"""The forwarder on the real broker, with the platform played by an admin peer: data leaves the
buffer only on a storage acknowledgement, unacknowledged batches go again with the same content,
and the gateway stays under its rate. Time is fast-forwarded through ``tick(now)``."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from core.wire import Batch, encode_stored
from gateway.store import Kind, Store
from gateway.uplink import Forwarder, Uplink, UplinkConfig
from simulators.county import County
from tests.conftest import ADMIN_PASSWORD, Broker
from tests.mqtt_helpers import Peer, peer

BATCH_TOPIC = "sw/v1/g/C01-GW/batch"
STORED_TOPIC = "sw/v1/g/C01-GW/cmd/stored"


def entry(i: int) -> bytes:
    pad = "x" * 900
    return orjson.dumps({"device": "C01-WQ1", "ts": 1000 + i, "online": True, "reason": pad})


@pytest.fixture
def uplink(broker: Broker, county: tuple[County, dict[str, str]]) -> Iterator[Uplink]:
    u = Uplink(UplinkConfig("C01-GW", broker.host, broker.port, county[1]["C01-GW"]))
    u.start()
    assert u.connected.wait(10), "the gateway did not connect"
    yield u
    u.stop()


@pytest.fixture
def platform(broker: Broker) -> Iterator[Peer]:
    p = peer(broker.host, broker.port, "svc-admin", ADMIN_PASSWORD, subscribe=BATCH_TOPIC)
    yield p
    p.close()


def batches(p: Peer, n: int) -> list[Batch]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with p.lock:
            got = [Batch.model_validate_json(b) for t, b in p.received if t == BATCH_TOPIC]
        if len(got) >= n:
            return got
        time.sleep(0.02)
    raise AssertionError(f"{len(got)} batches arrived, not {n}")


def wait_stored(u: Uplink, n: int) -> None:
    deadline = time.monotonic() + 10
    while u.stored.qsize() < n:
        assert time.monotonic() < deadline, "the acknowledgement did not arrive"
        time.sleep(0.02)


def test_only_the_platforms_acknowledgement_frees_the_buffer(
    uplink: Uplink, platform: Peer, tmp_path: Path
) -> None:
    store = Store(tmp_path / "b.db", 1_000_000)
    store.add([(Kind.STATUS, entry(i)) for i in range(30)])
    fwd = Forwarder(store, uplink, batch_max_bytes=4 * 1024, ack_timeout_s=10, window=3)
    t0 = 1000.0
    fwd.tick(t0)
    first = batches(platform, 3)
    assert [b.seq for b in first] == [(1, 4), (5, 8), (9, 12)]
    time.sleep(0.3)  # the broker's PUBACKs have come: they free nothing
    fwd.tick(t0 + 0.5)
    assert store.fill().entries == 30
    assert len(batches(platform, 3)) == 3  # the window is full: nothing more sent

    platform.publish(STORED_TOPIC, encode_stored([(1, 4)], 1))
    wait_stored(uplink, 1)
    fwd.tick(t0 + 1)
    assert store.fill().entries == 26
    fourth = batches(platform, 4)[3]
    assert fourth.seq == (13, 16)

    fwd.tick(t0 + 10.5)  # 5…8 and 9…12 are overdue (13…16 is not yet): sent again, unchanged
    again = batches(platform, 6)[4:]
    assert [b.seq for b in again] == [(5, 8), (9, 12)]
    assert again == first[1:]
    assert fwd.batches_resent == 2

    platform.publish(STORED_TOPIC, encode_stored([(5, 8), (9, 12), (5, 8)], 2))
    wait_stored(uplink, 3)
    fwd.tick(t0 + 10.6)
    assert store.fill().entries == 18
    assert fwd.entries_confirmed == 12


def test_the_gateway_stays_under_its_rate(uplink: Uplink, platform: Peer, tmp_path: Path) -> None:
    store = Store(tmp_path / "b.db", 10_000_000)
    store.add([(Kind.STATUS, entry(i)) for i in range(400)])
    fwd = Forwarder(
        store, uplink, batch_max_bytes=8 * 1024, window=1000, kib_per_minute=60, ack_timeout_s=3600
    )
    t0 = 1000.0
    fwd.tick(t0)
    sizes = [len(b) for t, b in received(platform, fwd.batches_sent)]
    cost = -(-sizes[0] // 1024)  # KiB, started ones: what the platform counts
    assert {-(-n // 1024) for n in sizes} == {cost}
    assert fwd.batches_sent == 60 // cost  # a minute's worth at once
    fwd.tick(t0 + 6)  # 6 s at 1 KiB/s
    assert fwd.batches_sent == 66 // cost
    fwd.tick(t0 + 6 + 600)  # the budget refills to a minute's worth, no more
    assert fwd.batches_sent == 66 // cost + 60 // cost
    assert fwd.batches_resent == 0


def received(p: Peer, n: int) -> list[tuple[str, bytes]]:
    batches(p, n)
    with p.lock:
        return [(t, b) for t, b in p.received if t == BATCH_TOPIC]


def test_a_gateway_cannot_acknowledge_its_own_batches(
    broker: Broker, county: tuple[County, dict[str, str]], uplink: Uplink
) -> None:
    """Only the platform writes on a gateway's command subtree: a gateway (or anyone holding its
    password) that forged a storage acknowledgement would make it delete unstored data."""
    forger = peer(broker.host, broker.port, "C01-GW", county[1]["C01-GW"])
    try:
        mid = forger.publish(STORED_TOPIC, encode_stored([(1, 10**6)], 1))
        rc = forger.wait_acks([mid])[mid]
        assert rc.value == 135, rc  # Not authorized
    finally:
        forger.close()
    time.sleep(0.3)
    assert uplink.stored.qsize() == 0


def test_the_clock_offset_is_measured_on_first_sends_only(
    uplink: Uplink, platform: Peer, tmp_path: Path
) -> None:
    store = Store(tmp_path / "b.db", 1_000_000)
    store.add([(Kind.STATUS, entry(i)) for i in range(8)])
    fwd = Forwarder(store, uplink, batch_max_bytes=4 * 1024, ack_timeout_s=10, window=2)
    fwd.tick(1000.0)
    assert [b.seq for b in batches(platform, 2)] == [(1, 4), (5, 8)]
    fwd.tick(1011.0)  # both sent again: which send an acknowledgement answers is unknown
    batches(platform, 4)
    ahead = time.time_ns() // 1_000_000 + 5000  # the platform's clock, 5 s ahead
    platform.publish(STORED_TOPIC, encode_stored([(1, 4)], ahead))
    wait_stored(uplink, 1)
    fwd.tick(1012.0)
    assert fwd.clock is None

    store.add([(Kind.STATUS, entry(i)) for i in range(8, 12)])
    fwd.tick(1013.0)
    [(_, nxt)] = [(b.seq, b) for b in batches(platform, 5)[4:]]
    assert nxt.seq == (9, 12)
    ahead = time.time_ns() // 1_000_000 + 5000
    platform.publish(STORED_TOPIC, encode_stored([(9, 12)], ahead))
    wait_stored(uplink, 1)
    fwd.tick(1014.0)
    assert fwd.clock is not None
    assert abs(fwd.clock.offset_ms - 5000) <= fwd.clock.rtt_ms / 2 + 50
    assert 0 <= fwd.clock.rtt_ms < 5000


def sample(i: int) -> bytes:
    """A small sample, as a residual-current monitor's: the case where the commas between
    entries add up to more than a batch's envelope."""
    return orjson.dumps({"device": f"BGW-{i:05d}", "ts": 1_764_562_800_000 + i, "values": {"a": 1}})


def test_no_batch_the_forwarder_sends_exceeds_its_limit(
    uplink: Uplink, platform: Peer, tmp_path: Path
) -> None:
    limit = 256 * 1024  # the largest the config allows: the platform's payload limit
    store = Store(tmp_path / "b.db", 100_000_000)
    store.add([(Kind.SAMPLE, sample(i)) for i in range(20_000)])
    fwd = Forwarder(store, uplink, batch_max_bytes=limit, window=100, window_bytes=10 * limit)
    fwd.tick(1000.0)
    sizes = [len(b) for _, b in received(platform, fwd.batches_sent)]
    assert fwd.batches_sent >= 4
    assert all(n <= limit for n in sizes[:-1]) and sizes[-1] <= limit
    assert all(n > limit - 200 for n in sizes[:-1])  # and full: the last holds the rest
    assert sum(len(b.samples) for b in batches(platform, fwd.batches_sent)) == 20_000


def test_the_window_is_counted_in_bytes_and_refilled_by_acknowledgements(
    uplink: Uplink, platform: Peer, tmp_path: Path
) -> None:
    store = Store(tmp_path / "b.db", 1_000_000)
    store.add([(Kind.STATUS, entry(i)) for i in range(30)])  # 4 entries to a 4 KiB batch
    fwd = Forwarder(
        store, uplink, batch_max_bytes=4 * 1024, window=100, window_bytes=3 * 4096, ack_timeout_s=60
    )
    fwd.tick(1000.0)
    assert [b.seq for b in batches(platform, 3)] == [(1, 4), (5, 8), (9, 12)]
    assert fwd.batches_sent == 3 and fwd.bytes_in_flight <= 3 * 4096
    platform.publish(STORED_TOPIC, encode_stored([(1, 4), (5, 8)], 1))
    wait_stored(uplink, 2)
    fwd.tick(1000.1, full_only=True)  # at the acknowledgement, not the next regular round
    assert [b.seq for b in batches(platform, 5)[3:]] == [(13, 16), (17, 20)]
    platform.publish(STORED_TOPIC, encode_stored([(9, 12), (13, 16), (17, 20)], 1))
    wait_stored(uplink, 3)
    fwd.tick(1000.2, full_only=True)  # 21…24, 25…28 are full; 29, 30 wait for the regular round
    assert [b.seq for b in batches(platform, 7)[5:]] == [(21, 24), (25, 28)]
    assert fwd.batches_sent == 7
    fwd.tick(1002.0)
    assert batches(platform, 8)[7].seq == (29, 30)


def test_a_clean_stop_is_not_a_lost_broker(
    broker: Broker, county: tuple[County, dict[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    u = Uplink(UplinkConfig("C01-GW", broker.host, broker.port, county[1]["C01-GW"]))
    u.start()
    assert u.connected.wait(10), "the gateway did not connect"
    with caplog.at_level(logging.INFO, logger="shouwang.gateway"):
        u.stop()
    said = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "shouwang.gateway"]
    assert (logging.INFO, "disconnected from the broker (Normal disconnection)") in said
    assert not [m for lv, m in said if lv >= logging.WARNING], said
