"""Ingest: writes a decoded batch to TimescaleDB in one transaction (I/O only).

Readings go in by binary COPY. A batch that holds a reading already stored (a redelivery after a
crash, or a duplicated message) makes that COPY fail on the identity index; the batch is then
written again through a staging table with ``ON CONFLICT DO NOTHING``, so each reading is stored
exactly once and the fast path costs nothing extra in the normal case.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import orjson
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from core.db import Conn
from ingest.archive import ARCHIVE_LOCK, GUARD
from ingest.copy_format import latest_per_key, readings_buffer
from ingest.gateway_alarms import Clear, judge
from ingest.rows import Batch
from lifecycle.platform import clear_alarm, raise_alarm


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def copy_readings(conn: Conn, buffer: bytes, table: str = "readings") -> None:
    with (
        conn.cursor() as cur,
        cur.copy(
            sql.SQL("COPY {} (ts, device_id, metric_id, value) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(table)
            )
        ) as cp,
    ):
        cp.write(buffer)


def write_batch(conn: Conn, batch: Batch) -> int:
    """Commit everything in ``batch``; return how many readings went through the slow path."""
    slow = 0
    with conn.transaction():
        if len(batch):
            buffer = readings_buffer(batch.ts_ms, batch.device, batch.metric, batch.value)
            if min(batch.ts_ms) < (time.time() - GUARD.total_seconds()) * 1000:
                # Old enough to meet an archived day (ingest/archive.py): not while a pass
                # archives, and not a reading the archive holds already.
                conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ARCHIVE_LOCK,))
                slow = len(batch)
                _insert_absorbing_duplicates(conn, buffer, archived=True)
            else:
                try:
                    with conn.transaction():
                        copy_readings(conn, buffer)
                except psycopg.errors.UniqueViolation:
                    slow = len(batch)
                    _insert_absorbing_duplicates(conn, buffer)
            _upsert_latest(conn, batch)
            _mark_late_minutes(conn, batch)
        if batch.events:
            _insert_events(conn, batch)
        if batch.statuses:
            _insert_statuses(conn, batch)
        if batch.gateway_states:
            _upsert_gateway_states(conn, batch)
        if batch.config_answers:
            _record_config_answers(conn, batch)
        if batch.rejects:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO rejects (received_at, topic, device_uid, reason, detail, payload, payload_size)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            _dt(r.received_ms),
                            r.topic,
                            r.device_uid,
                            r.reason,
                            r.detail,
                            r.payload,
                            r.payload_size,
                        )
                        for r in batch.rejects
                    ],
                )
        if batch.suppressed:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO rejects_counted (minute, who, reason, n) VALUES (%s, %s, %s, %s)"
                    " ON CONFLICT (minute, who, reason) DO UPDATE"
                    " SET n = rejects_counted.n + excluded.n",
                    [(_dt(m), who, reason, n) for (m, who, reason), n in batch.suppressed.items()],
                )
    return slow


# Readings older than this at arrival may belong to minutes the rollup has already passed.
LATE_MS = 120_000


def late_minutes(ts_ms: np.ndarray, now_ms: int) -> list[int]:
    """The minutes (epoch ms) of readings older than ``LATE_MS`` at ``now_ms`` (pure)."""
    late = ts_ms[ts_ms < now_ms - LATE_MS]
    if not len(late):
        return []
    return [int(m) for m in np.unique(late // 60_000 * 60_000)]


def _mark_late_minutes(conn: Conn, batch: Batch) -> None:
    """Tell the rollup which past minutes got readings now (analytics/rollup.py)."""
    minutes = late_minutes(np.frombuffer(batch.ts_ms, dtype=np.int64), int(time.time() * 1000))
    if minutes:
        conn.execute(
            "INSERT INTO rollup_dirty (bucket) SELECT to_timestamp(m / 1000.0)"
            " FROM unnest(%s::bigint[]) AS m ON CONFLICT DO NOTHING",
            (minutes,),
        )


# The staged readings that the archive holds already (their days' rows unpacked once each).
_NOT_ARCHIVED = (
    " WHERE NOT EXISTS (SELECT 1 FROM ("
    "  SELECT a.device_id, a.metric_id, u.ts FROM (SELECT DISTINCT device_id, metric_id,"
    "   time_bucket('1 day', ts) AS day FROM readings_stage) k"
    "  JOIN readings_archive a ON a.device_id = k.device_id AND a.metric_id = k.metric_id"
    "   AND a.period >= k.day AND a.period < k.day + interval '1 day',"
    "  LATERAL readings_archive_unpack(a.first_ts, a.ts_slope, a.ts_off,"
    "   a.scale, a.v0, a.v_slope, a.v_off, a.raw) u"
    " ) x WHERE x.device_id = s.device_id AND x.metric_id = s.metric_id AND x.ts = s.ts)"
)


def _insert_absorbing_duplicates(conn: Conn, buffer: bytes, *, archived: bool = False) -> None:
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS readings_stage"
        " (ts timestamptz, device_id int, metric_id smallint, value float8) ON COMMIT DELETE ROWS"
    )
    copy_readings(conn, buffer, "readings_stage")
    conn.execute(
        sql.SQL(
            "INSERT INTO readings (ts, device_id, metric_id, value)"
            " SELECT ts, device_id, metric_id, value FROM readings_stage s"
            "{} ON CONFLICT (device_id, metric_id, ts) DO NOTHING"
        ).format(sql.SQL(_NOT_ARCHIVED if archived else ""))
    )
    conn.execute("TRUNCATE readings_stage")


def _upsert_latest(conn: Conn, batch: Batch) -> None:
    dev, met, ts, val = latest_per_key(batch.ts_ms, batch.device, batch.metric, batch.value)
    conn.execute(
        "INSERT INTO latest_readings (device_id, metric_id, ts, value)"
        " SELECT d, m, to_timestamp(t), v"
        " FROM unnest(%s::int[], %s::smallint[], %s::float8[], %s::float8[]) AS u(d, m, t, v)"
        " ON CONFLICT (device_id, metric_id) DO UPDATE SET ts = excluded.ts, value = excluded.value"
        " WHERE latest_readings.ts < excluded.ts",
        (dev, met, ts, val),
    )
    seen: dict[int, float] = {}
    for d, t in zip(dev, ts, strict=True):
        if t > seen.get(d, 0.0):
            seen[d] = t
    conn.execute(
        "INSERT INTO device_presence (device_id, last_seen)"
        " SELECT d, to_timestamp(t) FROM unnest(%s::int[], %s::float8[]) AS u(d, t)"
        " ON CONFLICT (device_id) DO UPDATE SET last_seen = excluded.last_seen"
        " WHERE device_presence.last_seen < excluded.last_seen",
        (list(seen), list(seen.values())),
    )


def _insert_events(conn: Conn, batch: Batch) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO events (ts, device_id, code, active, detail) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (device_id, code, ts) DO NOTHING",
            [(_dt(ts), d, c, a, orjson.dumps(det).decode()) for ts, d, c, a, det in batch.events],
        )


def _insert_statuses(conn: Conn, batch: Batch) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_status (ts, device_id, online, reason) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            [(_dt(ts), d, on, r) for ts, d, on, r in batch.statuses],
        )
        cur.executemany(
            "INSERT INTO device_presence (device_id, last_seen, online, status_ts)"
            " VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_id) DO UPDATE SET online = excluded.online,"
            " status_ts = excluded.status_ts"
            " WHERE device_presence.status_ts IS NULL OR device_presence.status_ts <= excluded.status_ts",
            [(d, _dt(ts), on, _dt(ts)) for ts, d, on, _ in batch.statuses],
        )


def _upsert_gateway_states(conn: Conn, batch: Batch) -> None:
    """Each gateway's latest report about itself; a report without a state (its last will, or a
    gateway before revision 4) keeps the numbers last reported. Then the platform alarms the
    reports call for (``ingest/gateway_alarms.py``)."""
    reports = sorted(batch.gateway_states, key=lambda r: (r[0], r[1], r[5]))
    ids = sorted({r[1] for r in reports})
    dropped: dict[int, int | None] = {}
    uids: dict[int, str] = {}
    for gw, uid, before in conn.execute(
        "SELECT g.id, g.uid, s.dropped FROM gateways g"
        " LEFT JOIN gateway_state s ON s.gateway_id = g.id WHERE g.id = ANY(%s)"
        " ORDER BY g.id",
        (ids,),
    ):
        uids[gw], dropped[gw] = uid, before
    rows = []
    for ts, gw, online, reason, state, received, clock in reports:
        numbers = state if state is not None else (None,) * 8
        rows.append((gw, _dt(ts), _dt(received), online, reason, *numbers))
        for action in judge(dropped.get(gw), state, clock):
            if isinstance(action, Clear):
                clear_alarm(conn, action.kind, uids[gw], reason=action.reason, at=_dt(received))
            else:
                raise_alarm(
                    conn,
                    action.kind,
                    uids[gw],
                    severity=action.severity,
                    at=_dt(received),
                    detail=action.detail,
                )
        if state is not None:
            dropped[gw] = state[3]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gateway_state (gateway_id, ts, received_at, online, reason,"
            " buffer_entries, buffer_bytes, buffer_max_bytes, dropped, clock_offset_ms, devices,"
            " devices_online, config_version)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (gateway_id) DO UPDATE SET ts = excluded.ts,"
            " received_at = excluded.received_at, online = excluded.online,"
            " reason = excluded.reason,"
            " buffer_entries = coalesce(excluded.buffer_entries, gateway_state.buffer_entries),"
            " buffer_bytes = coalesce(excluded.buffer_bytes, gateway_state.buffer_bytes),"
            " buffer_max_bytes = coalesce(excluded.buffer_max_bytes, gateway_state.buffer_max_bytes),"
            " dropped = coalesce(excluded.dropped, gateway_state.dropped),"
            " clock_offset_ms = CASE WHEN excluded.devices IS NULL"
            "  THEN gateway_state.clock_offset_ms ELSE excluded.clock_offset_ms END,"
            " devices = coalesce(excluded.devices, gateway_state.devices),"
            " devices_online = coalesce(excluded.devices_online, gateway_state.devices_online),"
            " config_version = coalesce(excluded.config_version, gateway_state.config_version)"
            " WHERE gateway_state.ts <= excluded.ts",
            rows,
        )


def _record_config_answers(conn: Conn, batch: Batch) -> None:
    """Each gateway's answer to a pushed config, against the version it answers (an answer to
    a version the platform never recorded, such as 0 for a push it could not read, changes
    nothing: the gateway's log and its reported ``config_version`` tell the rest)."""
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE gateway_configs SET state = %s, errors = %s, answered_at = %s"
            " WHERE gateway_id = %s AND version = %s",
            [
                ("applied" if ok else "refused", Jsonb(errors), _dt(received), gw, version)
                for gw, version, ok, errors, received in batch.config_answers
            ],
        )


def drop_old_chunks(
    conn: Conn,
    *,
    retention_days: float,
    rejects_retention_days: float,
    rollup_retention_days: float | None = None,
    events_retention_days: float | None = None,
) -> int:
    """Drop whole chunks past retention (works on TimescaleDB's Apache edition); return count.
    The rollup and events (with device statuses) keep ``retention_days`` unless given their own.
    Archived readings go by :func:`ingest.archive.prune`."""
    dropped = 0
    for table, days in (
        ("readings", retention_days),
        ("readings_1m", rollup_retention_days or retention_days),
        ("events", events_retention_days or retention_days),
        ("device_status", events_retention_days or retention_days),
        ("rejects", rejects_retention_days),
    ):
        rows = conn.execute(
            "SELECT drop_chunks(%s::regclass, older_than => now() - make_interval(secs => %s))",
            (table, days * 86400),
        ).fetchall()
        dropped += len(rows)
    return dropped
