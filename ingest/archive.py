"""Ingest: readings at rest (I/O only). Readings older than an age (``SHOUWANG_ARCHIVE_AFTER_DAYS``)
are kept compactly, and every query over a time range still finds them (``readings_between``).

Where TimescaleDB has native compression (its community edition: ``timescaledb.license`` is
``timescale``), :func:`configure` turns that on for ``readings`` with a policy at the age, and
the archive table stays empty. Its Apache edition has none: :func:`archive_pass` then rewrites each
``readings`` chunk past the age into ``readings_archive`` (core/migrations/0029_reading_archive.sql),
one row per device, metric and hour (or day, for a metric that reports less than every 15 s),
and drops the chunk, all in one transaction per chunk: a
reading is in one table or the other, never both and never neither. Readings that arrive late
for an archived hour land in ``readings`` again (:func:`ingest.store.write_batch` leaves out those
the archive holds already) and the next pass merges them into the day's rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

from core.db import Conn

log = logging.getLogger(__name__)

# Taken exclusively by a pass for each chunk it archives, shared by ingest's write of readings old
# enough to meet an archived day: the two never interleave.
ARCHIVE_LOCK = 0x53574152
# Ingest checks the archive for readings older than this at arrival; the archive age is at
# least a day, so a younger reading can never belong to an archived day.
GUARD = timedelta(hours=20)
# Devices archived per statement (one transaction for the whole chunk either way).
SLICE_DEVICES = 2000
MAX_SCALE = 6

# A value fits `s` decimal digits when scaling, rounding and scaling back gives it back bit for
# bit; the unpack function computes exactly that expression. The scaled integers stay below
# 2^52, so they and their corrections are exact in float8 as in bigint.
_FITS = (
    "(value = value AND abs(value) * 10::float8 ^ {s} < 4e15"
    " AND round(value * 10::float8 ^ {s}) / 10::float8 ^ {s} = value)"
)
_SCALE = "CASE {} ELSE NULL END".format(
    " ".join(f"WHEN bool_and({_FITS.format(s=s)}) THEN {s}" for s in range(MAX_SCALE + 1))
)

_SOURCE = (
    "CREATE TEMP TABLE archive_source ON COMMIT DROP AS"
    " SELECT DISTINCT ON (device_id, metric_id, ts) device_id, metric_id, ts, value FROM ("
    "  SELECT r.device_id, r.metric_id, r.ts, r.value FROM readings r"
    "  WHERE r.ts >= %(lo)s AND r.ts < %(hi)s AND r.device_id >= %(d0)s AND r.device_id < %(d1)s"
    "  UNION ALL"
    "  SELECT a.device_id, a.metric_id, u.ts, u.value FROM readings_archive a,"
    "   LATERAL readings_archive_unpack(a.first_ts, a.ts_slope, a.ts_off,"
    "    a.scale, a.v0, a.v_slope, a.v_off, a.raw) u"
    "  WHERE a.period >= %(lo)s AND a.period < %(hi)s"
    "   AND a.device_id >= %(d0)s AND a.device_id < %(d1)s"
    "   AND (a.device_id, a.metric_id) IN (SELECT DISTINCT device_id, metric_id"
    "    FROM readings WHERE ts >= %(lo)s AND ts < %(hi)s"
    "    AND device_id >= %(d0)s AND device_id < %(d1)s)"
    " ) x ORDER BY device_id, metric_id, ts"
)
_REPLACE = (
    "DELETE FROM readings_archive a USING (SELECT DISTINCT device_id, metric_id"
    " FROM archive_source) k"
    " WHERE a.device_id = k.device_id AND a.metric_id = k.metric_id"
    " AND a.period >= %(lo)s AND a.period < %(hi)s"
)
# Readings a day from which a metric's rows hold an hour each (every 15 s: the row then passes
# the size from which PostgreSQL compresses); fewer, and a row holds the whole day.
HOURLY_FROM = 5760

# Reading i of a row: a straight line from the first reading to the last, plus a correction
# (core/migrations/0029_reading_archive.sql); the same float8 expressions as the unpacking.
_ENCODE = sql.SQL(
    "INSERT INTO readings_archive (device_id, metric_id, period, first_ts, last_ts, n,"
    " ts_slope, ts_off, scale, v0, v_slope, v_off, raw)"
    " WITH periods AS ("
    "  SELECT s.device_id, s.metric_id, s.ts, s.value, CASE WHEN d.n >= {hourly}"
    "   THEN time_bucket('1 hour', s.ts) ELSE time_bucket('1 day', s.ts) END AS period"
    "  FROM archive_source s JOIN (SELECT device_id, metric_id, time_bucket('1 day', ts) AS day,"
    "   count(*) AS n FROM archive_source GROUP BY 1, 2, 3) d ON d.device_id = s.device_id"
    "   AND d.metric_id = s.metric_id AND d.day = time_bucket('1 day', s.ts)"
    " ), scaled AS ("
    "  SELECT device_id, metric_id, period, {scale} AS scale FROM periods GROUP BY 1, 2, 3"
    " ), ranked AS ("
    "  SELECT s.device_id, s.metric_id, g.period, g.scale, s.ts, s.value,"
    "   row_number() OVER w - 1 AS i, (extract(epoch FROM s.ts) * 1000000)::bigint AS tu,"
    "   round(s.value * 10::float8 ^ g.scale)::bigint AS iv"
    "  FROM periods s JOIN scaled g ON g.device_id = s.device_id"
    "   AND g.metric_id = s.metric_id AND g.period = s.period"
    "  WINDOW w AS (PARTITION BY s.device_id, s.metric_id, g.period ORDER BY s.ts)"
    " ), lines AS ("
    "  SELECT device_id, metric_id, period, count(*) AS n, min(ts) AS first_ts,"
    "   max(ts) AS last_ts, min(tu) AS tu0, min(iv) FILTER (WHERE i = 0) AS v0,"
    "   coalesce((max(tu) - min(tu))::float8 / nullif(count(*) - 1, 0), 0) AS ts_slope,"
    "   coalesce((min(iv) FILTER (WHERE i = count_i) - min(iv) FILTER (WHERE i = 0))::float8"
    "    / nullif(count(*) - 1, 0), 0) AS v_slope"
    "  FROM (SELECT *, count(*) OVER (PARTITION BY device_id, metric_id, period) - 1 AS count_i"
    "   FROM ranked) c GROUP BY 1, 2, 3"
    " )"
    " SELECT r.device_id, r.metric_id, r.period, l.first_ts, l.last_ts, l.n, l.ts_slope,"
    "  array_agg(r.tu - l.tu0 - round(r.i * l.ts_slope)::bigint ORDER BY r.ts), r.scale,"
    "  CASE WHEN r.scale IS NOT NULL THEN l.v0 END,"
    "  CASE WHEN r.scale IS NOT NULL THEN l.v_slope END,"
    "  CASE WHEN r.scale IS NOT NULL"
    "   THEN array_agg(r.iv - l.v0 - round(r.i * l.v_slope)::bigint ORDER BY r.ts) END,"
    "  CASE WHEN r.scale IS NULL THEN array_agg(r.value ORDER BY r.ts) END"
    " FROM ranked r JOIN lines l ON l.device_id = r.device_id AND l.metric_id = r.metric_id"
    "  AND l.period = r.period"
    " GROUP BY r.device_id, r.metric_id, r.period, r.scale, l.first_ts, l.last_ts, l.n,"
    "  l.ts_slope, l.v0, l.v_slope"
).format(scale=sql.SQL(_SCALE), hourly=sql.Literal(HOURLY_FROM))


@dataclass(frozen=True, slots=True)
class Pass:
    """What one archive pass did."""

    chunks: int = 0
    readings: int = 0  # readings moved out of `readings` (late ones merged included)
    native: bool = False  # TimescaleDB compresses natively: nothing to archive here


def native_compression(conn: Conn) -> bool:
    """Whether the installed TimescaleDB compresses natively (its community edition)."""
    row = conn.execute("SHOW timescaledb.license").fetchone()
    return row is not None and str(row[0]) == "timescale"


def configure(conn: Conn, *, after_days: float) -> bool:
    """With native compression: compress ``readings`` by device and metric, chunks older than
    ``after_days`` (replacing an earlier policy's age). Return whether it did."""
    if not native_compression(conn):
        return False
    conn.execute(
        "ALTER TABLE readings SET (timescaledb.compress,"
        " timescaledb.compress_segmentby = 'device_id, metric_id',"
        " timescaledb.compress_orderby = 'ts')"
    )
    conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
    conn.execute(
        "SELECT add_compression_policy('readings', make_interval(secs => %s))",
        (after_days * 86400,),
    )
    return True


def archivable_chunks(conn: Conn, before: datetime) -> list[tuple[datetime, datetime]]:
    """The ``readings`` chunks whose whole time range is before ``before``, oldest first."""
    rows = conn.execute(
        "SELECT range_start, range_end FROM timescaledb_information.chunks"
        " WHERE hypertable_schema = 'public' AND hypertable_name = 'readings'"
        " AND range_end <= %s ORDER BY range_start",
        (before,),
    ).fetchall()
    return [(lo, hi) for lo, hi in rows]


def archive_chunk(conn: Conn, lo: datetime, hi: datetime) -> int:
    """Move the readings from ``lo`` to ``hi`` (a whole chunk) into the archive, merging them
    with what it holds for the same hours, and drop the chunk: one transaction. Return how many
    readings left ``readings``."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ARCHIVE_LOCK,))
        # No reading may enter the chunk between the copy and the drop (a late one from a
        # gateway's backlog, written by a worker meanwhile): it would be dropped with the chunk
        # unread. A SHARE lock waits for writes under way and holds new ones until the commit.
        for schema, name in conn.execute(
            "SELECT chunk_schema, chunk_name FROM timescaledb_information.chunks"
            " WHERE hypertable_schema = 'public' AND hypertable_name = 'readings'"
            " AND range_start >= %s AND range_end <= %s",
            (lo, hi),
        ).fetchall():
            conn.execute(
                sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(schema, name))
            )
        row = conn.execute(
            "SELECT count(*), min(device_id), max(device_id) FROM readings"
            " WHERE ts >= %s AND ts < %s",
            (lo, hi),
        ).fetchone()
        moved, first, last = (0, None, None) if row is None else row
        if moved:
            # A misjudged nested loop over the encoder's steps costs minutes: hash joins only.
            conn.execute("SET LOCAL enable_nestloop = off")
            for d0 in range(int(first), int(last) + 1, SLICE_DEVICES):
                args = {"lo": lo, "hi": hi, "d0": d0, "d1": d0 + SLICE_DEVICES}
                conn.execute(_SOURCE, args)
                conn.execute("ANALYZE archive_source")  # the encoder's joins need its size
                conn.execute(_REPLACE, args)
                conn.execute(_ENCODE)
                conn.execute("DROP TABLE archive_source")
        conn.execute(
            "SELECT drop_chunks('readings', older_than => %s::timestamptz,"
            " newer_than => %s::timestamptz)",
            (hi, lo),
        )
        left = conn.execute(
            "SELECT count(*) FROM readings WHERE ts >= %s AND ts < %s", (lo, hi)
        ).fetchone()
        if left and left[0]:
            raise RuntimeError(f"readings from {lo} to {hi} still hold {left[0]} after archiving")
    return int(moved)


def archive_pass(
    conn: Conn, *, now: datetime, after_days: float, max_chunks: int | None = None
) -> Pass:
    """Archive the ``readings`` chunks older than ``after_days`` at ``now``, oldest first and at
    most ``max_chunks`` (one transaction each), or nothing where TimescaleDB compresses
    natively. ``conn`` must be in autocommit."""
    if native_compression(conn):
        return Pass(native=True)
    chunks = archivable_chunks(conn, now - timedelta(days=after_days))[:max_chunks]
    moved = 0
    for lo, hi in chunks:
        n = archive_chunk(conn, lo, hi)
        log.info("archived %d readings from %s to %s", n, lo, hi)
        moved += n
    return Pass(chunks=len(chunks), readings=moved)


def prune(conn: Conn, *, retention_days: float) -> int:
    """Delete archived rows past the readings' retention (rows of a whole day: a day late);
    return how many went."""
    cur = conn.execute(
        "DELETE FROM readings_archive WHERE period < now() - make_interval(secs => %s)"
        " - interval '1 day'",
        (retention_days * 86400,),
    )
    return cur.rowcount
