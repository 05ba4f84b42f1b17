"""Ingest: the hourly upkeep of what is stored — retention (old chunks, archived days, the audit
log) and the archive pass (readings at rest, ``ingest.archive``).

It runs on a thread and a database connection of its own, so that a long pass (archiving a day
of a county's readings takes minutes) never keeps the writer from the broker or from its
heartbeat. Several workers may run it: retention takes an advisory lock and only one worker's pass
does the work; archiving takes each chunk in its own transaction. A failure is logged and the
next pass tries again; nothing here stops ingest.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import psycopg

from core import audit
from core.db import Conn, connect
from core.errors import ServiceUnavailable
from ingest import archive
from ingest.store import drop_old_chunks

if TYPE_CHECKING:
    from ingest.consumer import IngestConfig

log = logging.getLogger("shouwang.ingest")

RETENTION_LOCK = 0x53575245  # pg advisory lock: one worker's retention pass at a time
# Chunks (days) archived per pass: one a day comes due; a backlog (an upgraded database) goes a
# few a pass, so that one pass does not hold the database's I/O for long at once.
ARCHIVE_CHUNKS_PER_PASS = 2
SLOW_PASS_S = 10.0  # a pass longer than this is logged with its time


class Upkeep:
    def __init__(self, cfg: IngestConfig, database_url: str) -> None:
        self.cfg = cfg
        self.database_url = database_url
        self.conn: Conn | None = None
        self.passes = 0
        self._archive_configured = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the thread ----------------------------------------------------------------------

    def start(self) -> None:
        """Passes on a thread of their own: the first at once, then every
        ``cfg.retention_every_s``."""
        self._thread = threading.Thread(target=self._loop, name="ingest-upkeep", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """No further pass; waits up to ``timeout_s`` for one under way, then cancels its
        statement (its transaction rolls back: nothing is half done)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            conn = self.conn
            if self._thread.is_alive() and conn is not None:
                # A long statement (a day's archive): cancelled, its transaction rolled back;
                # the next start's pass does it again.
                log.warning("the upkeep pass under way is cancelled: ingest stops")
                conn.cancel_safe()
                self._thread.join(5.0)
        self.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self.cfg.retention_every_s)

    # --- one pass ------------------------------------------------------------------------

    def run_once(self) -> None:
        """One pass: retention, then the archive pass; ``passes`` counts those that ran whole
        (a failure inside is logged; a stop cuts the pass short)."""
        conn = self._connection()
        if conn is None:
            return
        started = time.monotonic()
        self._retention(conn)
        if self._stop.is_set():  # stopping: the archive waits for the next start
            return
        self._archive(conn)
        if self._stop.is_set():
            return
        self.passes += 1
        took = time.monotonic() - started
        if took > SLOW_PASS_S:
            log.info("upkeep pass took %.0f s", took)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def _connection(self) -> Conn | None:
        if self.conn is not None and not self.conn.closed and not self.conn.broken:
            return self.conn
        self.close()
        try:
            self.conn = connect(
                self.database_url,
                autocommit=True,
                application_name=f"{self.cfg.client_id}-upkeep"[:63],
            )
        except ServiceUnavailable as e:
            log.error("upkeep: database unavailable (%s); the next pass tries again", e)
            return None
        return self.conn

    def _retention(self, conn: Conn) -> None:
        try:
            with conn.transaction():
                got = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (RETENTION_LOCK,)
                ).fetchone()
                if got and got[0]:
                    n = drop_old_chunks(
                        conn,
                        retention_days=self.cfg.retention_days,
                        rejects_retention_days=self.cfg.rejects_retention_days,
                        rollup_retention_days=self.cfg.rollup_retention_days,
                        events_retention_days=self.cfg.events_retention_days,
                    )
                    n += archive.prune(conn, retention_days=self.cfg.retention_days)
                    if n:
                        log.info("retention dropped %d chunks and archived days", n)
                    self._prune_audit_log(conn)
        except psycopg.Error as e:
            log.error("retention failed: %s", e)

    def _archive(self, conn: Conn) -> None:
        """Readings at rest: each chunk past the age archived in its own transaction (or native
        compression configured, once)."""
        try:
            if not self._archive_configured:
                archive.configure(conn, after_days=self.cfg.archive_after_days)
                self._archive_configured = True
            done = archive.archive_pass(
                conn,
                now=datetime.now(UTC),
                after_days=self.cfg.archive_after_days,
                max_chunks=ARCHIVE_CHUNKS_PER_PASS,
            )
            if done.readings:
                log.info("archived %d readings from %d chunks", done.readings, done.chunks)
        except (psycopg.Error, RuntimeError) as e:
            log.error("archiving failed: %s", e)

    def _prune_audit_log(self, conn: Conn) -> None:
        """The audit log's retention, in a savepoint: its failure leaves the chunks dropped."""
        try:
            with conn.transaction():
                n = audit.prune(conn, keep_days=self.cfg.audit_retention_days)
            if n:
                log.info("retention deleted %d audit log entries", n)
        except psycopg.Error as e:
            log.error("audit log retention failed: %s", e)
