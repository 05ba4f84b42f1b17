"""Readings at rest (ingest/archive.py) on TimescaleDB's Apache edition: archived days come back
equal through ``readings_between``, each reading exactly once, late readings included."""

from __future__ import annotations

import threading
import time
from array import array
from datetime import UTC, datetime, timedelta

import pytest

from core.db import Conn, connect
from ingest.archive import archivable_chunks, archive_chunk, archive_pass, prune
from ingest.rows import Batch
from ingest.store import drop_old_chunks, write_batch

NOW = datetime.now(UTC)
DAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=5)
# Values of every kind the archive meets: devices' decimals, full doubles, odd ones.
ODD = [float("nan"), float("inf"), float("-inf"), 1e300, -2.5e-300, 123456789.123]


def _fill(db: Conn) -> None:
    db.execute("TRUNCATE readings, readings_archive")
    # Three days up to now: device 1 metric 301 two decimals every 10 s; device 1 metric 302
    # full doubles at irregular microsecond times; device 2 metric 301 a few odd values a day
    # with long gaps; all at the day before yesterday and older than that, and today.
    db.execute(
        "INSERT INTO readings (ts, device_id, metric_id, value)"
        " SELECT %(day)s + make_interval(secs => s * 10), 1, 301,"
        "  round((20 + 5 * sin(s / 300.0) + random())::numeric, 2)::float8"
        " FROM generate_series(0, 6 * 8640 - 1) s"
        " UNION ALL SELECT %(day)s + make_interval(secs => s * 37 + random()), 1, 302,"
        "  random() * 1e6 - 5e5 FROM generate_series(0, 6 * 2335 - 1) s"
        " UNION ALL SELECT %(day)s + make_interval(days => d, hours => (3 * i)::int), 2, 301, v"
        " FROM generate_series(0, 5) d, unnest(%(odd)s::float8[]) WITH ORDINALITY AS o (v, i)",
        {"day": DAY, "odd": ODD},
    )
    db.execute("CREATE TEMP TABLE IF NOT EXISTS expected AS SELECT * FROM readings WITH NO DATA")
    db.execute("TRUNCATE expected")
    db.execute("INSERT INTO expected SELECT * FROM readings")


