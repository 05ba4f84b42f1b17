"""Analytics' metrics (analytics/metrics.py) on the real database, the service's own code fed the
feed messages ingest publishes, data time fast-forwarded: the detector time per step, the feed
lag, the open alarms by severity, the alarms opened, and the stage's heartbeat. The registry is
the process's: every figure is read as a difference, or against the database."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from analytics import metrics
from analytics.service import Analytics
from core.db import Conn
from core.settings import Settings
from tests.analytics.feed_helpers import Feed, clean, send, service, stream

T0 = float(math.floor(time.time()) - 86400)  # data time: yesterday


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def feed(db: Conn) -> Iterator[Feed]:
    clean(db)
    yield Feed(db)
    clean(db)


@pytest.fixture
def svc(settings: Settings) -> Iterator[Analytics]:
    s = service(settings)
    yield s
    s.conn.close()


@pytest.fixture
def newest(db: Conn, feed: Feed) -> Iterator[tuple[int, int]]:
    """A (device, metric) whose latest value the test may move: put back as it was afterwards."""
    device = feed.devices("fire_panel")[0]
    metric = feed.metric[("fire_panel", "active_fire")]
    before = db.execute(
        "SELECT ts, value FROM latest_readings WHERE device_id = %s AND metric_id = %s",
        (device, metric),
    ).fetchone()
    yield device, metric
    if before is None:
        db.execute(
            "DELETE FROM latest_readings WHERE device_id = %s AND metric_id = %s", (device, metric)
        )
    else:
        db.execute(
            "UPDATE latest_readings SET ts = %s, value = %s WHERE device_id = %s AND metric_id = %s",
            (*before, device, metric),
        )


def commit_latest(db: Conn, device: int, metric: int, t: float) -> None:
    """A reading at ``t`` committed, as ingest records the latest value."""
    db.execute(
        "INSERT INTO latest_readings (device_id, metric_id, ts, value) VALUES (%s, %s, %s, 0)"
        " ON CONFLICT (device_id, metric_id) DO UPDATE SET ts = excluded.ts",
        (device, metric, datetime.fromtimestamp(t, UTC)),
    )


def open_in_db(db: Conn) -> dict[str, int]:
    return {
        str(s): int(n)
        for s, n in db.execute(
            "SELECT severity, count(*) FROM alarms WHERE state <> 'cleared' GROUP BY severity"
        )
    }


def test_steps_are_timed_and_the_heartbeat_counts_what_was_processed(
    feed: Feed, svc: Analytics
) -> None:
    ticks = sample("shouwang_analytics_tick_seconds_count")
    progress = sample("shouwang_stage_progress_total", stage="analytics")
    done = svc.stats.samples + svc.stats.events
    beat = sample("shouwang_stage_heartbeat_timestamp_seconds", stage="analytics")
    started = time.time()

    stream(svc, feed, T0, T0 + 60, feed.devices())  # 6 feed messages, a step each

    assert sample("shouwang_analytics_tick_seconds_count") - ticks == 6
    assert sample("shouwang_analytics_tick_seconds_sum") > 0
    processed = svc.stats.samples + svc.stats.events - done
    assert processed == 6 * len(feed.devices())
    assert sample("shouwang_stage_progress_total", stage="analytics") - progress == processed
    assert sample("shouwang_stage_heartbeat_timestamp_seconds", stage="analytics") >= max(
        beat, started
    )
    svc.step()  # nothing in the feed: the loop turned, nothing timed, nothing done
    assert sample("shouwang_analytics_tick_seconds_count") - ticks == 6
    assert sample("shouwang_stage_progress_total", stage="analytics") - progress == processed


def test_the_feed_lag_is_the_newest_committed_reading_minus_the_newest_processed(
    db: Conn, feed: Feed, svc: Analytics, newest: tuple[int, int]
) -> None:
    t = stream(svc, feed, T0, T0 + 60, feed.devices())
    processed = t - 10  # the last message's readings
    assert svc.watermark == processed
    (committed,) = db.execute(
        "SELECT extract(epoch FROM max(ts)) FROM latest_readings"
    ).fetchone() or (None,)
    svc._figures_at = float("-inf")  # re-read at the next step (every 5 s otherwise)
    svc.step()
    expected = 0.0 if committed is None else max(0.0, float(committed) - processed)
    assert sample("shouwang_analytics_feed_lag_seconds") == pytest.approx(expected, abs=1e-3)

    # A reading committed 42 s after the newest of all that analytics has not seen yet.
    ahead = max(processed, float(committed or 0.0)) + 42.0
    commit_latest(db, *newest, ahead)
    svc._figures_at = float("-inf")
    svc.step()
    assert sample("shouwang_analytics_feed_lag_seconds") == pytest.approx(
        ahead - processed, abs=1e-3
    )
    assert ahead - processed >= 42.0

    # Analytics catches up (its feed carries that reading): no lag.
    send(svc, feed.readings(ahead, feed.devices()))
    svc._figures_at = float("-inf")
    svc.step()
    assert svc.watermark == ahead
    assert sample("shouwang_analytics_feed_lag_seconds") == 0.0


def test_open_alarms_by_severity_equal_the_database_after_a_fault(
    db: Conn, feed: Feed, svc: Analytics
) -> None:
    devs = feed.devices()
    fa, fb = feed.devices("fire_panel")[:2]
    t = stream(svc, feed, T0, T0 + 60, devs)
    opened = {
        s: sample("shouwang_analytics_alarms_opened_total", severity=s)
        for s in ["P0", "P1", "P2", "P3"]
    }
    assert open_in_db(db) == {}
    for s in ("P0", "P1", "P2", "P3"):
        assert sample("shouwang_analytics_open_alarms", severity=s) == 0

    send(svc, feed.readings(t, devs, {fa: {"active_fire": 1.0}, fb: {"active_fire": 1.0}}))

    in_db = open_in_db(db)
    assert sum(in_db.values()) == 2, in_db
    (severity,) = in_db
    for s in ("P0", "P1", "P2", "P3"):
        assert sample("shouwang_analytics_open_alarms", severity=s) == in_db.get(s, 0)
        rose = sample("shouwang_analytics_alarms_opened_total", severity=s) - opened[s]
        assert rose == in_db.get(s, 0)

    # Cleared by hand elsewhere (as the API does): the gauge follows the database within a
    # re-read, though no alarm changed in analytics.
    db.execute(
        "UPDATE alarms SET state = 'cleared', cleared_at = now() WHERE device_id = %s", (fa,)
    )
    svc._figures_at = float("-inf")
    svc.step()
    assert (
        sample("shouwang_analytics_open_alarms", severity=severity)
        == 1
        == sum(open_in_db(db).values())
    )


def test_the_feed_lag_is_pure() -> None:
    assert metrics.feed_lag(None, 100.0) == 0.0
    assert metrics.feed_lag(160.0, 100.0) == 60.0
    assert metrics.feed_lag(90.0, 100.0) == 0.0, "ahead of the database: no lag"
