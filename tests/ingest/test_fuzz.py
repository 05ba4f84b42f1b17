"""Fuzzing on the real path: 10,000 generated hostile messages from a registered device and a
registered site gateway (their own credentials, their own topics) go through the real broker into
ingest and on to analytics. Afterwards both stages still run, every message is accounted for (as
rows, as a stored reject or as a counted one), and a valid alarm-button event is stored and
alarmed on as usual. ``SHOUWANG_FUZZ_MESSAGES`` sets a longer run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analytics.__main__ import build
from analytics.service import Analytics
from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic, encode_event, encode_sample, gateway_topic
from ingest.consumer import Consumer
from simulators.county import County
from tests.background import running
from tests.conftest import Broker
from tests.mqtt_helpers import Peer, peer

TOTAL = int(os.environ.get("SHOUWANG_FUZZ_MESSAGES", "10000"))
PER_EXAMPLE = 100
NOW = int(time.time() * 1000)

# --- hostile material ------------------------------------------------------------------------

timestamps = st.one_of(
    st.integers(NOW - 3_600_000, NOW),  # plausible
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**64, 2**100),  # beyond 64 bits: a float to JSON parsers
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["2026-11-30T08:00:00+08:00", "2026-11-30T08:00:00", "99999-01-01", ""]),
    st.none(),
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324]),
)
# Text with what databases refuse: NUL, and escapes that decode to lone surrogates.
nasty_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["\x00", "a\x00b", "+", "#", "sw/v1/#", "../..", "\u202e", "x" * 300]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, nasty_text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=20,
)


def dumps(value: Any) -> bytes:
    """JSON as a careless firmware writes it: NaN and Infinity literals included."""
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def telemetry(draw: st.DrawFn) -> tuple[str, bytes]:
    names = st.one_of(st.sampled_from(["floor", "speed", "door_state", "car_status"]), nasty_text)
    values = draw(st.dictionaries(names, st.one_of(numbers, json_values), max_size=5))
    return "telemetry", dumps({"ts": draw(timestamps), "values": values})


@st.composite
def event(draw: st.DrawFn) -> tuple[str, bytes]:
    body: dict[str, Any] = {
        "ts": draw(timestamps),
        "code": draw(st.one_of(st.sampled_from(["90", "11", "41"]), nasty_text)),
    }
    if draw(st.booleans()):
        body["detail"] = draw(json_values)
    if draw(st.booleans()):
        body["active"] = draw(st.one_of(st.booleans(), json_values))
    return "event", dumps(body)


@st.composite
def status(draw: st.DrawFn) -> tuple[str, bytes]:
    body = {"online": draw(st.one_of(st.booleans(), json_values))}
    if draw(st.booleans()):
        body["ts"] = draw(timestamps)
    if draw(st.booleans()):
        body["reason"] = draw(st.one_of(nasty_text, json_values))
    return "status", dumps(body)


@st.composite
def batch(draw: st.DrawFn, own: str, other: str) -> tuple[str, bytes]:
    devices = st.one_of(st.sampled_from([own, other, "+", "#", "", "a/+/b"]), nasty_text)
    samples = st.lists(
        st.fixed_dictionaries(
            {"device": devices, "ts": timestamps, "values": st.dictionaries(nasty_text, numbers)}
        ),
        max_size=4,
    )
    events = st.lists(
        st.fixed_dictionaries(
            {"device": devices, "ts": timestamps, "code": st.sampled_from(["90", "05", "\x00"])}
        ),
        max_size=3,
    )
    return "batch", dumps({"samples": draw(samples), "events": draw(events)})


raw = st.one_of(
    st.binary(max_size=300),
    st.integers(1000, 5000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.just(b'{"ts": 1, "ts": 2, "values": {"floor": 1, "floor": "x"}}'),  # duplicate keys
    st.just(b'{"values": {"speed": 1e400}, "ts": 1}'),
    st.just(b'{"online": true, "reason": "\\ud800"}'),
    st.just(b"x" * 300_000),  # oversize
)


def hostile(own: str, other: str) -> st.SearchStrategy[tuple[str, str, bytes]]:
    """(sender: device or gateway, channel, payload)."""
    device = st.one_of(telemetry(), event(), status(), raw.map(lambda b: ("telemetry", b)))
    gateway = st.one_of(batch(own, other), raw.map(lambda b: ("batch", b)))
    return st.one_of(
        device.map(lambda m: ("device", m[0], m[1])),
        gateway.map(lambda m: ("gateway", m[0], m[1])),
    )


# --- the run -----------------------------------------------------------------------------------


@pytest.fixture
def analytics_running(settings: Settings) -> Iterator[Analytics]:
    service = build(settings)
    with running(service.run, service.stop, "analytics"):
        yield service


# The fuzz is about what a message holds, not how many come: thousands a second from one device
# (an oversize one counting once per KiB) are a flood, which tests/ingest/test_flood.py covers. Here the
# rate limit stays in the path but never refuses, so the valid reading after the fuzz is stored.
UNLIMITED = {
    "device_messages_per_minute": 1e9,
    "device_burst_messages": 1e9,
    "gateway_messages_per_minute": 1e9,
    "gateway_burst_messages": 1e9,
}


def wait_for_ingest(consumer: Consumer, target: int) -> None:
    """Until ingest has committed ``target`` messages in all, as long as it makes progress: on a
    machine shared with other tests it may be slow, which is not what this test is about; a
    stall of 60 s, or 5 minutes in all, ends the wait (and the count assertion then says so)."""
    last, moved = consumer.stats.messages, time.monotonic()
    deadline = moved + 300
    while consumer.stats.messages < target and time.monotonic() < deadline:
        time.sleep(0.2)
        if consumer.stats.messages != last:
            last, moved = consumer.stats.messages, time.monotonic()
        elif time.monotonic() - moved > 60:
            return


def describe(consumer: Consumer) -> str:
    """Ingest's state, for a failure message."""
    st_ = consumer.stats
    return (
        f"flushes {st_.flushes}, readings {st_.readings}, slow-path readings"
        f" {st_.slow_path_readings}, rejects {dict(st_.rejects)}, counted {st_.rejects_counted};"
        f" connected {consumer._connected.is_set()}, paused reading {consumer.paused_reading}"
    )


