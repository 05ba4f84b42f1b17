"""Gateway batches of wire contract revision 4, decoded: device statuses are stored as the
devices' own, each checked on its own, and a batch with a sequence range is remembered for its
storage acknowledgement, whatever parts of it were rejected."""

from __future__ import annotations

import orjson

from core.registry import DeviceRef, MetricSpec, Registry
from core.wire import Reason
from ingest.rows import Batch, Decoder

NOW = 1_800_000_000_000
TOPIC = "sw/v1/g/GW-1/batch"


def decoder() -> Decoder:
    reg = Registry(
        devices={
            "EF-1": DeviceRef(11, "EF-1", "electrical_fire", 1, 1, 10),
            "EF-2": DeviceRef(12, "EF-2", "electrical_fire", 1, 2, 10),  # another gateway's
        },
        gateways={"GW-1": 1, "GW-2": 2},
        metrics={"electrical_fire": {"residual_current": MetricSpec(401, 0, 5000)}},
    )
    return Decoder(reg)


def test_statuses_are_stored_and_the_range_acknowledged() -> None:
    payload = orjson.dumps(
        {
            "seq": [7, 9],
            "samples": [{"device": "EF-1", "ts": NOW, "values": {"residual_current": 9000}}],
            "statuses": [
                {"device": "EF-1", "ts": NOW - 5, "online": False, "reason": "unit 1: timeout"},
                {"device": "EF-1", "ts": NOW - 40 * 86_400_000, "online": True},
                {"device": "EF-2", "ts": NOW, "online": True},
            ],
        }
    )
    b = Batch()
    decoder().decode(TOPIC, payload, NOW, b)
    assert b.statuses == [(NOW - 5, 11, False, "unit 1: timeout")]
    assert sorted(r.reason for r in b.rejects) == sorted(
        [Reason.OUT_OF_RANGE, Reason.STALE_TS, Reason.DEVICE_MISMATCH]
    )
    assert b.stored == [("GW-1", 7, 9)]


def test_a_batch_rejected_whole_is_not_acknowledged() -> None:
    b = Batch()
    bad = b'{"seq": [1, 2], "statuses": [{"device": "EF-1", "ts": 1, "online": "yes"}]}'
    decoder().decode(TOPIC, bad, NOW, b)
    assert [r.reason for r in b.rejects] == [Reason.INVALID]
    assert b.stored == []
    without_seq = Batch()
    decoder().decode(
        TOPIC, b'{"statuses": [{"device": "EF-1", "ts": 1, "online": true}]}', 2, without_seq
    )
    assert without_seq.statuses == [(1, 11, True, "")]
    assert without_seq.stored == []


def test_a_gateways_own_status_carries_its_state() -> None:
    state = {
        "buffer_entries": 12,
        "buffer_bytes": 1200,
        "buffer_max_bytes": 4096,
        "dropped": 40,
        "clock_offset_ms": None,
        "devices": 5,
        "devices_online": 5,
    }
    b = Batch()
    d = decoder()
    d.decode(
        "sw/v1/g/GW-1/status", orjson.dumps({"online": True, "ts": NOW, "state": state}), NOW, b
    )
    d.decode("sw/v1/g/GW-1/status", b'{"online": false}', NOW + 5, b)  # its last will
    # Revision 5: a gateway's status far ahead of the platform's clock is kept (at the
    # platform's time), its clock flagged; one far in the past is still rejected.
    d.decode("sw/v1/g/GW-1/status", orjson.dumps({"online": True, "ts": NOW + 10**9}), NOW, b)
    d.decode("sw/v1/g/GW-1/status", orjson.dumps({"online": True, "ts": NOW - 10**11}), NOW, b)
    assert b.gateway_states == [
        (NOW, 1, True, "", (12, 1200, 4096, 40, None, 5, 5, None), NOW, None),
        (NOW + 5, 1, False, "", None, NOW + 5, None),
        (NOW, 1, True, "", None, NOW, (-(10**9), 300_000)),
    ]
    assert [r.reason for r in b.rejects] == [Reason.STALE_TS]
    assert d.traceless == 0
