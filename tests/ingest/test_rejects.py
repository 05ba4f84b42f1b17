"""Bad input mixed into a good stream: each bad item lands in rejects with its reason, every good
reading is stored, and ingest keeps running."""

from __future__ import annotations

import time

import orjson
import pytest

from core.db import Conn
from core.wire import (
    Channel,
    device_topic,
    encode_batch,
    encode_event,
    encode_sample,
    gateway_topic,
)
from ingest.consumer import Consumer
from simulators.county import County
from tests.conftest import Broker
from tests.mqtt_helpers import peer


def wait_for(db: Conn, readings: int, rejects: int, timeout: float = 15.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    got = (0, 0)
    while time.monotonic() < deadline:
        row = db.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM rejects)"
        ).fetchone()
        assert row is not None
        got = (int(row[0]), int(row[1]))
        if got[0] >= readings and got[1] >= rejects:
            time.sleep(0.5)  # and nothing more arrives
            return got
        time.sleep(0.1)
    return got


@pytest.mark.parametrize("ingest_worker", [{"max_payload_bytes": 4096}], indirect=True)
def test_each_kind_of_bad_input_is_rejected_with_its_reason(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    c, secrets = county
    db.execute("TRUNCATE readings, rejects, latest_readings, device_presence")
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    gw, other_gw = c.communities[0].gateway, c.communities[1].gateway
    mine = next(
        d.uid
        for d in c.communities[0].devices
        if d.gateway == gw and d.device_class == "electrical_fire"
    )
    theirs = next(d.uid for d in c.communities[1].devices if d.gateway == other_gw)
    now = int(time.time() * 1000)
    good = {"floor": 3, "speed": 1.0, "door_state": 0, "car_status": 1}
    topic = device_topic(el, Channel.TELEMETRY)

    bad_device_messages: list[tuple[str, bytes, str]] = [
        (topic, b'{"ts": 1, "values": {', "malformed"),
        (topic, b'{"values": {"floor": 1}}', "invalid"),
        (
            topic,
            orjson.dumps({"ts": now - 500, "values": {"floor": 2, "warp_factor": 9}}),
            "unknown_metric",
        ),
        (topic, orjson.dumps({"ts": now - 600, "values": {"floor": 500}}), "out_of_range"),
        (
            topic,
            f'{{"ts": {now - 700}, "values": {{"floor": NaN, "speed": 1.5}}}}'.encode(),
            "not_finite",
        ),
        (topic, f'{{"ts": {now - 800}, "values": {{"speed": Infinity}}}}'.encode(), "not_finite"),
        (topic, orjson.dumps({"ts": now - 900, "values": {"floor": "3"}}), "not_numeric"),
        (topic, encode_sample(now + 86_400_000, {"floor": 4}), "future_ts"),
        (topic, encode_sample(now - 60 * 86_400_000, {"floor": 4}), "stale_ts"),
        (
            topic,
            orjson.dumps({"ts": now - 1000, "values": {f"m{i}": i for i in range(600)}}),
            "oversize",
        ),
        (device_topic(el, Channel.EVENT), encode_event(now - 1100, "NOT-A-CODE"), "unknown_event"),
    ]
    dev = peer(broker.host, broker.port, el, secrets[el])
    gateway = peer(broker.host, broker.port, gw, secrets[gw])
    try:
        mids = []
        for i in range(20):  # good messages before, between and after the bad ones
            mids.append(dev.publish(topic, encode_sample(now - 10_000 - i * 1000, good)))
            if i < len(bad_device_messages):
                t, payload, _ = bad_device_messages[i]
                mids.append(dev.publish(t, payload))
        dev.wait_acks(mids)
        gmid = gateway.publish(
            gateway_topic(gw, Channel.BATCH),
            encode_batch(
                [
                    (mine, now - 2000, {"residual_current": 120.0, "cable_temp": 30.0}),
                    ("NO-SUCH-DEVICE", now - 2000, {"residual_current": 120.0}),
                    (theirs, now - 2000, {"residual_current": 120.0}),
                ]
            ),
        )
        gateway.wait_acks([gmid])
    finally:
        dev.close()
        gateway.close()

    # 20 good messages x 4 readings, the good readings inside partly bad messages
    # (floor=2 and speed=1.5), and 2 readings the gateway may forward.
    expected_good = 20 * 4 + 2 + 2
    expected_rejects = len(bad_device_messages) + 2
    got = wait_for(db, expected_good, expected_rejects)
    assert got == (expected_good, expected_rejects)

    rows = db.execute(
        "SELECT reason, device_uid, detail, payload_size FROM rejects ORDER BY reason"
    ).fetchall()
    by_reason: dict[str, int] = {}
    for reason, _uid, detail, _size in rows:
        by_reason[reason] = by_reason.get(reason, 0) + 1
        assert detail, f"reject {reason} carries no detail"
    expected: dict[str, int] = {}
    for *_, reason in bad_device_messages:
        expected[reason] = expected.get(reason, 0) + 1
    expected["unknown_device"] = 1
    expected["device_mismatch"] = 1
    assert by_reason == expected
    oversize = next(r for r in rows if r[0] == "oversize")
    assert oversize[3] > 4096, "the payload's real size is recorded"
    mismatch = next(r for r in rows if r[0] == "device_mismatch")
    assert mismatch[1] == theirs and gw in mismatch[2]

    stored = db.execute(
        "SELECT d.uid, m.name, r.value FROM readings r JOIN devices d ON d.id = r.device_id"
        " JOIN metrics m ON m.id = r.metric_id WHERE r.ts = to_timestamp(%s / 1000.0)",
        (now - 700,),
    ).fetchall()
    assert stored == [(el, "speed", 1.5)], "the finite reading beside a NaN is kept"
    assert ingest_worker.stats.rejects["not_finite"] == 2


def test_a_large_flush_reaches_analytics_in_messages_the_broker_accepts(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    """More readings in one flush than fit in one broker packet: the feed is split, nothing stalls."""
    from core.feed import READINGS_TOPIC, unpack_readings
    from tests.conftest import ADMIN_PASSWORD

    c, secrets = county
    db.execute("TRUNCATE readings")
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    watcher = peer(broker.host, broker.port, "svc-admin", ADMIN_PASSWORD, subscribe=READINGS_TOPIC)
    dev = peer(broker.host, broker.port, el, secrets[el])
    now = int(time.time() * 1000)
    metrics = ["floor", "speed", "door_state", "car_status", "vibration", "run_hours", "trip_count"]
    mids = []
    with ingest_worker._lock:  # hold the worker's flush so that everything lands in one batch
        for k in range(100):
            samples = [
                {"ts": now - 3_600_000 + k * 500 + j, "values": {m: 1 for m in metrics}}
                for j in range(100)
            ]
            mids.append(
                dev.publish(device_topic(el, Channel.TELEMETRY), orjson.dumps({"samples": samples}))
            )
        time.sleep(0.5)
    dev.wait_acks(mids)
    assert wait_for(db, 70_000, 0, timeout=30)[0] == 70_000
    time.sleep(1.0)
    fed = sum(len(unpack_readings(p)) for t, p in watcher.received if t == READINGS_TOPIC)
    watcher.close()
    dev.close()
    assert fed == 70_000
    assert ingest_worker._connected.is_set()