@pytest.mark.parametrize("ingest_worker", [UNLIMITED], indirect=True)
def test_ten_thousand_hostile_messages_stop_nothing(
    db: Conn,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    ingest_worker: Consumer,
    analytics_running: Analytics,
) -> None:
    c, secrets = county
    db.execute("TRUNCATE rejects, rejects_counted")
    lifts = [d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None]
    el, witness = lifts[0], lifts[1]  # the fuzzed lift; one the fuzz never touches
    gw, other_gw = c.communities[0].gateway, c.communities[1].gateway
    assert gw is not None and other_gw is not None
    own = next(d.uid for d in c.communities[0].devices if d.gateway == gw)
    other = next(d.uid for d in c.communities[1].devices if d.gateway == other_gw)
    senders: dict[str, Peer] = {
        "device": peer(broker.host, broker.port, el, secrets[el]),
        "gateway": peer(broker.host, broker.port, gw, secrets[gw]),
    }
    topic = {
        ("device", ch): device_topic(el, Channel(ch)) for ch in ("telemetry", "event", "status")
    } | {("gateway", "batch"): gateway_topic(gw, Channel.BATCH)}
    decoder = ingest_worker.decoder
    start_messages = ingest_worker.stats.messages
    start_traceless = decoder.traceless
    sent = 0

    @settings(
        max_examples=TOTAL // PER_EXAMPLE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(hostile(own, other), min_size=PER_EXAMPLE, max_size=PER_EXAMPLE))
    def publish(messages: list[tuple[str, str, bytes]]) -> None:
        nonlocal sent
        mids: dict[str, list[int]] = {"device": [], "gateway": []}
        for sender, channel, payload in messages:
            mids[sender].append(senders[sender].publish(topic[(sender, channel)], payload))
        for sender, ids in mids.items():
            senders[sender].wait_acks(ids, timeout=30)
        sent += len(messages)

    try:
        published = time.monotonic()
        publish()
        wait_for_ingest(ingest_worker, start_messages + sent)
        print(f"{sent} published and committed in {time.monotonic() - published:.1f} s")
        # Then a valid reading from the fuzzed lift, and an alarm-button press from another, as
        # real terminals send them: stored and alarmed on as usual.
        pressed = int(time.time() * 1000)
        mid = senders["device"].publish(
            device_topic(el, Channel.TELEMETRY), encode_sample(pressed, {"floor": 12})
        )
        senders["device"].wait_acks([mid])
        press = peer(broker.host, broker.port, witness, secrets[witness])
        try:
            button = device_topic(witness, Channel.EVENT)  # released (as it may have been), pressed
            press.wait_acks(
                [
                    press.publish(button, encode_event(pressed - 500, "90", active=False)),
                    press.publish(button, encode_event(pressed, "90", active=True)),
                ]
            )
        finally:
            press.close()
        alarm = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and alarm is None:
            # A new alarm, or a re-trigger of one a hostile but valid press opened earlier.
            alarm = db.execute(
                "SELECT a.id FROM alarms a JOIN devices d ON d.id = a.device_id"
                " WHERE d.uid = %s AND a.event_code = 'EL.ALARM_BUTTON'"
                " AND a.last_triggered_at >= to_timestamp(%s / 1000.0)",
                (witness, pressed - 1000),
            ).fetchone()
            time.sleep(0.2)
    finally:
        for p in senders.values():
            p.close()
    assert sent >= TOTAL
    received = ingest_worker.stats.messages - start_messages
    assert received == sent + 3, (
        f"ingest committed {received} of {sent + 3} messages; {describe(ingest_worker)}"
    )
    floor = db.execute(
        "SELECT r.value FROM readings r JOIN devices d ON d.id = r.device_id JOIN metrics m"
        " ON m.id = r.metric_id WHERE d.uid = %s AND m.name = 'floor'"
        " AND r.ts = to_timestamp(%s / 1000.0)",
        (el, pressed),
    ).fetchone()
    assert floor == (12.0,), "the valid reading after the fuzz was stored"
    assert decoder.traceless == start_traceless, "a message left neither rows nor a reject"
    stored, counted = db.execute(
        "SELECT (SELECT count(*) FROM rejects), (SELECT coalesce(sum(n), 0) FROM rejects_counted)"
    ).fetchone() or (0, 0)
    st_ = ingest_worker.stats
    assert (stored, counted) == (sum(st_.rejects.values()), st_.rejects_counted)
    assert stored + counted >= sent // 2, "most hostile messages are rejected"
    assert ingest_worker.stats.rejects["internal"] == 0, (
        "every hostile message got a precise reason"
    )
    seen = db.execute(
        "SELECT a.state, a.opened_at, a.last_triggered_at, a.triggers, a.cleared_reason FROM alarms a"
        " JOIN devices d ON d.id = a.device_id WHERE d.uid = %s AND a.event_code = 'EL.ALARM_BUTTON'",
        (witness,),
    ).fetchall()
    assert alarm is not None, (
        f"the valid press after the fuzz was not alarmed on: {seen}, {pressed}"
    )
    assert not analytics_running._stop.is_set()
