"""The per-minute rollup against the real database: what it holds equals aggregating the raw
readings, a pass can be repeated without counting twice, and a late reading written by ingest
gets its (already rolled-up) minute recomputed."""

from __future__ import annotations

from array import array
from datetime import UTC, datetime, timedelta

import numpy as np

from analytics.rollup import catch_up, roll_up
from core.db import Conn, connect
from core.settings import Settings
from ingest.rows import Batch
from ingest.store import late_minutes, write_batch

COMPARE = (
    "SELECT time_bucket('1 minute', ts) AS b, device_id, metric_id, count(*),"
    " round(sum(value)::numeric, 6),"
    " min(value), max(value), first(value, ts), last(value, ts) FROM readings"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
ROLLED = (
    "SELECT bucket, device_id, metric_id, n, round(sum::numeric, 6), min, max, first, last"
    " FROM readings_1m"
    " ORDER BY 1, 2, 3"
)


def test_late_minutes_are_the_minutes_of_readings_older_than_two_minutes() -> None:
    now = 1_700_000_000_000
    ts = np.array([now, now - 60_000, now - 125_000, now - 130_000, now - 3_600_500])
    assert late_minutes(ts, now) == sorted(
        {(now - 125_000) // 60_000 * 60_000, (now - 3_600_500) // 60_000 * 60_000}
    )
    assert late_minutes(np.array([now - 1000]), now) == []


def test_the_rollup_equals_the_raw_readings_and_catches_late_ones(
    settings: Settings, db: Conn
) -> None:
    db.execute("TRUNCATE readings, readings_1m, rollup_dirty, rollup_state")
    devices = [r[0] for r in db.execute("SELECT id FROM devices ORDER BY id LIMIT 3")]
    now = datetime.now(UTC)
    start = now - timedelta(minutes=90)
    rng = np.random.default_rng(3)
    rows = [
        (start + timedelta(seconds=10 * i + d), dev, 101 + m, float(rng.normal(5, 2)))
        for i in range(90 * 6)
        for d, dev in enumerate(devices)
        for m in range(2)
    ]
    with db.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (ts, device_id, metric_id, value) VALUES (%s, %s, %s, %s)", rows
        )
    written, passes = catch_up(db, now, max_span=timedelta(minutes=40))
    assert passes >= 3, "a long backlog is caught up in bounded passes"
    assert db.execute(ROLLED).fetchall() == db.execute(COMPARE).fetchall()
    (stored,) = db.execute("SELECT count(*) FROM readings_1m").fetchone() or (0,)
    assert stored >= 90 * len(devices) * 2, "every device, metric and minute"
    assert written >= stored, "each pass counts what it wrote"

    roll_up(db, now)  # again: the last minutes are replaced, not added to
    assert db.execute(ROLLED).fetchall() == db.execute(COMPARE).fetchall()

    # Ingest writes a reading an hour late: its minute was rolled up long ago.
    late = int((start + timedelta(minutes=30, seconds=5)).timestamp() * 1000)
    batch = Batch(
        ts_ms=array("q", [late]),
        device=array("i", [devices[0]]),
        metric=array("h", [101]),
        value=array("d", [1000.0]),
    )
    with connect(settings.database_url) as conn:
        write_batch(conn, batch)
    assert db.execute("SELECT count(*) FROM rollup_dirty").fetchone() == (1,)
    roll_up(db, datetime.now(UTC))
    assert db.execute("SELECT count(*) FROM rollup_dirty").fetchone() == (0,)
    assert db.execute(ROLLED).fetchall() == db.execute(COMPARE).fetchall()
    (peak,) = db.execute(
        "SELECT max FROM readings_1m WHERE device_id = %s AND metric_id = 101"
        " AND bucket = to_timestamp(%s / 60000 * 60)",
        (devices[0], late),
    ).fetchone() or (0,)
    assert peak == 1000.0
    db.execute("TRUNCATE readings, readings_1m, rollup_dirty, rollup_state")


def test_running_analytics_keeps_the_rollup_current(settings: Settings, db: Conn) -> None:
    import threading
    import time

    from analytics.__main__ import build

    db.execute("TRUNCATE readings, readings_1m, rollup_dirty, rollup_state")
    (dev,) = db.execute("SELECT id FROM devices ORDER BY id LIMIT 1").fetchone() or (0,)
    now = datetime.now(UTC)
    db.execute(
        "INSERT INTO readings (ts, device_id, metric_id, value)"
        " SELECT %s - make_interval(secs => s), %s, 101, s FROM generate_series(1, 600, 10) s",
        (now, dev),
    )
    service = build(settings)
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while (
            time.monotonic() < deadline
            and db.execute(ROLLED).fetchall() != db.execute(COMPARE).fetchall()
        ):
            time.sleep(0.2)
    finally:
        service.stop()
        thread.join(30)
    assert db.execute(ROLLED).fetchall() == db.execute(COMPARE).fetchall()
    (minutes,) = db.execute("SELECT count(*) FROM readings_1m").fetchone() or (0,)
    assert minutes in (10, 11), "ten minutes of readings, however they fall on minute edges"
    db.execute("TRUNCATE readings, readings_1m, rollup_dirty, rollup_state")
