"""Analytics: the per-minute rollup of readings (``readings_1m``), what dashboards and reports
read for ranges of hours and days instead of every reading.

Each pass recomputes, from ``readings`` and their archive (``readings_between``), every minute
from a little before ``done_until`` (the last minutes may still be filling) up to now, then the
minutes ingest marked dirty because late readings arrived for them. Recomputing replaces a minute's rows, so a pass can be repeated or
interrupted at any point without counting anything twice. A pass covers at most ``max_span``
(a first run on a full database catches up over several passes).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from core.db import Conn

log = logging.getLogger("shouwang.rollup")
REFILL = timedelta(minutes=3)  # recomputed on every pass: readings still arriving for them
MAX_SPAN = timedelta(hours=6)
_MINUTES = (
    "INSERT INTO readings_1m (bucket, device_id, metric_id, n, sum, min, max, first, last)"
    " SELECT time_bucket('1 minute', ts), device_id, metric_id, count(*), sum(value), min(value),"
    " max(value), first(value, ts), last(value, ts) FROM readings_between(%s, %s)"
    " GROUP BY 1, 2, 3 ORDER BY 1, 3, 2"  # a metric's minutes together: dashboards read so
)


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def recompute(conn: Conn, start: datetime, end: datetime) -> int:
    """Replace the rollup of the minutes in [start, end); return the rows written."""
    conn.execute("DELETE FROM readings_1m WHERE bucket >= %s AND bucket < %s", (start, end))
    return conn.execute(_MINUTES, (start, end)).rowcount


def roll_up(
    conn: Conn, now: datetime, *, max_span: timedelta = MAX_SPAN
) -> tuple[int, datetime | None]:
    """One pass, in one transaction; (rollup rows written, how far it has gone: None while
    there are no readings)."""
    written = 0
    with conn.transaction():
        state = conn.execute("SELECT done_until FROM rollup_state FOR UPDATE").fetchone()
        if state is None:
            first = conn.execute(
                "SELECT least((SELECT min(ts) FROM readings),"
                " (SELECT min(first_ts) FROM readings_archive))"
            ).fetchone()
            if first is None or first[0] is None:
                return 0, None
            start = _minute(first[0])
            conn.execute(
                "INSERT INTO rollup_state (done_until) VALUES (%s) ON CONFLICT DO NOTHING", (start,)
            )
        else:
            start = min(state[0], _minute(now) - REFILL)
        end = min(_minute(now) + timedelta(minutes=1), start + max_span)
        if end > start:
            written += recompute(conn, start, end)
        done = min(end, _minute(now))
        row = conn.execute(
            "UPDATE rollup_state SET done_until = greatest(done_until, %s) RETURNING done_until",
            (done,),
        ).fetchone()
        done = row[0] if row is not None else done
        dirty = [
            r[0]
            for r in conn.execute(
                "DELETE FROM rollup_dirty WHERE bucket < %s RETURNING bucket", (start,)
            ).fetchall()
        ]
        for bucket in sorted(dirty):
            written += recompute(conn, bucket, bucket + timedelta(minutes=1))
    if dirty:
        log.info("rollup: %d late minute(s) recomputed", len(dirty))
    return written, done


def catch_up(conn: Conn, now: datetime, *, max_span: timedelta = MAX_SPAN) -> tuple[int, int]:
    """Passes until the rollup reaches ``now``; (rows written, passes)."""
    rows = passes = 0
    while True:
        written, done = roll_up(conn, now, max_span=max_span)
        rows, passes = rows + written, passes + 1
        if done is None or done >= _minute(now):
            return rows, passes
