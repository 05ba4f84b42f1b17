"""What a site gateway reports about itself calls for platform alarms: data its buffer dropped
(``gateway_dropped``) and a clock off the platform's by more than the timestamp window
(``gateway_clock``), whose status is then stored and flagged rather than rejected; and its answer
to a pushed config is recorded against the version (wire contract revision 5)."""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.db import Conn
from core.severity import Severity
from core.wire import Channel, encode_config_answer, gateway_topic
from ingest.consumer import Consumer
from ingest.gateway_alarms import Clear, Raise, judge, new_drops
from lifecycle.platform import PlatformKind
from simulators.county import County
from tests.conftest import Broker
from tests.mqtt_helpers import Peer, peer

WINDOW = 300_000


def state(dropped: int, used: int = 1000, offset: int | None = 0) -> tuple[Any, ...]:
    return (10, used, 4096, dropped, offset, 5, 5, 1)


def test_drops_raise_and_a_drained_buffer_clears() -> None:
    assert new_drops(None, 7) == 7 and new_drops(5, 7) == 2 and new_drops(9, 3) == 3
    first = judge(None, state(40), None)
    assert first == [
        Raise(
            PlatformKind.GATEWAY_DROPPED,
            Severity.P3,
            {
                "dropped": 40,
                "new": 40,
                "buffer_entries": 10,
                "buffer_bytes": 1000,
                "buffer_max_bytes": 4096,
            },
        )
    ]
    assert judge(40, state(40, used=4000), None) == []  # still full: no news
    assert judge(40, state(40, used=2048), None) == [
        Clear(PlatformKind.GATEWAY_DROPPED, "buffer_drained")
    ]


def test_a_clock_beyond_the_window_raises_and_back_within_clears() -> None:
    out = judge(0, state(0, used=4000), (-WINDOW - 1, WINDOW))
    assert out == [
        Raise(
            PlatformKind.GATEWAY_CLOCK,
            Severity.P2,
            {"clock_offset_ms": -WINDOW - 1, "window_ms": WINDOW},
        )
    ]
    assert judge(0, state(0, used=4000), (WINDOW, WINDOW)) == [
        Clear(PlatformKind.GATEWAY_CLOCK, "clock_within_window")
    ]


def _open(db: Conn, kind: str) -> tuple[str, dict[str, Any], int] | None:
    row = db.execute(
        "SELECT state, detail, triggers FROM platform_alarms WHERE kind = %s"
        " AND subject = 'C01-GW' ORDER BY id DESC LIMIT 1",
        (kind,),
    ).fetchone()
    return None if row is None else (str(row[0]), dict(row[1]), int(row[2]))


def _until(check: Any, what: str, within_s: float = 10) -> Any:
    deadline = time.monotonic() + within_s
    while not (out := check()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return out


def _status(gw: Peer, ts: int, **st: int | None) -> None:
    body = {
        "buffer_entries": 3,
        "buffer_bytes": 300,
        "buffer_max_bytes": 4096,
        "dropped": 0,
        "clock_offset_ms": 0,
        "devices": 5,
        "devices_online": 5,
        "config_version": 0,
    } | st
    payload = orjson.dumps({"online": True, "ts": ts, "state": body})
    gw.wait_acks([gw.publish(gateway_topic("C01-GW", Channel.STATUS), payload)])


def test_the_platform_raises_and_clears_from_the_gateways_state(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    db.execute("DELETE FROM gateway_state")
    db.execute("DELETE FROM platform_alarms WHERE kind IN ('gateway_dropped', 'gateway_clock')")
    gw = peer(broker.host, broker.port, "C01-GW", county[1]["C01-GW"])
    try:
        now = int(time.time() * 1000)
        _status(gw, now - 3000, dropped=0)
        _status(gw, now - 2000, dropped=120, buffer_bytes=4000)
        found = _until(lambda: _open(db, "gateway_dropped"), "no gateway_dropped alarm")
        assert found[0] == "active" and found[1]["dropped"] == 120 and found[1]["new"] == 120
        _status(gw, now - 1000, dropped=150, buffer_bytes=4000)
        found = _until(
            lambda: (a := _open(db, "gateway_dropped")) and a[2] == 2 and a, "no re-trigger"
        )
        assert found[1]["new"] == 30
        _status(gw, now, dropped=150, buffer_bytes=100)
        _until(lambda: (a := _open(db, "gateway_dropped")) and a[0] == "cleared", "not cleared")

        # Ten minutes ahead: its status is stored (at the platform's time) and flagged.
        ahead = int(time.time() * 1000) + 600_000
        _status(gw, ahead, clock_offset_ms=None)
        clock = _until(lambda: _open(db, "gateway_clock"), "no gateway_clock alarm")
        assert clock[0] == "active" and -620_000 < clock[1]["clock_offset_ms"] < -580_000
        row = db.execute(
            "SELECT (extract(epoch FROM s.ts) * 1000)::bigint FROM gateway_state s"
            " JOIN gateways g ON g.id = s.gateway_id WHERE g.uid = 'C01-GW'"
        ).fetchone()
        assert row is not None and row[0] < ahead - 500_000
        _status(gw, int(time.time() * 1000), clock_offset_ms=-250)
        _until(lambda: (a := _open(db, "gateway_clock")) and a[0] == "cleared", "not cleared")
        assert ingest_worker.stats.rejects == {}, ingest_worker.stats.rejects
    finally:
        gw.close()


def test_the_answer_to_a_push_is_recorded(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    db.execute("DELETE FROM gateway_configs")
    db.execute(
        "INSERT INTO gateway_configs (gateway_id, version, config, networks, pushed_by)"
        " SELECT id, v, 'gateway: C01-GW', '{10.0.0.0/8}', 'test' FROM gateways,"
        " generate_series(1, 2) AS v WHERE uid = 'C01-GW'"
    )
    gw = peer(broker.host, broker.port, "C01-GW", county[1]["C01-GW"])
    topic = gateway_topic("C01-GW", Channel.CONFIG)
    try:
        now = int(time.time() * 1000)
        gw.wait_acks([gw.publish(topic, encode_config_answer(1, True, [], now))])
        refused = ["site.yaml:3: devices: too many"]
        gw.wait_acks([gw.publish(topic, encode_config_answer(2, False, refused, now))])
        _until(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM gateway_configs WHERE state <> 'pushed'"
                ).fetchone()
                == (2,)
            ),
            "the answers were not recorded",
        )
        rows = db.execute(
            "SELECT version, state, errors, answered_at IS NOT NULL FROM gateway_configs"
            " ORDER BY version"
        ).fetchall()
        assert rows == [(1, "applied", [], True), (2, "refused", refused, True)]
        assert ingest_worker.stats.rejects == {}, ingest_worker.stats.rejects
    finally:
        gw.close()
        db.execute("DELETE FROM gateway_configs")
