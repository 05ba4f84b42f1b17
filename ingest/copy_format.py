"""Ingest: PostgreSQL's binary COPY format for readings, built with numpy in one pass.

A row is (ts timestamptz, device_id int4, metric_id int2, value float8). Building the whole
buffer from four arrays costs a few nanoseconds a row, against about a microsecond for a
row-by-row writer; this is what lets ingest approach the raw COPY rate.
"""

from __future__ import annotations

from array import array

import numpy as np

# Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC).
PG_EPOCH_US = 946_684_800_000_000
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"

ROW = np.dtype(
    [
        ("nfields", ">i2"),
        ("ts_len", ">i4"),
        ("ts", ">i8"),
        ("dev_len", ">i4"),
        ("dev", ">i4"),
        ("met_len", ">i4"),
        ("met", ">i2"),
        ("val_len", ">i4"),
        ("val", ">f8"),
    ]
)


def readings_buffer(
    ts_ms: array[int], device: array[int], metric: array[int], value: array[float]
) -> bytes:
    n = len(ts_ms)
    rows = np.empty(n, dtype=ROW)
    rows["nfields"] = 4
    rows["ts_len"] = 8
    rows["ts"] = np.frombuffer(ts_ms, dtype=np.int64) * 1000 - PG_EPOCH_US
    rows["dev_len"] = 4
    rows["dev"] = np.frombuffer(device, dtype=np.int32)
    rows["met_len"] = 2
    rows["met"] = np.frombuffer(metric, dtype=np.int16)
    rows["val_len"] = 8
    rows["val"] = np.frombuffer(value, dtype=np.float64)
    return HEADER + rows.tobytes() + TRAILER


def latest_per_key(
    ts_ms: array[int], device: array[int], metric: array[int], value: array[float]
) -> tuple[list[int], list[int], list[float], list[float]]:
    """The newest (device, metric, ts_seconds, value) per (device, metric) in a batch."""
    if not len(ts_ms):
        return [], [], [], []
    ts = np.frombuffer(ts_ms, dtype=np.int64)
    dev = np.frombuffer(device, dtype=np.int32)
    met = np.frombuffer(metric, dtype=np.int16)
    key = dev.astype(np.int64) << 16 | met.astype(np.int64) & 0xFFFF
    order = np.lexsort((ts, key))
    last = np.ones(len(order), dtype=bool)
    sorted_keys = key[order]
    last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    pick = order[last]
    val = np.frombuffer(value, dtype=np.float64)
    return (
        dev[pick].tolist(),
        met[pick].tolist(),
        (ts[pick] / 1000.0).tolist(),
        val[pick].tolist(),
    )
