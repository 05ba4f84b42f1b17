"""API: the live stream's hub. One connection LISTENs on ``shouwang_changes`` (the triggers of
migration 0011 announce every committed alarm and work-order change there) and fans each change
out to the subscribers; each subscriber keeps what its caller's scope covers.

Streams are capped per API process and per token (:class:`StreamsFull`). A subscriber's queue
is bounded: one that falls behind by ``QUEUE_SIZE`` changes is ended
(``None`` in its queue) rather than slowing the others; its client reconnects with the last
event id it saw and is sent what it missed from ``change_log`` (``missed``), kept for
``KEEP_DAYS`` days.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg

from api.deps import Principal

log = logging.getLogger("shouwang.api.stream")
CHANNEL: Final = "shouwang_changes"
QUEUE_SIZE: Final = 1000
KEEP_DAYS: Final = 7
REPLAY_MAX: Final = 10_000
_COLUMNS: Final = (
    "seq, kind, op, id, community_id, maintenance_unit_id, device_id, event_code, severity, state"
)


async def missed(db: psycopg.AsyncConnection[Any], after: int) -> list[Change]:
    """The logged changes after ``after`` (oldest first, at most ``REPLAY_MAX``)."""
    cur = await db.execute(
        f"SELECT {_COLUMNS} FROM change_log WHERE seq > %s ORDER BY seq LIMIT %s",  # noqa: S608
        (after, REPLAY_MAX),
    )
    names = _COLUMNS.split(", ")
    return [Change.of(dict(zip(names, row, strict=True))) for row in await cur.fetchall()]


async def kept_since(db: psycopg.AsyncConnection[Any]) -> int | None:
    """The oldest change number still in the log (None: an empty log)."""
    cur = await db.execute("SELECT min(seq) FROM change_log")
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


@dataclass(frozen=True, slots=True)
class Change:
    seq: int  # the change's number in change_log: the SSE event id
    kind: str  # alarm | work_order
    op: str  # insert | update
    id: int
    community_id: int | None
    maintenance_unit_id: int | None
    device_id: int | None  # None: a work order filed for a resident's complaint
    event_code: str
    severity: str
    state: str  # an alarm's state, a work order's status

    @classmethod
    def parse(cls, payload: str) -> Change:
        return cls.of(json.loads(payload))

    @classmethod
    def of(cls, d: dict[str, Any]) -> Change:
        return cls(
            seq=int(d["seq"]),
            kind=str(d["kind"]),
            op=str(d["op"]),
            id=int(d["id"]),
            community_id=d["community_id"],
            maintenance_unit_id=d["maintenance_unit_id"],
            device_id=None if d["device_id"] is None else int(d["device_id"]),
            event_code=str(d["event_code"]),
            severity=str(d["severity"]),
            state=str(d["state"]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "op": self.op,
            "id": self.id,
            "community_id": self.community_id,
            "device_id": self.device_id,
            "event_code": self.event_code,
            "severity": self.severity,
            "state": self.state,
        }


def visible(change: Change, p: Principal) -> bool:
    """Whether ``p`` may see this change: the same rule as the alarm and work-order lists."""
    if p.role == "maintenance_unit":
        return change.kind == "work_order" and change.maintenance_unit_id == p.maintenance_unit_id
    return change.community_id is not None and p.sees_community(change.community_id)


@dataclass(eq=False)
class Subscription:
    token_id: int = 0  # whose stream: the per-token cap counts it
    queue: asyncio.Queue[Change | None] = field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE)
    )
    released: bool = False  # its place under the caps is given back


class StreamsFull(Exception):
    """No stream for this caller now: ``per_token`` its token's cap, else the process's."""

    def __init__(self, per_token: bool, cap: int) -> None:
        super().__init__(f"at most {cap} live streams {'per token' if per_token else 'in all'}")
        self.per_token = per_token
        self.cap = cap


def _log_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (e := task.exception()) is not None:
        log.warning("the change listener stopped (%s); the next stream starts it again", e)


class Hub:
    """The subscribers of one API process, at most ``max_streams`` of them and
    ``max_per_token`` per token (a subscription holds its place until it is unsubscribed)."""

    def __init__(self, database_url: str, max_streams: int = 500, max_per_token: int = 5) -> None:
        self._url = database_url
        self.max_streams = max_streams
        self.max_per_token = max_per_token
        self._held: dict[int, int] = {}  # token id -> streams open
        self._open = 0
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._ready: asyncio.Event | None = None
        self._lock = asyncio.Lock()
        self._forgotten_at = -1e9  # monotonic time the log was last trimmed

    async def subscribe(self, token_id: int = 0) -> Subscription:
        """A new subscription for a stream of ``token_id``'s; changes committed after this
        returns reach it. :class:`StreamsFull` when a cap is reached."""
        async with self._lock:
            if self._held.get(token_id, 0) >= self.max_per_token:
                raise StreamsFull(per_token=True, cap=self.max_per_token)
            if self._open >= self.max_streams:
                raise StreamsFull(per_token=False, cap=self.max_streams)
            if self._task is None or self._task.done():
                self._ready = asyncio.Event()
                self._task = asyncio.create_task(self._listen(self._ready))
                self._task.add_done_callback(_log_end)
                await asyncio.wait(
                    [asyncio.ensure_future(self._ready.wait()), self._task],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self._task.done():
                    self._task.result()  # the listener could not start: raise why
            sub = Subscription(token_id)
            self._subs.add(sub)
            self._held[token_id] = self._held.get(token_id, 0) + 1
            self._open += 1
            return sub

    async def forget_old(self, db: psycopg.AsyncConnection[Any]) -> None:
        """Delete changes older than ``KEEP_DAYS`` from the log, at most once an hour."""
        if time.monotonic() - self._forgotten_at < 3600:
            return
        self._forgotten_at = time.monotonic()
        await db.execute(
            "DELETE FROM change_log WHERE at < now() - make_interval(days => %s)", (KEEP_DAYS,)
        )

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub`` and give its place back (again: nothing)."""
        self._subs.discard(sub)
        if sub.released:
            return
        sub.released = True
        self._open -= 1
        left = self._held.get(sub.token_id, 0) - 1
        if left > 0:
            self._held[sub.token_id] = left
        else:
            self._held.pop(sub.token_id, None)

    async def _listen(self, ready: asyncio.Event) -> None:
        conn = await psycopg.AsyncConnection.connect(
            self._url, autocommit=True, application_name="shouwang-api-stream"
        )
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            ready.set()
            async for n in conn.notifies():
                try:
                    change = Change.parse(n.payload)
                except (ValueError, KeyError, TypeError):
                    log.exception("unreadable change on %s: %r", CHANNEL, n.payload)
                    continue
                for sub in list(self._subs):
                    try:
                        sub.queue.put_nowait(change)
                    except asyncio.QueueFull:
                        self._end(sub)
        finally:
            for sub in list(self._subs):
                self._end(sub)
            await conn.close()

    def _end(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        while True:
            try:
                sub.queue.put_nowait(None)
                return
            except asyncio.QueueFull:
                sub.queue.get_nowait()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await self._task
