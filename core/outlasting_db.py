"""Shared: a stage's database connection that outlasts the database going away (I/O); analytics
and notify use it.

Every statement such a stage runs goes through ``Database.read`` or ``Database.write``. When the
database cannot be reached they wait for it where they are: they reconnect with backoff (1 s
doubling to 15 s) and log each attempt as an error (``DATABASE UNAVAILABLE …``, with what the
stage holds meanwhile), then do what they were asked. The caller's state in memory is not touched
by the wait, so nothing it holds is lost, and it acknowledges nothing before its commit returns.
A stage that starts while the database is down waits for it the same way.

``write`` runs its function in one transaction, exactly once. When the connection is lost while
the transaction commits, nobody can tell from the client whether it did; once the database
answers again, the server process of the lost connection is ended (so its transaction is over
and its locks are gone) and the database is asked by the transaction's id, taken just before
the commit (``pg_current_xact_id_if_assigned``, ``pg_xact_status``; a transaction that wrote
nothing has none and needs none): committed, it is not run again and its result stands;
otherwise it is run again. A function that failed before the commit was sent is simply run
again. Errors that are not the database away or refusing for now (see ``FOR_NOW``) are the
statement's own and are raised as they are.

A stop asked for while waiting ends the wait with ``Stopping``; what waited was not done.

"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg

from core.db import Conn

T = TypeVar("T")

# A connection gone, or the database refusing for now: waited out. Only these SQLSTATE classes
# are "for now" (a connection exception, out of resources, shutting down or a statement
# cancelled, an I/O error, a deadlock or serialization failure); any other error on a working
# connection (a value over a limit, say) is the statement's own and is raised to the caller.
CONNECTION_LOST = (psycopg.OperationalError, psycopg.InterfaceError)
FOR_NOW = ("08", "53", "57", "58", "40", "55P03")
FIRST_WAIT_S = 1.0
MAX_WAIT_S = 15.0
CONNECT_TIMEOUT_S = 10
# A dead peer is noticed within about half a minute (the kernel's default is two hours).
TCP = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


class Stopping(BaseException):
    """A stop was asked for while waiting for the database; what waited was not done. Not an
    ``Exception``: no handler of one device's or one delivery's failures may take it."""


def backoff(attempt: int, *, first: float = FIRST_WAIT_S, cap: float = MAX_WAIT_S) -> float:
    """The wait after the ``attempt``-th failure in a row: ``first`` doubling up to ``cap``."""
    return float(min(cap, first * 2 ** max(0, attempt - 1)))


def _text(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())[:300]


def _for_now(conn: Conn, e: BaseException) -> bool:
    """Whether ``e``, raised on ``conn``, is the database away or refusing for now."""
    if conn.closed or conn.broken:
        return True
    state = getattr(e, "sqlstate", None) or ""
    return bool(state) and state.startswith(FOR_NOW)


def _scalar(conn: Conn, query: str, *params: object) -> Any:
    row = conn.execute(query, params).fetchone()
    return None if row is None else row[0]


class Database:
    """One connection (autocommit) for one thread, reconnected whenever it is lost."""

    def __init__(
        self,
        url: str,
        name: str,
        stop: threading.Event,
        log: logging.Logger,
        *,
        holding: Callable[[], str] = lambda: "",
        first_wait_s: float = FIRST_WAIT_S,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:
        self.url, self.name, self.stop, self.log = url, name, stop, log
        self.holding = holding  # what the stage holds while it waits, for the log
        self.first_wait_s, self.max_wait_s = first_wait_s, max_wait_s
        self.reconnects = 0  # times the connection was replaced after it was lost
        self._backend: tuple[int, datetime] | None = None  # its server process: pid, start
        self._lost_backend: tuple[int, datetime] | None = None  # that of the connection lost
        self._conn: Conn = self._connect_until_up(None)

    @property
    def conn(self) -> Conn:
        """The connection now (replaced after an outage: do not keep it)."""
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def read(self, fn: Callable[[Conn], T]) -> T:
        """``fn(conn)``, again until the database answers: for reads (and writes that are the
        same however often they run)."""
        failures = 0
        while True:
            conn = self._usable()
            try:
                return fn(conn)
            except CONNECTION_LOST as e:
                if not _for_now(conn, e):
                    raise
                failures += 1
                self._lost(e, failures)

    def write(self, fn: Callable[[Conn], T]) -> T:
        """``fn(conn)`` in one transaction, committed exactly once, however the connection
        fails meanwhile; its result. Any other error (the statement's own, whatever its type)
        rolls it back and is raised."""
        failures = 0
        while True:
            conn = self._usable()
            xid: str | None = None
            done: list[T] = []  # fn's result, once it returned: then the COMMIT is sent
            try:
                with conn.transaction():
                    result = fn(conn)
                    # None: nothing written, so nothing to commit or to lose.
                    xid = _scalar(conn, "SELECT pg_current_xact_id_if_assigned()::text")
                    done.append(result)
                return result
            except CONNECTION_LOST as e:
                if not _for_now(conn, e):
                    raise  # the statement's own error: rolled back, the caller's to handle
                failures += 1
                self._lost(e, failures)
                # Lost while committing (the COMMIT was sent): the database knows whether it
                # did. Lost before, it did not.
                if done and (xid is None or self._committed(xid)):
                    return done[0]

    # -- waiting ---------------------------------------------------------------------------

    def _usable(self) -> Conn:
        if self._conn.closed or self._conn.broken:
            self._reconnect(psycopg.InterfaceError("the connection was closed"))
        return self._conn

    def _lost(self, e: BaseException, failures: int) -> None:
        """A statement failed with ``e``: wait until the database answers again."""
        if self._conn.closed or self._conn.broken:
            self._reconnect(e)
            return
        # The database answered, with an error of its own (shutting down, a statement
        # cancelled, a deadlock): the same backoff, on the same connection.
        wait = backoff(failures, first=self.first_wait_s, cap=self.max_wait_s)
        self.log.error(
            "DATABASE UNAVAILABLE (%s): %s tries again in %.0f s%s",
            _text(e),
            self.name,
            wait,
            self.holding(),
        )
        self._wait(wait)

    def _reconnect(self, cause: BaseException) -> None:
        self._lost_backend = self._backend
        with contextlib.suppress(Exception):
            self._conn.close()
        self._conn = self._connect_until_up(cause)
        self.reconnects += 1
        self._end(self._lost_backend)

    def _connect_until_up(self, cause: BaseException | None) -> Conn:
        """A new connection; while there is none, try again with backoff and say so each time
        (``cause``: why the last one was lost; None at the start)."""
        began, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            try:
                conn = self._open()
            except CONNECTION_LOST as e:
                wait = backoff(attempt, first=self.first_wait_s, cap=self.max_wait_s)
                if attempt > 1:
                    why = ""
                elif cause is None:
                    why = " at start"
                else:
                    why = f" ({_text(cause)})"
                self.log.error(
                    "DATABASE UNAVAILABLE%s: %s waits for it%s; attempt %d failed (%s), next in"
                    " %.0f s",
                    why,
                    self.name,
                    self.holding(),
                    attempt,
                    _text(e),
                    wait,
                )
                self._wait(wait)
                continue
            if attempt > 1:
                self.log.warning(
                    "database reachable again after %.0f s (%d attempts): %s goes on",
                    time.monotonic() - began,
                    attempt,
                    self.name,
                )
            elif cause is not None:
                self.log.warning(
                    "database connection lost (%s); %s reconnected", _text(cause), self.name
                )
            return conn

    def _open(self) -> Conn:
        kw: dict[str, Any] = {
            "autocommit": True,
            "application_name": self.name[:63],
            "connect_timeout": CONNECT_TIMEOUT_S,
            **TCP,
        }
        conn = psycopg.connect(self.url, **kw)
        try:
            row = conn.execute(
                "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            ).fetchone()
        except BaseException:
            conn.close()
            raise
        self._backend = None if row is None else (int(row[0]), row[1])
        return conn

    def _end(self, backend: tuple[int, datetime] | None) -> None:
        """End the server process of a lost connection if it is still there (it has not
        noticed yet): its transaction is over, its locks are released."""
        if backend is None:
            return
        with contextlib.suppress(psycopg.Error):  # not allowed, or gone meanwhile: it ends alone
            self._conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid = %s AND backend_start = %s",
                backend,
            )

    def _committed(self, xid: str) -> bool:
        """Whether the transaction ``xid``, whose commit the outage cut off, committed."""
        polls = 0
        while True:
            status = self.read(lambda c: _scalar(c, "SELECT pg_xact_status(%s::xid8)", xid))
            if status == "committed":
                self.log.warning(
                    "%s: the commit cut off by the outage went through (transaction %s); not"
                    " written again",
                    self.name,
                    xid,
                )
                return True
            if status == "aborted":
                self.log.warning(
                    "%s: the commit cut off by the outage did not go through (transaction %s);"
                    " written again",
                    self.name,
                    xid,
                )
                return False
            if status is None:  # too old to be known: cannot happen within minutes
                self.log.error(
                    "%s: whether transaction %s committed is no longer known; written again",
                    self.name,
                    xid,
                )
                return False
            # In progress: the server process of the lost connection has not ended yet.
            polls += 1
            self._end(self._lost_backend)
            self._wait(min(self.max_wait_s, 0.2 * polls))

    def _wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Stopping(f"{self.name}: stopped while waiting for the database")
