"""Hostile messages from a registered device and a registered gateway, with their own valid
credentials, on the real broker: each family ends as a reject with a clear reason (or as rows),
ingest keeps running, and the valid reading sent after them is stored."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from core.db import Conn
from core.wire import Channel, device_topic, encode_sample, gateway_topic
from ingest.consumer import Consumer
from simulators.county import County
from tests.conftest import Broker
from tests.mqtt_helpers import peer

# (channel or "batch", payload, the reject reasons it ends as, comma-separated)
Message = tuple[str, bytes, str]
NOW = int(time.time() * 1000)
DEEP = 5000


def nested(depth: int, leaf: object = 1) -> object:
    out: object = leaf
    for _ in range(depth):
        out = [out]
    return out


FAMILIES: dict[str, Callable[[str, str], list[Message]]] = {
    # The message that stopped the platform: a status whose ts is far beyond any date.
    "status timestamps": lambda _m, _t: [
        ("status", b'{"online": true, "ts": 10000000000000000}', "future_ts"),
        ("status", b'{"online": true, "ts": -10000000000000000}', "stale_ts"),
        ("status", b'{"online": true, "ts": 1.5}', "invalid"),
    ],
    "sample timestamps": lambda _m, _t: [
        # Beyond 64 bits a JSON number arrives as a float: not epoch milliseconds.
        (
            "telemetry",
            b'{"ts": 100000000000000000000000000000, "values": {"floor": 1}}',
            "invalid",
        ),
        ("telemetry", b'{"ts": 9000000000000000000, "values": {"floor": 1}}', "future_ts"),
        ("telemetry", b'{"ts": -1, "values": {"floor": 1}}', "stale_ts"),
        ("telemetry", b'{"ts": 1700000000000.5, "values": {"floor": 1}}', "invalid"),
        ("telemetry", b'{"ts": "99999-01-01T00:00:00+00:00", "values": {"floor": 1}}', "invalid"),
        ("event", b'{"ts": 100000000000000000000, "code": "90"}', "invalid"),
        ("event", b'{"ts": 9000000000000000000, "code": "90"}', "future_ts"),
    ],
    "NaN, Infinity and numbers beyond float range": lambda _m, _t: [
        ("telemetry", f'{{"ts": {NOW}, "values": {{"speed": NaN}}}}'.encode(), "not_finite"),
        ("telemetry", f'{{"ts": {NOW}, "values": {{"speed": -Infinity}}}}'.encode(), "not_finite"),
        ("telemetry", f'{{"ts": {NOW}, "values": {{"speed": 1e400}}}}'.encode(), "malformed"),
        (
            "telemetry",
            f'{{"ts": {NOW}, "values": {{"speed": NaN, "x": {"[" * 3000}}}}}'.encode(),
            "malformed",
        ),
    ],
    "deep nesting": lambda _m, _t: [
        ("telemetry", orjson.dumps({"ts": NOW, "values": {"floor": nested(200)}}), "not_numeric"),
        ("telemetry", b'{"ts": 1, "values": ' + b"[" * DEEP + b"]" * DEEP + b"}", "malformed"),
        ("event", orjson.dumps({"ts": NOW, "code": "90", "detail": {"a": nested(50)}}), "invalid"),
        (
            "batch",
            orjson.dumps({"samples": [{"device": "x", "ts": NOW, "values": nested(100)}]}),
            "invalid",
        ),
    ],
    "NUL and lone surrogates in every string": lambda m, _t: [
        ("status", b'{"online": false, "reason": "a\\u0000b"}', "invalid"),
        ("status", b'{"online": false, "reason": "\\ud800"}', "malformed"),
        ("event", f'{{"ts": {NOW}, "code": "9\\u0000"}}'.encode(), "unknown_event"),
        (
            "event",
            f'{{"ts": {NOW}, "code": "90", "detail": {{"k\\u0000": 1}}}}'.encode(),
            "invalid",
        ),
        (
            "event",
            f'{{"ts": {NOW}, "code": "90", "detail": {{"k": ["\\u0000"]}}}}'.encode(),
            "invalid",
        ),
        (
            "telemetry",
            f'{{"ts": {NOW}, "values": {{"fl\\u0000oor": 1}}}}'.encode(),
            "unknown_metric",
        ),
        (
            "telemetry",
            f'{{"ts": {NOW}, "values": {{"speed": NaN, "\\udfff": 1}}}}'.encode(),
            "not_finite,unknown_metric",
        ),
        (
            "batch",
            f'{{"samples": [{{"device": "{m}\\u0000", "ts": {NOW}, "values": {{"x": 1}}}}]}}'.encode(),
            "unknown_device",
        ),
    ],
    "oversize payloads": lambda _m, _t: [
        ("telemetry", b'{"ts": 1, "values": {"floor": "' + b"x" * 300_000 + b'"}}', "oversize"),
        ("batch", b"[" * 300_000, "oversize"),
    ],
    "other devices and wildcards in gateway batches": lambda m, theirs: [
        (
            "batch",
            orjson.dumps({"samples": [{"device": "+", "ts": NOW, "values": {"x": 1}}]}),
            "unknown_device",
        ),
        (
            "batch",
            orjson.dumps({"samples": [{"device": "#", "ts": NOW, "values": {"x": 1}}]}),
            "unknown_device",
        ),
        (
            "batch",
            orjson.dumps({"samples": [{"device": "a/+/b", "ts": NOW, "values": {"x": 1}}]}),
            "unknown_device",
        ),
        (
            "batch",
            orjson.dumps({"samples": [{"device": theirs, "ts": NOW, "values": {"x": 1}}]}),
            "device_mismatch",
        ),
        (
            "batch",
            orjson.dumps({"events": [{"device": theirs, "ts": NOW, "code": "90"}]}),
            "device_mismatch",
        ),
    ],
    "duplicate keys": lambda m, _t: [
        # JSON leaves duplicate keys undefined; the last one wins, as it does for the decoders.
        ("telemetry", f'{{"ts": {NOW}, "ts": -5, "values": {{"floor": 2}}}}'.encode(), "stale_ts"),
        (
            "batch",
            f'{{"samples": [], "samples": [{{"device": "{m}", "device": "+", "ts": {NOW}, "values": {{"x": 1}}}}]}}'.encode(),
            "unknown_device",
        ),
    ],
}


def publish_all(broker: Broker, uid: str, secret: str, messages: list[tuple[str, bytes]]) -> None:
    client = peer(broker.host, broker.port, uid, secret)
    try:
        mids = []
        for i, (topic, payload) in enumerate(messages):
            mids.append(client.publish(topic, payload))
            if i % 500 == 499:  # keep the in-flight window small
                client.wait_acks(mids)
        client.wait_acks(mids)
    finally:
        client.close()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_hostile_family_ends_as_rejects_and_ingest_goes_on(
    family: str,
    db: Conn,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    ingest_worker: Consumer,
) -> None:
    c, secrets = county
    db.execute("TRUNCATE readings, rejects, rejects_counted, events, device_status")
    el = next(d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None)
    gw, other_gw = c.communities[0].gateway, c.communities[1].gateway
    mine = next(d.uid for d in c.communities[0].devices if d.gateway == gw)
    theirs = next(d.uid for d in c.communities[1].devices if d.gateway == other_gw)
    messages = FAMILIES[family](mine, theirs)
    direct = [(device_topic(el, Channel(ch)), p) for ch, p, _ in messages if ch != "batch"]
    batches = [(gateway_topic(gw, Channel.BATCH), p) for ch, p, _ in messages if ch == "batch"]
    if direct:
        publish_all(broker, el, secrets[el], direct)
    if batches:
        publish_all(broker, gw, secrets[gw], batches)
    valid_ts = int(time.time() * 1000)
    publish_all(
        broker,
        el,
        secrets[el],
        [(device_topic(el, Channel.TELEMETRY), encode_sample(valid_ts, {"floor": 7}))],
    )

    deadline = time.monotonic() + 20
    stored = 0
    while time.monotonic() < deadline and not stored:
        row = db.execute(
            "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id"
            " WHERE d.uid = %s AND r.ts = to_timestamp(%s / 1000.0)",
            (el, valid_ts),
        ).fetchone()
        stored = int(row[0]) if row else 0
        time.sleep(0.1)
    assert stored == 1, "the valid reading after the hostile ones was not stored"
    assert not ingest_worker._stop.is_set()

    found = db.execute("SELECT reason, detail FROM rejects").fetchall()
    reasons = sorted(r for r, _ in found)
    expected = sorted(r for _ch, _p, reasons in messages for r in reasons.split(","))
    assert reasons == expected, f"{family}: {sorted(found)}"
    sizes = db.execute(
        "SELECT max(octet_length(payload)), max(length(detail)) FROM rejects"
    ).fetchone()
    assert sizes is not None and sizes[0] <= 4096 and sizes[1] <= 1000, "rejects are bounded"
    assert ingest_worker.stats.rejects["internal"] == 0, "every family has a precise reason"


def test_a_flood_of_rejects_from_one_device_is_counted_beyond_its_limit(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    c, secrets = county
    db.execute("TRUNCATE readings, rejects, rejects_counted")
    el = next(d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None)
    limit = ingest_worker.decoder.reject_limit_per_minute
    flood = limit + 300
    topic = device_topic(el, Channel.TELEMETRY)
    publish_all(broker, el, secrets[el], [(topic, b"not json")] * flood)
    deadline = time.monotonic() + 20
    total = 0
    while time.monotonic() < deadline and total < flood:
        row = db.execute(
            "SELECT (SELECT count(*) FROM rejects) + (SELECT coalesce(sum(n), 0) FROM rejects_counted)"
        ).fetchone()
        total = int(row[0]) if row else 0
        time.sleep(0.1)
    assert total == flood, "every message is accounted for"
    stored = db.execute("SELECT count(*) FROM rejects").fetchone()
    assert stored is not None and limit <= stored[0] <= 2 * limit, "at most the limit per minute"
    assert db.execute("SELECT DISTINCT who, reason FROM rejects_counted").fetchall() == [
        (el, "malformed")
    ]
