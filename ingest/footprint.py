"""Ingest: what readings take on disk, by table and day (``shouwang storage``).

Bytes count table, TOAST and indexes. ``readings`` and the per-minute rollup are measured chunk
by chunk (a compressed chunk by its compressed size, where TimescaleDB compresses natively);
the archive is one table, so each day gets the share of its size that its rows' stored size
makes up. The rollup's "readings" are those its minutes summarise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.db import Conn


@dataclass(frozen=True, slots=True)
class Day:
    table: str
    day: datetime  # the start of the chunk, or of the archived UTC day
    rows: int
    readings: int
    bytes: int

    @property
    def per_reading(self) -> float | None:
        return self.bytes / self.readings if self.readings else None


def total(days: list[Day], table: str, *, before: datetime | None = None) -> Day | None:
    """One table's days (only those starting before ``before``, if given) summed (pure)."""
    chosen = [d for d in days if d.table == table and (before is None or d.day < before)]
    if not chosen:
        return None
    return Day(
        table,
        min(d.day for d in chosen),
        sum(d.rows for d in chosen),
        sum(d.readings for d in chosen),
        sum(d.bytes for d in chosen),
    )


def _chunks(conn: Conn, table: str) -> list[tuple[datetime, datetime, str, int]]:
    """(start, end, chunk, bytes) of each chunk of ``table``."""
    native = conn.execute("SHOW timescaledb.license").fetchone()
    compressed: dict[str, int] = {}
    if native is not None and str(native[0]) == "timescale":
        for name, size in conn.execute(
            "SELECT chunk_schema || '.' || chunk_name, after_compression_total_bytes"
            " FROM chunk_compression_stats(%s::regclass) WHERE compression_status = 'Compressed'",
            (table,),
        ).fetchall():
            compressed[str(name)] = int(size)
    rows = conn.execute(
        "SELECT range_start, range_end, chunk_schema || '.' || chunk_name,"
        " pg_total_relation_size(format('%%I.%%I', chunk_schema, chunk_name)::regclass)"
        " FROM timescaledb_information.chunks"
        " WHERE hypertable_schema = 'public' AND hypertable_name = %s ORDER BY range_start",
        (table,),
    ).fetchall()
    return [
        (lo, hi, str(name), compressed.get(str(name), int(size))) for lo, hi, name, size in rows
    ]


def measure(conn: Conn) -> list[Day]:
    """Every day of ``readings``, ``readings_archive`` and ``readings_1m``, oldest first."""
    out: list[Day] = []
    for lo, hi, _name, size in _chunks(conn, "readings"):
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE ts >= %s AND ts < %s", (lo, hi)
        ).fetchone()
        n = int(row[0]) if row else 0
        out.append(Day("readings", lo, n, n, size))
    archive = conn.execute(
        "SELECT pg_total_relation_size('readings_archive'),"
        " (SELECT sum(pg_column_size(a.*)) FROM readings_archive a)"
    ).fetchone()
    whole, stored = (int(archive[0]), float(archive[1] or 0)) if archive else (0, 0.0)
    for day, rows, n, size in conn.execute(
        "SELECT time_bucket('1 day', period) AS day, count(*), sum(n), sum(pg_column_size(a.*))"
        " FROM readings_archive a GROUP BY 1 ORDER BY 1"
    ).fetchall():
        share = round(whole * float(size) / stored) if stored else 0
        out.append(Day("readings_archive", day, int(rows), int(n), share))
    for lo, hi, _name, size in _chunks(conn, "readings_1m"):
        row = conn.execute(
            "SELECT count(*), coalesce(sum(n), 0) FROM readings_1m WHERE bucket >= %s AND bucket < %s",
            (lo, hi),
        ).fetchone()
        rows_, n = (int(row[0]), int(row[1])) if row else (0, 0)
        out.append(Day("readings_1m", lo, rows_, n, size))
    return out
