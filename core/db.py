"""Shared: database connections and versioned schema migrations.

Migrations are the numbered ``core/migrations/NNNN_name.sql`` files, applied in order, each in
its own transaction, under an advisory lock so concurrent ``migrate`` runs are safe. Each is
recorded with its file's checksum; an applied migration whose file changed stops ``migrate``
before anything is applied (``core.migration_history``). After them the metric and event
catalogue (``core.catalogue``) is synced into its tables.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg.rows import TupleRow

from core.audit import Actor, act_as
from core.catalogue import EVENT_CODES, METRICS, DeviceClass
from core.errors import ConfigError, ServiceUnavailable
from core.migration_history import Applied, MigrationChanged, checksum, mismatches, unrecorded

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
Conn = psycopg.Connection[TupleRow]
_LOCK_KEY = 0x5357_4D49  # "SWMI"
log = logging.getLogger("shouwang.migrate")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    path: Path

    @property
    def checksum(self) -> str:
        return checksum(self.sql)


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for path in sorted(directory.glob("*.sql")):
        m = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", path.name)
        if m is None:
            raise ValueError(f"{path}: migration files are named NNNN_name.sql")
        out.append(Migration(int(m.group(1)), m.group(2), path.read_text(), path))
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise ValueError(f"{directory}: migration versions must run 1..n without gaps: {versions}")
    return out


def connect(
    url: str,
    *,
    autocommit: bool = False,
    application_name: str = "shouwang",
    actor: Actor | None = None,
) -> Conn:
    """A connection; ``actor``: who its changes are by, in the audit log (``core.audit``)."""
    try:
        conn = psycopg.connect(url, autocommit=autocommit, application_name=application_name)
    except psycopg.OperationalError as e:
        raise ServiceUnavailable(
            f"cannot reach the database ({e}). Start the local stack with 'scripts/stack.sh up' "
            "or set SHOUWANG_DATABASE_URL."
        ) from e
    if actor is not None:
        try:
            act_as(conn, actor)
        except BaseException:
            conn.close()
            raise
    return conn


def migrate(
    conn: Conn, *, directory: Path = MIGRATIONS_DIR, accept: Collection[int] = ()
) -> list[Migration]:
    """Apply pending migrations and sync the catalogue; return what was applied. Refuses
    (:class:`MigrationChanged`, nothing done) when an applied migration's file changed, unless
    its version is in ``accept``: its file as it is now is then recorded as applied."""
    applied: list[Migration] = []
    files = load_migrations(directory)
    unknown = sorted(set(accept) - {m.version for m in files})
    if unknown:
        raise ConfigError(
            f"accept {', '.join(map(str, unknown))}",
            f"no migration file with that number in {directory}; give an applied one's number",
        )
    conn.autocommit = True
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        with conn.transaction():
            history = _history(conn)
            wrong = mismatches(history, files, accept)
            if wrong:
                raise MigrationChanged(wrong)
            _record(conn, [m for m in files if m.version in accept])
            legacy = unrecorded(history, files)
            if legacy:  # the one-time rule (core.migration_history)
                _record(conn, legacy)
                log.warning(
                    "recorded the checksums of %d migrations applied before checksums were "
                    "kept; from now on a change to an applied migration's file stops migrate",
                    len(legacy),
                )
        done = {row.version for row in history}
        for mig in files:
            if mig.version in done:
                continue
            with conn.transaction():
                conn.execute(mig.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (mig.version, mig.name, mig.checksum),
                )
            applied.append(mig)
        with conn.transaction():
            sync_catalogue(conn)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def _history(conn: Conn) -> list[Applied]:
    """The bookkeeping table (made, or given its checksum column, on first use) and its rows."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now(), checksum text)"
    )
    has_checksum = conn.execute(
        "SELECT EXISTS (SELECT FROM information_schema.columns WHERE table_schema ="
        " current_schema() AND table_name = 'schema_migrations' AND column_name = 'checksum')"
    ).fetchone()
    if has_checksum == (False,):  # migrated before checksums were kept
        conn.execute("ALTER TABLE schema_migrations ADD COLUMN checksum text")
    rows = conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations")
    return [Applied(*row) for row in rows]


def _record(conn: Conn, migrations: list[Migration]) -> None:
    if not migrations:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE schema_migrations SET name = %s, checksum = %s WHERE version = %s",
            [(m.name, m.checksum, m.version) for m in migrations],
        )


def sync_catalogue(conn: Conn) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO device_classes (name) VALUES (%s) ON CONFLICT DO NOTHING",
            [(c.value,) for c in DeviceClass],
        )
        cur.executemany(
            "INSERT INTO metrics (id, device_class, name, unit, lo, hi, kind, name_zh, name_en)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO UPDATE SET unit = excluded.unit, lo = excluded.lo,"
            " hi = excluded.hi, kind = excluded.kind, name_zh = excluded.name_zh,"
            " name_en = excluded.name_en",
            [
                (
                    m.id,
                    m.device_class.value,
                    m.name,
                    m.unit,
                    m.lo,
                    m.hi,
                    m.kind,
                    m.name_zh,
                    m.name_en,
                )
                for m in METRICS
            ],
        )
        cur.executemany(
            "INSERT INTO event_codes (device_class, code, name_zh, name_en) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (device_class, code) DO UPDATE SET name_zh = excluded.name_zh,"
            " name_en = excluded.name_en",
            [(e.device_class.value, e.code, e.name_zh, e.name_en) for e in EVENT_CODES],
        )
