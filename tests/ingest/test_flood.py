"""The flood guard (ingest/flood.py): pure tests of the token bucket, then on the real broker and
database: a registered device publishing valid readings as fast as it can gets only its
allowance stored, the rest ends as ``rate_limited`` rejects (stored up to the reject limit, then
counted), while other devices and a gateway within its limit lose nothing; and a backlog the
broker held while ingest was away is not taken for a flood."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic, encode_batch, encode_sample, gateway_topic
from ingest.__main__ import config_from
from ingest.consumer import Consumer, IngestConfig, retire_session
from ingest.flood import KIB, MIN_SPARE_WINDOW_S, SWEEP_EVERY_S, Allowance, FloodGuard
from simulators.county import County
from tests.background import running
from tests.conftest import Broker
from tests.ingest.test_poison import publish_all

# --- the bucket, pure ------------------------------------------------------------------------

PER_MINUTE, BURST = 60.0, 10  # one a second, ten at once


def guard(catch_up_s: float = 0.0, now: float = 0.0) -> FloodGuard:
    return FloodGuard(
        Allowance(PER_MINUTE, BURST), Allowance(600.0, 100.0), catch_up_s=catch_up_s, now=now
    )


def admitted(g: FloodGuard, n: int, now: float, uid: str = "EL-1", size: int = 100) -> int:
    return sum(g.admit("d", uid, size, now) for _ in range(n))


def test_a_sender_gets_its_burst_at_once_then_its_rate() -> None:
    g = guard()
    assert admitted(g, 50, now=0.0) == BURST
    assert admitted(g, 50, now=1.0) == 1, "one a second"
    assert admitted(g, 50, now=4.5) == 3
    assert admitted(g, 50, now=1000.0) == BURST, "refilled, never beyond the burst"


def test_senders_and_gateways_have_their_own_buckets() -> None:
    g = guard()
    assert admitted(g, 50, now=0.0, uid="EL-1") == BURST
    assert admitted(g, 50, now=0.0, uid="EL-2") == BURST, "another device is not affected"
    assert sum(g.admit("g", "EL-1", 100, 0.0) for _ in range(500)) == 100, "a gateway's own"


def test_a_message_counts_once_per_started_kib() -> None:
    a = Allowance(PER_MINUTE, BURST)
    assert [a.cost(n) for n in (0, 1, KIB, KIB + 1, 5 * KIB)] == [1, 1, 1, 2, 5]
    assert a.cost(256 * KIB) == BURST, "never more than a full bucket: it can always pass once"
    g = guard()
    assert g.admit("d", "EL-1", 6 * KIB, 0.0)
    assert g.admit("d", "EL-1", 4 * KIB, 0.0)
    assert not g.admit("d", "EL-1", 1, 0.0), "ten KiB took the burst of ten"


@given(st.lists(st.tuples(st.floats(0, 5), st.integers(0, 4 * KIB)), max_size=300))
def test_what_passes_in_any_window_is_at_most_the_burst_and_the_rate(
    steps: list[tuple[float, int]],
) -> None:
    g, now, passed = guard(), 0.0, []
    for dt, size in steps:
        now += dt
        if g.admit("d", "EL-1", size, now):
            passed.append((now, Allowance(PER_MINUTE, BURST).cost(size)))
    rate = PER_MINUTE / 60
    for i, (t0, _) in enumerate(passed):
        total = 0.0
        for t1, cost in passed[i:]:
            total += cost
            assert total <= BURST + rate * (t1 - t0) + 1e-9


def test_a_sender_at_its_rate_is_never_limited() -> None:
    g = guard()
    assert all(g.admit("d", "EL-1", 300, t * 1.0) for t in range(10_000))


def test_a_backlog_after_ingest_was_not_reading_is_made_up_for() -> None:
    g = guard(catch_up_s=3600.0, now=-7200.0)  # started long ago: its start's allowance is over
    assert admitted(g, BURST, now=0.0) == BURST
    g.not_reading(300.0, now=400.0)  # e.g. the broker connection was lost for five minutes
    # The broker hands over what the device sent meanwhile, at once: burst + 300 s at its rate.
    assert admitted(g, 1000, now=400.0) == BURST + 300
    assert admitted(g, 1000, now=401.0) == 1, "then its rate again"
    fresh = admitted(g, 1000, now=401.0, uid="EL-2")
    assert fresh == BURST + 300, "a sender first heard after the pause gets the same"


def test_an_unused_catch_up_ends_and_is_bounded() -> None:
    g = guard(catch_up_s=600.0, now=-7200.0)
    g.not_reading(10.0, now=0.0)
    window = max(10.0, MIN_SPARE_WINDOW_S)
    assert admitted(g, 1000, now=window + 1) == BURST, "its window is over"
    g.not_reading(100_000.0, now=1000.0)
    assert admitted(g, 100_000, now=1000.0) == BURST + 600, "at most catch_up_s of the rate"


def test_at_its_start_ingest_assumes_it_was_away_for_the_catch_up_time() -> None:
    g = guard(catch_up_s=120.0, now=0.0)
    assert admitted(g, 1000, now=1.0) == BURST + 120
    assert admitted(g, 1000, now=500.0, uid="EL-2") == BURST, "after it, the burst only"


def test_idle_senders_are_forgotten_without_changing_what_they_may_send() -> None:
    g = guard()
    for i in range(1000):
        g.admit("d", f"EL-{i}", 100, 0.0)
    assert len(g) == 1000
    later = max(BURST / (PER_MINUTE / 60), SWEEP_EVERY_S)
    assert admitted(g, 50, now=later, uid="EL-5") == BURST, "as a sender never forgotten"
    assert len(g) == 1, "the idle ones were dropped"


def test_senders_holding_a_catch_up_are_kept_while_it_lasts() -> None:
    g = guard(catch_up_s=3600.0, now=0.0)
    g.admit("d", "EL-1", 100, 0.0)
    g.admit("d", "EL-2", 100, SWEEP_EVERY_S)  # sweeps
    assert len(g) == 2, "EL-1 holds its start allowance"
    assert admitted(g, 10_000, now=SWEEP_EVERY_S, uid="EL-1") == BURST + 3600


def test_allowances_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="above 0"):
        Allowance(0, 10)
    with pytest.raises(ValueError, match="at least 1"):
        Allowance(60, 0.5)
    with pytest.raises(ValueError, match="0 s or more"):
        FloodGuard(Allowance(60, 10), Allowance(60, 10), catch_up_s=-1, now=0)


# --- on the real broker and database -----------------------------------------------------------

FLOOD = 3000
LIMITED = {
    "device_messages_per_minute": 60.0,
    "device_burst_messages": 100.0,
    "gateway_messages_per_minute": 600.0,
    "gateway_burst_messages": 50.0,
    "catch_up_s": 0.0,  # no start allowance: the limit applies from the first message
}


def readings_of(db: Conn, uid: str) -> int:
    row = db.execute(
        "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id WHERE d.uid = %s",
        (uid,),
    ).fetchone()
    return int(row[0]) if row else 0


def rejects_of(db: Conn, uid: str, reason: str) -> tuple[int, int]:
    """(stored, counted) rejects of ``uid`` with ``reason``."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM rejects WHERE device_uid = %(u)s AND reason = %(r)s),"
        " (SELECT coalesce(sum(n), 0) FROM rejects_counted WHERE who = %(u)s AND reason = %(r)s)",
        {"u": uid, "r": reason},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def wait_messages(consumer: Consumer, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and consumer.stats.messages < n:
        time.sleep(0.05)
    assert consumer.stats.messages >= n, f"ingest committed {consumer.stats.messages} of {n}"


@pytest.mark.parametrize("ingest_worker", [LIMITED], indirect=True)
def test_a_device_flooding_valid_readings_gets_only_its_allowance_stored(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    c, secrets = county
    db.execute("TRUNCATE readings, rejects, rejects_counted, events, device_status")
    lifts = [d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None]
    el, other = lifts[0], lifts[1]
    gw = c.communities[0].gateway
    assert gw is not None
    behind = [
        d.uid
        for d in c.communities[0].devices
        if d.gateway == gw and d.device_class == "electrical_fire"
    ]
    assert behind, "the small county has electrical-fire sensors behind its gateway"
    start = ingest_worker.stats.messages
    now = int(time.time() * 1000)

    # Meanwhile: another lift reports (within its own allowance), and the gateway sends
    # batches within its limit.
    def others() -> None:
        publish_all(
            broker,
            other,
            secrets[other],
            [
                (device_topic(other, Channel.TELEMETRY), encode_sample(now - i, {"floor": 3}))
                for i in range(50)
            ],
        )
        batches = [
            encode_batch([(uid, now - i, {"residual_current": 120.0}) for uid in behind])
            for i in range(40)
        ]
        publish_all(
            broker, gw, secrets[gw], [(gateway_topic(gw, Channel.BATCH), b) for b in batches]
        )

    began = time.monotonic()
    meanwhile = threading.Thread(target=others)
    meanwhile.start()
    flood = [
        (device_topic(el, Channel.TELEMETRY), encode_sample(now - i, {"floor": 5}))
        for i in range(FLOOD)  # distinct timestamps, all within the accepted window
    ]
    publish_all(broker, el, secrets[el], flood)
    meanwhile.join(30)
    wait_messages(ingest_worker, start + FLOOD + 50 + 40)
    took = time.monotonic() - began

    assert not ingest_worker._stop.is_set(), "ingest stays up"
    stored = readings_of(db, el)
    burst, per_s = 100, 60 / 60
    assert burst <= stored <= burst + per_s * took + 1, f"{stored} stored in {took:.1f} s"
    kept, counted = rejects_of(db, el, "rate_limited")
    assert kept + counted == FLOOD - stored, "every message is rows or a rejected one"
    limit = ingest_worker.decoder.reject_limit_per_minute
    assert kept <= 2 * limit and counted > 0, "stored up to the reject limit, counted beyond it"
    assert readings_of(db, other) == 50, "the other lift lost nothing"
    assert sum(readings_of(db, uid) for uid in behind) == 40 * len(behind), "nor the gateway"
    assert rejects_of(db, gw, "rate_limited") == (0, 0)
    detail = db.execute(
        "SELECT detail, payload_size FROM rejects WHERE reason = 'rate_limited' LIMIT 1"
    ).fetchone()
    assert detail is not None and "60 messages a minute" in detail[0]
    assert detail[1] == len(flood[0][1]), "the real size is recorded"
    st_ = ingest_worker.stats
    assert st_.readings == stored + 50 + 40 * len(behind), "the feed carries only what is stored"
    assert ingest_worker.decoder.traceless == 0
    assert len(ingest_worker.flood) <= 3, "one entry per sender heard from"


def test_a_backlog_held_while_ingest_was_away_is_not_taken_for_a_flood(
    db: Conn, settings: Settings, broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    db.execute("TRUNCATE readings, rejects, rejects_counted")
    el = next(d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None)
    base = replace(
        config_from(settings, "test-flood-backlog"),
        device_messages_per_minute=60.0,
        device_burst_messages=20.0,
    )
    backlog = 300
    now = int(time.time() * 1000)

    def away_then_back(cfg: IngestConfig, first: int) -> Consumer:
        """Ingest away while the lift sends ``backlog`` readings, then back with ``cfg``."""
        away = [
            (device_topic(el, Channel.TELEMETRY), encode_sample(now - first - i, {"floor": 4}))
            for i in range(backlog)
        ]
        publish_all(broker, el, secrets[el], away)  # the broker holds them for the session
        consumer = Consumer(cfg, settings.database_url)
        with running(consumer.run, consumer.stop, "ingest"):
            wait_messages(consumer, backlog)
        return consumer

    first = Consumer(base, settings.database_url)  # makes the persistent session
    try:
        with running(first.run, first.stop, "ingest"):
            assert first._connected.wait(10)
        away_then_back(replace(base, catch_up_s=600.0), 0)
        assert readings_of(db, el) == backlog, "made up for: all of the backlog is stored"
        away_then_back(replace(base, catch_up_s=0.0), backlog)
        kept, counted = rejects_of(db, el, "rate_limited")
        assert readings_of(db, el) < backlog + 20 + 10, "without it, the burst and little more"
        assert readings_of(db, el) + kept + counted == 2 * backlog
    finally:
        retire_session(base)