def _differences(db: Conn) -> tuple[int, int]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM (SELECT ts, device_id, metric_id, value FROM expected"
        "  EXCEPT ALL SELECT ts, device_id, metric_id, value FROM readings_all) x),"
        " (SELECT count(*) FROM (SELECT ts, device_id, metric_id, value FROM readings_all"
        "  EXCEPT ALL SELECT ts, device_id, metric_id, value FROM expected) y)"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_archived_days_come_back_equal_and_only_once(db: Conn) -> None:
    _fill(db)
    total = db.execute("SELECT count(*) FROM readings").fetchone()
    done = archive_pass(db, now=NOW, after_days=2)
    assert done.chunks >= 3 and not done.native
    raw = db.execute("SELECT count(*), min(ts) FROM readings").fetchone()
    archived = db.execute("SELECT sum(n) FROM readings_archive").fetchone()
    assert raw is not None and archived is not None and total is not None
    assert raw[0] + archived[0] == total[0], "each reading in one table or the other"
    assert raw[1] >= NOW - timedelta(days=3), "nothing younger than the age is archived"
    assert _differences(db) == (0, 0), "every reading back, equal, once"
    # Decimals went to scaled steps, full doubles and odd values stayed as they are.
    kinds = dict(
        db.execute(
            "SELECT device_id * 1000 + metric_id, bool_or(scale IS NULL) FROM readings_archive"
            " GROUP BY 1"
        ).fetchall()
    )
    assert kinds == {1301: False, 1302: True, 2301: True}
    # A second pass has nothing left to do.
    assert archive_pass(db, now=NOW, after_days=2).readings == 0


def test_a_range_reads_recent_and_archived_readings_alike(db: Conn) -> None:
    _fill(db)
    lo, hi = DAY + timedelta(days=2, hours=20), DAY + timedelta(days=5, hours=4)
    query = (
        "SELECT count(*), sum(value::numeric), min(ts), max(ts) FROM readings_between(%s, %s)"
        " WHERE device_id = 1 AND metric_id = 301"
    )
    before = db.execute(query, (lo, hi)).fetchone()
    archive_pass(db, now=NOW, after_days=2)
    assert db.execute("SELECT count(*) FROM readings_archive").fetchone() != (0,)
    assert db.execute(query, (lo, hi)).fetchone() == before
    plan = "\n".join(
        str(r[0]) for r in db.execute("EXPLAIN " + query.replace("%s", "now()"), ()).fetchall()
    )
    assert "readings_archive_pkey" in plan, plan


def test_late_readings_for_an_archived_day_land_once_and_merge(db: Conn) -> None:
    _fill(db)
    archive_pass(db, now=NOW, after_days=2)
    day = DAY + timedelta(days=1)
    old = db.execute(
        "SELECT ts, value FROM readings_all WHERE device_id = 1 AND metric_id = 301"
        " AND ts >= %s ORDER BY ts LIMIT 1",
        (day,),
    ).fetchone()
    assert old is not None
    late = day + timedelta(hours=5, milliseconds=3)  # between two archived readings
    batch = Batch(
        ts_ms=array("q", [int(old[0].timestamp() * 1000), int(late.timestamp() * 1000)]),
        device=array("i", [1, 1]),
        metric=array("h", [301, 301]),
        value=array("d", [old[1], 42.5]),
    )
    assert write_batch(db, batch) == 2, "old readings take the path that checks the archive"
    raw = db.execute("SELECT ts, value FROM readings WHERE ts < %s", (day + timedelta(days=1),))
    assert raw.fetchall() == [(late, 42.5)], "the redelivered reading stays only in the archive"
    db.execute("INSERT INTO expected VALUES (%s, 1, 301, 42.5)", (late,))
    assert _differences(db) == (0, 0), "the late reading is visible at once"
    write_batch(db, batch)  # delivered again: absorbed
    assert _differences(db) == (0, 0)
    assert [c for c in archivable_chunks(db, NOW - timedelta(days=2)) if c[0] <= late]
    done = archive_pass(db, now=NOW, after_days=2)
    assert done.chunks == 1 and done.readings == 1
    assert _differences(db) == (0, 0), "merged into the day's row"
    assert db.execute(
        "SELECT count(*) FROM readings_archive WHERE device_id = 1 AND metric_id = 301"
        " AND period = time_bucket('1 hour', %s::timestamptz)",
        (late,),
    ).fetchone() == (1,)


def test_a_reading_written_while_its_chunk_is_archived_is_not_lost(
    db: Conn, database_url: str
) -> None:
    """A worker's batch holds a late reading for the day being archived, not committed yet, as
    the archive pass (on ingest's upkeep thread, or another worker's) starts on that day: the
    pass waits for it and archives it with the rest; none is dropped with the chunk unread."""
    _fill(db)
    (lo, hi), *_ = archivable_chunks(db, NOW - timedelta(days=2))
    late = lo + timedelta(hours=7, milliseconds=11)
    moved: list[int] = []
    with connect(database_url) as writer, connect(database_url, autocommit=True) as archiver:
        writer.execute(
            "INSERT INTO readings (ts, device_id, metric_id, value) VALUES (%s, 2, 302, 7.25)",
            (late,),
        )
        pass_ = threading.Thread(target=lambda: moved.append(archive_chunk(archiver, lo, hi)))
        pass_.start()
        time.sleep(1.0)  # the pass is under way, waiting or not
        writer.commit()
        pass_.join(60)
    assert moved, "the pass completed"
    db.execute("INSERT INTO expected VALUES (%s, 2, 302, 7.25)", (late,))
    assert _differences(db) == (0, 0), "the late reading is archived with its day, once"


def test_archiving_a_chunk_is_one_transaction(db: Conn) -> None:
    _fill(db)
    (lo, hi), *_ = archivable_chunks(db, NOW - timedelta(days=2))
    # The archive refuses the chunk's rows halfway (a constraint no row meets): nothing moves.
    db.execute("ALTER TABLE readings_archive ADD CONSTRAINT test_refuse CHECK (n < 0)")
    try:
        with pytest.raises(Exception, match="test_refuse"):
            archive_chunk(db, lo, hi)
    finally:
        db.execute("ALTER TABLE readings_archive DROP CONSTRAINT test_refuse")
    assert db.execute("SELECT count(*) FROM readings_archive").fetchone() == (0,)
    assert _differences(db) == (0, 0), "nothing moved, nothing lost"


def test_archived_days_past_retention_are_deleted(db: Conn) -> None:
    _fill(db)
    archive_pass(db, now=NOW, after_days=2)
    days = db.execute(
        "SELECT count(DISTINCT time_bucket('1 day', period)) FROM readings_archive"
    ).fetchone()
    assert prune(db, retention_days=2.5) > 0
    left = db.execute(
        "SELECT count(DISTINCT time_bucket('1 day', period)), min(period) FROM readings_archive"
    ).fetchone()
    assert days is not None and left is not None
    assert 0 < left[0] < days[0]
    assert left[1] >= NOW - timedelta(days=3.5), "rows a day past retention"


def test_each_kind_of_record_has_its_own_retention(
    db: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import Settings
    from ingest.__main__ import config_from

    monkeypatch.setenv("SHOUWANG_ROLLUP_RETENTION_DAYS", "90")
    monkeypatch.setenv("SHOUWANG_EVENTS_RETENTION_DAYS", "200")
    monkeypatch.setenv("SHOUWANG_ARCHIVE_AFTER_DAYS", "3")
    cfg = config_from(Settings(), "test")
    assert (cfg.retention_days, cfg.rollup_retention_days, cfg.events_retention_days) == (
        400.0,
        90.0,
        200.0,
    )
    assert cfg.archive_after_days == 3.0
    monkeypatch.setenv("SHOUWANG_ARCHIVE_AFTER_DAYS", "0.5")
    with pytest.raises(ValueError, match="archive_after_days"):
        Settings()
    db.execute("TRUNCATE readings, readings_1m, events")
    db.execute(
        "INSERT INTO readings_1m (bucket, device_id, metric_id, n, sum, min, max, first, last)"
        " SELECT now() - make_interval(days => d), 1, 301, 1, 0, 0, 0, 0, 0"
        " FROM generate_series(0, 60, 10) d"
    )
    db.execute(
        "INSERT INTO events (ts, device_id, code, active)"
        " SELECT now() - make_interval(days => d), 1, 'door_open', true"
        " FROM generate_series(0, 60, 10) d"
    )
    drop_old_chunks(
        db,
        retention_days=400,
        rejects_retention_days=30,
        rollup_retention_days=21,
        events_retention_days=45,
    )
    (rollup,) = db.execute("SELECT max(now() - bucket) FROM readings_1m").fetchone() or (None,)
    (events,) = db.execute("SELECT max(now() - ts) FROM events").fetchone() or (None,)
    assert rollup is not None and timedelta(days=20) <= rollup < timedelta(days=31)
    assert events is not None and timedelta(days=40) <= events < timedelta(days=55)
