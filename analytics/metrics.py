"""Analytics: its metrics (module-level, in the process's default registry) and the SQL behind
the ones read from the database.

- ``shouwang_analytics_feed_lag_seconds``: the newest committed reading's time (the newest
  ``latest_readings.ts``, one row per device and metric) minus the newest reading analytics has
  processed, never below 0; before its first reading, the newest committed when it started.
  Both are times of the data, so the figure is the same under the wall clock and the data clock.
- ``shouwang_analytics_tick_seconds``: the detectors' time per step (the feed messages taken
  and the time-driven checks; the database writes after them are not in it).
- ``shouwang_analytics_open_alarms{severity}``: the open (not cleared) alarms in the database,
  by severity, re-read every few seconds and after every step that changed alarms.
- ``shouwang_analytics_alarms_opened_total{severity}``: alarms this process opened (committed).

The heartbeat (``core/metrics.py``) says ``progressed`` with the readings and events each step
processed, and ``pending`` with the readings committed after the newest one processed (counted
up to :data:`PENDING_CAP`, on the readings' time index).
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

from core.db import Conn
from core.severity import Severity

FEED_LAG = Gauge(
    "shouwang_analytics_feed_lag_seconds",
    "the newest committed reading's time minus the newest reading analytics processed",
)
TICK_SECONDS = Histogram(
    "shouwang_analytics_tick_seconds",
    "detector time per step (feed messages and time-driven checks, database writes excluded)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
OPEN_ALARMS = Gauge(
    "shouwang_analytics_open_alarms", "open (not cleared) alarms, by severity", ["severity"]
)
ALARMS_OPENED = Counter(
    "shouwang_analytics_alarms_opened", "alarms analytics opened, by severity", ["severity"]
)

SEVERITIES = tuple(s.value for s in Severity)
PENDING_CAP = 100_000  # readings counted at most as pending (0.05 s; a count beyond costs more)
REFRESH_EVERY_S = 5.0  # how often the figures read from the database are re-read


def newest_committed(conn: Conn) -> float | None:
    """The time of the newest committed reading (Unix seconds), None when there is none."""
    row = conn.execute("SELECT extract(epoch FROM max(ts)) FROM latest_readings").fetchone()
    return None if row is None or row[0] is None else float(row[0])


def readings_after(conn: Conn, t: float, cap: int = PENDING_CAP) -> int:
    """Readings committed with a time after ``t`` (Unix seconds), counted up to ``cap``."""
    row = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM readings WHERE ts > %s LIMIT %s) r",
        (datetime.fromtimestamp(t, UTC), cap),
    ).fetchone()
    return 0 if row is None else int(row[0])


def open_alarms(conn: Conn) -> dict[str, int]:
    """The open (not cleared) alarms by severity, every severity named (0 for none)."""
    counts = dict.fromkeys(SEVERITIES, 0)
    for severity, n in conn.execute(
        "SELECT severity, count(*) FROM alarms WHERE state <> 'cleared' GROUP BY severity"
    ):
        counts[str(severity)] = int(n)
    return counts


def feed_lag(newest_committed: float | None, processed: float) -> float:
    """The feed lag in seconds (pure): 0 when nothing is committed or analytics is ahead (its
    feed carries readings the database no longer holds as newest)."""
    if newest_committed is None:
        return 0.0
    return max(0.0, newest_committed - processed)


def show_open_alarms(counts: dict[str, int]) -> None:
    for severity, n in counts.items():
        OPEN_ALARMS.labels(severity).set(n)
