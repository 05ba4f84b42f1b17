"""What polls become in the buffer: samples, events on change, statuses on change."""

from __future__ import annotations

import orjson

from core.wire import Batch, join_batch
from gateway.collector import Collector
from gateway.connector import Poll
from gateway.store import Kind
from sites.config import DeviceConfig, Tcp
from sites.converter import Decoded
from sites.profiles import shipped_profiles

PR = DeviceConfig(
    "C01-PR", shipped_profiles()["pump-room-controller"], Tcp("127.0.0.1", 502), 1, 1.0, 1.0, 0
)


def poll(ts: int, discrete: dict[str, int] | None, values: dict[str, float] | None = None) -> Poll:
    if discrete is None:
        return Poll(PR, ts, None, "unit 1 at 127.0.0.1:502: TimeoutError")
    return Poll(PR, ts, Decoded(values or {"tank_level": 3.0}, discrete, ()))


def bodies(items: list[tuple[Kind, bytes]]) -> list[tuple[Kind, dict[str, object]]]:
    return [(k, orjson.loads(b)) for k, b in items]


def test_statuses_and_events_are_sent_on_change_only() -> None:
    c = Collector()
    ok = {"pump1_fault": 0, "pump2_fault": 0, "flood": 0}
    first = bodies(c.collect(poll(1000, ok)))
    assert first == [
        (Kind.STATUS, {"device": "C01-PR", "ts": 1000, "online": True, "reason": "answering"}),
        (Kind.SAMPLE, {"device": "C01-PR", "ts": 1000, "values": {"tank_level": 3.0}}),
    ]
    fault = bodies(c.collect(poll(2000, ok | {"pump2_fault": 1})))
    assert fault[1] == (
        Kind.EVENT,
        {
            "device": "C01-PR",
            "ts": 2000,
            "code": "PUMP_FAULT",
            "active": True,
            "detail": {"points": ["pump2_fault"]},
        },
    )
    assert len(fault) == 2
    # pump 1 faults too: the code is already active, nothing new
    assert len(c.collect(poll(3000, ok | {"pump1_fault": 1, "pump2_fault": 1}))) == 1
    silent = bodies(c.collect(poll(4000, None)))
    assert silent == [
        (
            Kind.STATUS,
            {
                "device": "C01-PR",
                "ts": 4000,
                "online": False,
                "reason": "unit 1 at 127.0.0.1:502: TimeoutError",
            },
        )
    ]
    assert c.collect(poll(5000, None)) == []
    back = bodies(c.collect(poll(6000, ok)))
    assert [k for k, _ in back] == [Kind.STATUS, Kind.SAMPLE, Kind.EVENT]
    assert back[2][1]["active"] is False
    assert c.polls == 6
    assert c.silent_polls == 2


def test_what_the_collector_writes_is_a_valid_batch() -> None:
    c = Collector()
    items = c.collect(poll(1000, {"pump1_fault": 1, "pump2_fault": 0, "flood": 1}))
    by = {k: [b for kk, b in items if kk is k] for k in Kind}
    payload = join_batch((7, 9), by[Kind.SAMPLE], by[Kind.EVENT], by[Kind.STATUS])
    batch = Batch.model_validate_json(payload)
    assert batch.seq == (7, 9)
    assert {e.code for e in batch.events} == {"PUMP_FAULT", "FLOOD"}
    assert [s.online for s in batch.statuses] == [True]


def test_an_error_text_is_made_storable_and_short() -> None:
    c = Collector()
    hostile = Poll(PR, 1, None, "bad\x00answer \udc80" + "x" * 5000)
    [(kind, body)] = c.collect(hostile)
    status = Batch.model_validate_json(join_batch(None, [], [], [body])).statuses[0]
    assert kind is Kind.STATUS
    assert status.reason.startswith("bad\\x00answer \\udc80")
    assert len(status.reason) == 1000
