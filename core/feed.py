"""Shared: the internal feed from ingest to analytics.

After each commit, ingest publishes what it accepted, already validated, so that analytics never
sees a raw device message: readings as one packed array, events and statuses as JSON.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import orjson

READINGS_TOPIC: Final = "sw/internal/v1/readings"
EVENTS_TOPIC: Final = "sw/internal/v1/events"
INTERNAL_PREFIX: Final = "sw/internal"

READING = np.dtype(
    [("ts", "<i8"), ("device", "<i4"), ("metric", "<i2"), ("_pad", "<i2"), ("value", "<f8")]
)

# (ts_ms, device_id, code, active, detail) and (ts_ms, device_id, online, reason)
FeedEvent = tuple[int, int, str, bool, dict[str, Any]]
FeedStatus = tuple[int, int, bool, str]


def pack_readings(ts_ms: Any, device: Any, metric: Any, value: Any) -> bytes:
    rows = np.zeros(len(ts_ms), dtype=READING)
    rows["ts"] = np.frombuffer(ts_ms, dtype=np.int64)
    rows["device"] = np.frombuffer(device, dtype=np.int32)
    rows["metric"] = np.frombuffer(metric, dtype=np.int16)
    rows["value"] = np.frombuffer(value, dtype=np.float64)
    return rows.tobytes()


def unpack_readings(payload: bytes) -> np.ndarray[Any, np.dtype[np.void]]:
    if len(payload) % READING.itemsize:
        raise ValueError(f"feed payload of {len(payload)} bytes is not whole readings")
    return np.frombuffer(payload, dtype=READING)


def pack_events(events: list[FeedEvent], statuses: list[FeedStatus]) -> bytes:
    return orjson.dumps({"events": events, "statuses": statuses})


def unpack_events(payload: bytes) -> tuple[list[FeedEvent], list[FeedStatus]]:
    body = orjson.loads(payload)
    return (
        [(int(t), int(d), str(c), bool(a), dict(x)) for t, d, c, a, x in body["events"]],
        [(int(t), int(d), bool(o), str(r)) for t, d, o, r in body["statuses"]],
    )
