"""Notify: the dispatcher, the loop that delivers the outbox to the people on duty, with retries.

Each round: housekeeping (escalation steps and reminders that fell due, batches of the grouped
severities, notices of platform alarms; ``notify.outbox``), then claim the rows that are due and
deliver each to whoever is on shift for it (``notify.recipients``) on every channel of theirs
(``notify.channels``), each copy with that person's acknowledgement links (``notify.ack_links``);
a resident's complaint (no alarm) carries its duty page's address instead.
Every attempt is logged in ``deliveries``; a channel that accepted a notification is never sent
it again. A row not yet accepted everywhere is retried with exponential backoff. A dispatcher
killed between a channel accepting and the log recording it sends once more: the delivery id is
the same on every retry, so the receiver drops the repeat.

Sends run concurrently on a pool of threads, at most ``concurrency`` at once and at most
``concurrency_per_firm`` for one firm's communities (the platform operators count as a firm),
most urgent severity first; each waits at most ``send_timeout_s`` for each step. One firm's dead
endpoints therefore hold only that firm's slots: another firm's P0 goes out meanwhile. The
database is used from the dispatcher's own thread only: claiming, logging each attempt as it
completes, finishing rows, and renewing the leases of the rows still in hand, so a row being
worked on is never taken by another dispatcher. Two rows of the same alarm go out one after the
other, in order.

Nothing one recipient's channel does can stop the loop: any error while building or sending one
delivery is a failed attempt in the log (``notify.channels.attempt``). A failure no retry can
mend (a malformed address, a channel kind this dispatcher cannot send on) settles that channel
for that row like an acceptance; a row whose every channel of every recipient failed that way is
finished as ``undeliverable`` and logged as an error.

P0 goes out at once (SMS among its channels) and, unacknowledged after the policy's wait, as a
voice call; grouped severities go out in batches, quiet hours hold the quiet ones back
(``notify.policy``); reminders repeat until someone acknowledges, and a reminder or escalation
that falls due after the alarm was acknowledged or cleared is dropped as superseded.

The database going away stops nothing (``core.outlasting_db``): the dispatcher waits for it where it
is, with backoff and a loud log line per attempt, holding what it has in hand. Sends already
running complete and their results wait in memory, to be logged when the database is back; no
new send starts and nothing is claimed meanwhile. After an outage the leases of the rows in hand
are renewed before any send starts, so a row another dispatcher took meanwhile is left to it.
Each write is committed exactly once, a commit cut off by the outage included. A dispatcher
stopped during an outage logs the deliveries that were accepted but could not be logged: their
rows are taken again after the lease, and those channels are sent them once more with the same
delivery id (as after a kill), for the receiver to drop.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from core import correlation
from core.channel_addresses import PHONE_KINDS, STRICT, AddressPolicy
from core.db import Conn
from core.metrics import Heartbeat
from core.outlasting_db import Database, Stopping
from core.settings import Settings
from notify import metrics, outbox
from notify.ack_links import AckLinks, pages_origin, with_page_links
from notify.channels import Attempt, Channel, Smtp, attempt, configured, failed
from notify.duty_app import DutyApps
from notify.outbox import OUTBOX, PLATFORM, PLATFORM_FIRM, Claim, PlatformClaim, Queue
from notify.policy import Policy, batch_message, reaches
from notify.providers import Endpoints, PhoneAccounts
from notify.recipients import Recipient, on_duty, platform_on_duty

log = logging.getLogger("shouwang.notify")

SEVERITY_RANK = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}
NOT_CONFIGURED = {
    "email": "set SHOUWANG_NOTIFY_SMTP_HOST",
    "mqtt": "set SHOUWANG_NOTIFY_MQTT_PASSWORD",
    "sms": "set SHOUWANG_NOTIFY_PHONE_KEY",
    "voice": "set SHOUWANG_NOTIFY_PHONE_KEY",
}


def backoff_s(attempts: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


@dataclass(eq=False)
class _Job:
    """A claimed row (outbox or platform notice) while this dispatcher works on it."""

    q: Queue
    claim: Claim | PlatformClaim
    firm: str
    order: tuple[str, int]  # rows with the same key go out one after the other
    targets: list[Recipient] = field(default_factory=list)
    settled: dict[int, bool] = field(default_factory=dict)  # channel -> accepted (else permanent)
    pending: int = 0  # its sends not yet completed, queued or running
    cut: bool = False  # some of its sends were dropped (the dispatcher is stopping)
    lost: bool = False  # its lease went to another dispatcher: forget it, never finish it

    @property
    def id(self) -> int:
        return self.claim.id

    @property
    def key(self) -> tuple[str, int]:
        return self.q.table, self.claim.id

    @property
    def what(self) -> str:
        return f"{'outbox' if self.q is OUTBOX else 'platform notice'} {self.claim.id}"


def _delivery_fields(job: _Job, r: Recipient, a: Attempt) -> dict[str, Any]:
    """A delivery attempt's log fields: which row, alarm and channel, how it went, and the
    correlation id of the alarm it is about (``core.correlation``); never the address, the
    message or its acknowledgement links."""
    c = job.claim
    fields: dict[str, Any] = {
        "delivery": job.q.delivery(c.id, r.channel_id),
        "notice": c.kind,
        "attempt": c.attempts,
        "person_id": r.person_id,
        "channel": r.kind,
        "channel_id": r.channel_id,
        "outcome": "accepted" if a.ok else ("failed_permanently" if a.permanent else "failed"),
        "http_status": a.http_status,
        "latency_ms": round(a.latency_ms, 1),
    }
    if isinstance(c, Claim) and c.alarm_id is not None:
        fields["alarm_id"] = c.alarm_id
    if isinstance(c, Claim):
        wo = c.payload.get("work_order_id")
        if isinstance(wo, int):
            fields["work_order_id"] = wo
    cid = correlation.of_notice(c.payload)
    if cid is not None:
        fields["cid"] = cid
    return fields


@dataclass(eq=False)
class _Task:
    """One delivery: one row to one recipient's channel."""

    job: _Job
    r: Recipient
    channel: Channel
    build: Callable[[], dict[str, Any]]


class Dispatcher:
    def __init__(
        self,
        database_url: str,
        name: str,
        http: httpx.Client,
        *,
        batch: int = 50,
        lease_s: float = 30.0,
        backoff_base_s: float = 1.0,
        smtp: Smtp | None = None,
        policy: Policy | None = None,
        ack: AckLinks | None = None,
        duty_apps: DutyApps | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        housekeeping_s: float = 1.0,
        send_timeout_s: float = 5.0,
        concurrency: int = 32,
        concurrency_per_firm: int = 4,
        stop: threading.Event | None = None,
        addresses: AddressPolicy = STRICT,
        phones: PhoneAccounts | None = None,
        heartbeat: Heartbeat | None = None,
        pages_url: str | None = None,
    ) -> None:
        if send_timeout_s <= 0 or concurrency < 1 or concurrency_per_firm < 1 or batch < 1:
            raise ValueError(
                "send timeout must be positive; concurrency, concurrency per firm and batch at"
                " least 1"
            )
        self.name, self.batch = name, batch
        self.lease_s, self.backoff_base_s = lease_s, backoff_base_s
        self.send_timeout_s = send_timeout_s
        self.concurrency, self.concurrency_per_firm = concurrency, concurrency_per_firm
        self.channels = configured(
            http, smtp, duty_apps, timeout_s=send_timeout_s, policy=addresses
        )
        self.policy, self.ack, self.clock = policy or Policy(), ack, clock
        # Where the duty pages are, for a complaint's link (default: the ack page's host).
        self.pages_url = (
            pages_url if pages_url is not None else pages_origin(ack.url) if ack else ""
        )
        self.phones = phones  # SMS and voice, with each firm's account
        self.duty_apps = duty_apps  # closed with the dispatcher
        self.housekeeping_s = housekeeping_s
        self._last_housekeeping = -1e9
        self._last_renewal = time.monotonic()
        self._last_claim = -1e9
        self._more_due = False
        self._poll_s = 0.1
        # Set by ``stop()``; also ends a wait for the database (the one at the start included).
        self._stop = threading.Event() if stop is None else stop
        self._stopping = False
        self._closed = False
        # The work in hand, touched by this dispatcher's own thread only; the pool's threads
        # only send, and hand each result back through _done.
        self._pool: ThreadPoolExecutor | None = None
        self._done: queue.SimpleQueue[tuple[_Task, Future[Attempt]] | None] = queue.SimpleQueue()
        self._jobs: dict[tuple[str, int], _Job] = {}
        self._order_head: dict[tuple[str, int], _Job] = {}
        self._order_waiting: dict[tuple[str, int], deque[_Job]] = {}
        self._queued: dict[str, list[tuple[int, int, _Task]]] = {}
        self._running: Counter[str] = Counter()
        self._seq = 0
        self._unlogged: list[str] = []  # deliveries accepted, not logged: stopped in an outage
        # The connection, once the database answers (a start during an outage waits for it).
        self.db = Database(database_url, name, self._stop, log, holding=self._holding)
        # The stage's liveness on its metrics endpoint (``core.metrics``, ``notify.metrics``).
        self.heartbeat = Heartbeat("notify") if heartbeat is None else heartbeat
        self._leases_checked = self.db.reconnects  # leases renewed since the last reconnection

    @property
    def conn(self) -> Conn:
        """The database connection now (replaced after an outage: do not keep it)."""
        return self.db.conn

    def _holding(self) -> str:
        """What the dispatcher holds while it waits for the database, for the log."""
        return (
            f"; in hand: {len(self._jobs)} row(s), {self._running.total()} send(s) running,"
            f" {self._done.qsize()} result(s) to log; no send starts meanwhile"
        )

    # -- the loop -------------------------------------------------------------------------

    def run(self, poll_s: float = 0.1) -> None:
        """Deliver until stopped: claim while sends are in flight, so a slow send holds only its
        own firm's slot, never the loop."""
        self._poll_s = poll_s
        try:
            while not self._stop.is_set():
                if not self.step():
                    self._collect(poll_s)
        except Stopping:
            pass  # stopped while waiting for the database: close() says what was left
        finally:
            self.close()

    def step(self) -> int:
        """One round without waiting: housekeeping, results of finished sends, lease renewal,
        new claims, new sends. Returns how much happened (0: idle)."""
        self.heartbeat.beat()
        self.housekeeping()
        done = self._collect(0)
        self._renew_leases()
        claimed = (0, 0)
        # Claim at most every poll interval, unless the last claim found a full batch.
        if self._more_due or time.monotonic() - self._last_claim >= self._poll_s:
            claimed = self._claim()
        self._pump()
        return done + sum(claimed)

    def run_once(self) -> int:
        """Housekeeping, then claim due rows and try each, waiting until every send of this
        dispatcher has completed and each row is finished or scheduled for retry; return how
        many outbox rows were claimed (platform notices are claimed alongside)."""
        self.housekeeping()
        self._collect(0)
        claimed, _ = self._claim()
        self._pump()
        while self._jobs and not self._stopping:
            self._collect(min(1.0, self.lease_s / 3))
            self._renew_leases()
            self._pump()
        return claimed

    def close(self) -> None:
        """Stop sending: sends already running are waited for (each is bounded by the send
        timeout) and logged; rows not finished are given back at once for anyone to claim.
        With the database away, it is not waited for: the rows go back after their lease, and
        the deliveries accepted but not logged are named in the log."""
        if self._closed:
            return
        self._stopping = True
        self._stop.set()  # closing: a database away is no longer waited for
        try:
            self._wind_down()
        except Stopping:
            self._wind_down_offline()
        except Exception:  # closing must not hide why the loop ended, nor stop halfway
            log.exception("notify %s: could not hand back the rows in hand", self.name)
        finally:
            self._closed = True
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self.db.close()
            if self.duty_apps is not None:
                self.duty_apps.close()
            if self._unlogged:
                log.error(
                    "notify %s stopped with the database unavailable: %d deliveries were"
                    " accepted but could not be logged (%s). Their rows are taken again after"
                    " the lease and those channels sent them once more, with the same delivery"
                    " id, for the receiver to drop",
                    self.name,
                    len(self._unlogged),
                    ", ".join(self._unlogged[:20]) + (", …" if len(self._unlogged) > 20 else ""),
                )

    def stop(self) -> None:
        self._stop.set()
        self._done.put(None)  # wakes the loop

    # -- housekeeping ---------------------------------------------------------------------

    def fire_escalations(self) -> int:
        return self.db.write(outbox.fire_escalations)

    def fire_reminders(self) -> int:
        now = self.clock()
        return self.db.write(lambda c: outbox.fire_reminders(c, self.policy.reminder_every, now))

    def fire_voice_calls(self) -> int:
        now = self.clock()
        return self.db.write(lambda c: outbox.fire_voice_calls(c, self.policy.voice_after, now))

    def form_batches(self) -> int:
        now = self.clock()
        return self.db.write(lambda c: outbox.form_batches(c, self.policy, now))

    def note_platform_alarms(self) -> int:
        return self.db.write(outbox.note_platform_alarms)

    def housekeeping(self) -> None:
        """Escalations, reminders, batches and platform notices, at most every
        ``housekeeping_s``."""
        if time.monotonic() - self._last_housekeeping < self.housekeeping_s:
            return
        self._last_housekeeping = time.monotonic()
        self.fire_escalations()
        self.fire_reminders()
        self.fire_voice_calls()
        self.form_batches()
        self.note_platform_alarms()
        self.show_backlog()

    def show_backlog(self) -> int:
        """The backlog and the age of its oldest row on the metrics endpoint, the backlog as the
        heartbeat's pending work (``notify.metrics``); return the backlog."""
        grouped = sorted(self.policy.grouped)
        n, oldest = self.db.read(lambda c: outbox.backlog(c, grouped))
        metrics.BACKLOG.set(n)
        metrics.OLDEST.set(oldest)
        self.heartbeat.pending(n)
        return n

    def recipients(
        self, community_id: int, party: str | None, at: datetime, *, only: str | None = None
    ) -> list[Recipient]:
        """The people to notify: the party's role and the firm's duty staff, or only the party
        named by an escalation step."""
        return self.db.read(lambda c: on_duty(c, community_id, party, at, only=only))

    # -- claiming and preparing rows ------------------------------------------------------

    def _claim(self) -> tuple[int, int]:
        """Claim what is due, except for firms this dispatcher already holds ``batch`` rows of
        (their sends queue here; claiming more would only let the leases run): (outbox rows,
        platform notices)."""
        if self._stopping:
            return 0, 0
        self._last_claim = time.monotonic()
        held = Counter(j.firm for j in self._jobs.values())
        full = sorted(f for f, n in held.items() if n >= self.batch)
        mine = [j.id for j in self._jobs.values() if j.q is OUTBOX]
        # Committed exactly once: a claim whose commit an outage cut off is in hand if it went
        # through (else claimed again).
        claims = self.db.write(
            lambda c: outbox.claim(
                c,
                self.name,
                self.lease_s,
                sorted(self.policy.grouped),
                self.batch,
                skip_firms=full,
                exclude=mine,
            )
        )
        for c in claims:
            # Rows of one alarm (one complaint's work order) go out one after the other.
            order = ("a", c.alarm_id) if c.alarm_id is not None else ("w", c.work_order_id or 0)
            self._add(_Job(OUTBOX, c, c.firm or f"community:{c.community_id}", order))
        notices: list[PlatformClaim] = []
        room = self.batch - held[PLATFORM_FIRM]
        if room > 0:
            held_notices = [j.id for j in self._jobs.values() if j.q is PLATFORM]
            notices = self.db.write(
                lambda c: outbox.claim_platform(
                    c, self.name, self.lease_s, room, exclude=held_notices
                )
            )
            for n in notices:
                self._add(_Job(PLATFORM, n, PLATFORM_FIRM, ("p", n.platform_alarm_id)))
        self._more_due = len(claims) >= self.batch or len(notices) >= room > 0
        return len(claims), len(notices)

    def _add(self, job: _Job) -> None:
        self._jobs[job.key] = job
        if job.order in self._order_head:
            self._order_waiting.setdefault(job.order, deque()).append(job)
        else:
            self._order_head[job.order] = job
            self._start(job)

    def _message(self, c: Claim) -> dict[str, Any] | None:
        """What a claimed row says now: None when it is no longer worth saying (a reminder or
        escalation for a settled alarm, a batch with nothing left in it, an alarm that opened
        during a maintenance window of its device, a complaint's escalation once its work order
        was taken on or closed)."""
        alarm = c.alarm_id
        if alarm is None:  # a complaint's notice
            if c.kind == "complaint_escalation" and self.db.read(
                lambda conn: outbox.work_order_taken_on(conn, c.work_order_id)
            ):
                return None
        elif c.kind in ("reminder", "escalation", "voice_call") and self.db.read(
            lambda conn: outbox.alarm_settled(conn, alarm)
        ):
            return None
        if c.batch_id is not None:
            return batch_message(self.db.read(lambda conn: outbox.batch_members(conn, c.id)))
        if alarm is not None and self.db.read(
            lambda conn: outbox.alarm_in_maintenance(conn, alarm)
        ):
            log.info("outbox %s: its device was under maintenance; not sent", c.id)
            return None
        return c.payload

    def _start(self, job: _Job) -> None:
        """Who gets the row, on which channels not settled yet; queue a send for each. A row
        that cannot even be prepared is retried after a backoff."""
        c = job.claim
        try:
            now = self.clock()
            if isinstance(c, Claim):
                payload = self._message(c)
                if payload is None:
                    self.db.write(lambda conn: outbox.finish(conn, c.id, superseded=True))
                    self._forget(job)
                    return
                job.targets = self.recipients(c.community_id, c.party, now, only=c.notify)
            else:
                payload = c.payload
                job.targets = self.db.read(lambda conn: platform_on_duty(conn, now))
            on_duty = bool(job.targets)
            job.targets = [r for r in job.targets if reaches(c.kind, r.kind)]
            if on_duty and not job.targets:  # a voice call, and nobody on duty has a voice channel
                log.info("%s: nobody on duty has a voice channel; not called", job.what)
                self.db.write(lambda conn: outbox.finish(conn, c.id, superseded=True, q=job.q))
                self._forget(job)
                return
            job.settled = self.db.read(lambda conn: outbox.settled_channels(conn, c.id, q=job.q))
            tasks, unsendable = [], []
            for r in job.targets:
                if r.channel_id in job.settled:
                    continue
                channel = self.channels.get(r.kind)
                if r.kind in PHONE_KINDS and self.phones is not None:
                    channel = self.phones.channel(job.firm, r.kind, self.db.read)
                if channel is None:
                    unsendable.append(r)
                else:
                    build = partial(self._personal, job.q, payload, r, now)
                    tasks.append(_Task(job, r, channel, build))
            for r in unsendable:
                hint = NOT_CONFIGURED.get(r.kind, "unknown channel kind")
                self._record(
                    job,
                    r,
                    failed(f"no {r.kind} channel in this dispatcher ({hint})", permanent=True),
                )
        except Exception:
            log.exception("%s: cannot prepare its deliveries; retrying", job.what)
            self._retry(job)
            self._forget(job)
            return
        for t in tasks:
            self._queue(t)
        if job.pending == 0:
            self._finalize(job)

    def _personal(
        self, q: Queue, payload: dict[str, Any], r: Recipient, now: datetime
    ) -> dict[str, Any]:
        """The payload as ``r`` receives it (in a sending thread): with their own
        acknowledgement links, and a complaint's duty page; platform notices carry none."""
        if q is not OUTBOX:
            return payload
        payload = with_page_links(payload, self.pages_url)
        if self.ack is None:
            return payload
        return self.ack.for_recipient(payload, r, now)

    # -- sending ----------------------------------------------------------------------------

    def _queue(self, t: _Task) -> None:
        self._seq += 1
        rank = SEVERITY_RANK.get(t.job.claim.severity, len(SEVERITY_RANK))
        heapq.heappush(self._queued.setdefault(t.job.firm, []), (rank, self._seq, t))
        t.job.pending += 1

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.concurrency, thread_name_prefix=f"{self.name}-send"
            )
        return self._pool

    def _pump(self) -> None:
        """Start queued sends while there is room: the most urgent first (severity, then age)
        among the firms below their bound."""
        if self.db.reconnects != self._leases_checked:
            return  # the database was away: the leases are renewed first (_renew_leases)
        while not self._stopping and self._running.total() < self.concurrency:
            best: tuple[int, int, str] | None = None
            for firm, heap in list(self._queued.items()):
                while heap and heap[0][2].job.lost:
                    self._drop(heapq.heappop(heap)[2])
                if not heap:
                    del self._queued[firm]
                    continue
                if self._running[firm] >= self.concurrency_per_firm:
                    continue
                rank, seq, _ = heap[0]
                if best is None or (rank, seq) < best[:2]:
                    best = (rank, seq, firm)
            if best is None:
                return
            t = heapq.heappop(self._queued[best[2]])[2]
            self._running[t.job.firm] += 1
            fut = self._executor().submit(self._send, t)
            fut.add_done_callback(partial(self._hand_back, t))

    def _hand_back(self, t: _Task, fut: Future[Attempt]) -> None:
        """In the sending thread: the result goes to the dispatcher's thread to be logged."""
        self._done.put((t, fut))

    @staticmethod
    def _send(t: _Task) -> Attempt:
        """In a sending thread: one attempt, never an exception."""
        return attempt(t.channel, t.job.q.delivery(t.job.id, t.r.channel_id), t.r, t.build)

    def _collect(self, timeout_s: float) -> int:
        """Log the sends that completed, waiting up to ``timeout_s`` for the first; return how
        many."""
        n = 0
        try:
            item = self._done.get(timeout=timeout_s) if timeout_s > 0 else self._done.get_nowait()
            while True:
                if item is not None:
                    self._completed(*item)
                    n += 1
                item = self._done.get_nowait()
        except queue.Empty:
            return n

    def _completed(self, t: _Task, fut: Future[Attempt]) -> None:
        self._running[t.job.firm] -= 1
        try:
            a = fut.result()
        except BaseException as e:  # attempt() returns every error; this is the last guard
            a = failed(f"internal error: {type(e).__name__}: {e}")
        metrics.DELIVERY_SECONDS.labels(t.r.kind).observe(a.latency_ms / 1000)
        self._record(t.job, t.r, a)
        t.job.pending -= 1
        if t.job.pending == 0:
            self._finalize(t.job)

    def _record(self, job: _Job, r: Recipient, a: Attempt) -> None:
        """Log one attempt (exactly once; while the database is away this waits, the result in
        hand), then take it as settled or not."""
        try:
            self.db.write(
                lambda c: outbox.log_delivery(
                    c,
                    job.id,
                    r.person_id,
                    r.channel_id,
                    job.claim.attempts,
                    ok=a.ok,
                    http_status=a.http_status,
                    error=a.error,
                    latency_ms=a.latency_ms,
                    permanent=a.permanent,
                    q=job.q,
                    request_id=a.request_id,
                    provider_status=a.provider_status,
                )
            )
        except Stopping:
            if a.ok:
                self._unlogged.append(job.q.delivery(job.id, r.channel_id))
            raise
        if a.ok:
            job.settled[r.channel_id] = True
        elif a.permanent:
            job.settled.setdefault(r.channel_id, False)
        metrics.DELIVERIES.labels(r.kind, metrics.outcome(a.ok, a.permanent)).inc()
        self.heartbeat.progressed(1)
        fields = _delivery_fields(job, r, a)
        if a.ok:
            log.info(
                "%s delivered to person %s on %s channel %s",
                job.what,
                r.person_id,
                r.kind,
                r.channel_id,
                extra=fields,
            )
        else:
            log.warning(
                "%s to person %s on %s channel %s failed%s: %s",
                job.what,
                r.person_id,
                r.kind,
                r.channel_id,
                " permanently" if a.permanent else "",
                a.error[:300],
                extra=fields,
            )

    def _drop(self, t: _Task) -> None:
        """A queued send that will not be made (its row was lost, or the dispatcher stops)."""
        t.job.pending -= 1
        t.job.cut = True
        if t.job.pending == 0:
            self._finalize(t.job)

    # -- finishing rows ---------------------------------------------------------------------

    def _backoff(self, job: _Job) -> float:
        return backoff_s(job.claim.attempts, base=self.backoff_base_s)

    def _retry(self, job: _Job) -> None:
        delay = self._backoff(job)
        self.db.write(lambda c: outbox.retry_in(c, job.id, delay, q=job.q))

    def _finalize(self, job: _Job) -> None:
        """Every send of the row completed: done once every channel of every recipient is
        settled (accepted, or failed permanently), otherwise retried after a backoff."""
        if job.lost:
            self._forget(job)
            return
        if job.cut:
            self.db.write(lambda c: outbox.release(c, self.name, [job.id], q=job.q))
        elif not job.targets:
            if job.q is OUTBOX:
                c = job.claim
                assert isinstance(c, Claim)
                log.warning(
                    "outbox %s: nobody on duty for community %s (%s); retrying",
                    c.id,
                    c.community_id,
                    c.party,
                )
            else:
                log.warning("%s: nobody on a platform shift; retrying", job.what)
            self._retry(job)
        elif all(r.channel_id in job.settled for r in job.targets):
            undeliverable = not any(job.settled.values())
            if undeliverable:
                log.error(
                    "%s is undeliverable: every channel of everyone on duty for it failed"
                    " permanently (see its deliveries); finished without being delivered",
                    job.what,
                )
            self.db.write(lambda c: outbox.finish(c, job.id, undeliverable=undeliverable, q=job.q))
        else:
            self._retry(job)
        self._forget(job)

    def _forget(self, job: _Job) -> None:
        """The row leaves this dispatcher's hands; the next row of the same alarm starts."""
        self._jobs.pop(job.key, None)
        waiting = self._order_waiting.get(job.order)
        if waiting and job in waiting:
            waiting.remove(job)
        if self._order_head.get(job.order) is not job:
            return
        del self._order_head[job.order]
        while waiting:
            nxt = waiting.popleft()
            if not nxt.lost:
                self._order_head[job.order] = nxt
                if not self._stopping:
                    self._start(nxt)
                break
        if not waiting:
            self._order_waiting.pop(job.order, None)

    def _renew_leases(self, *, force: bool = False) -> None:
        """Keep the rows in hand (a third of the lease at the latest, and at once after the
        database was away); a row whose lease another dispatcher took meanwhile is forgotten,
        its queued sends dropped."""
        reconnects = self.db.reconnects
        if (
            not force
            and reconnects == self._leases_checked
            and time.monotonic() - self._last_renewal < self.lease_s / 3
        ):
            return
        self._last_renewal = time.monotonic()
        for q in (OUTBOX, PLATFORM):
            jobs = [j for j in self._jobs.values() if j.q is q]
            if not jobs:
                continue
            held = self.db.write(
                partial(
                    outbox.renew,
                    name=self.name,
                    lease_s=self.lease_s,
                    ids=[j.id for j in jobs],
                    q=q,
                )
            )
            for j in jobs:
                if j.id not in held and not j.lost:
                    log.warning("%s: lease lost to another dispatcher; leaving it to them", j.what)
                    j.lost = True
                    if j.pending == 0:
                        self._forget(j)
        self._leases_checked = reconnects

    def _wind_down(self) -> None:
        for heap in self._queued.values():
            for _, _, t in heap:
                self._drop(t)
        self._queued.clear()
        # A send waits at most the timeout for connecting, writing and reading.
        deadline = time.monotonic() + 3 * self.send_timeout_s + 1
        while self._running.total() > 0 and time.monotonic() < deadline:
            self._collect(0.1)
            self._renew_leases()
        # Rows not started are given back now; a row with a send still running (a receiver
        # trickling its answer) is left to its lease, so nobody sends it meanwhile.
        idle = [j for j in self._jobs.values() if not j.lost and j.pending == 0]
        for q in (OUTBOX, PLATFORM):
            ids = [j.id for j in idle if j.q is q]
            if ids:
                self.db.write(partial(outbox.release, name=self.name, ids=ids, q=q))
        self._jobs.clear()

    def _wind_down_offline(self) -> None:
        """Closing with the database away: wait for the sends running (bounded by the send
        timeout) and note those accepted, which cannot be logged; the rows in hand go back when
        their lease runs out."""
        deadline = time.monotonic() + 3 * self.send_timeout_s + 1
        while time.monotonic() < deadline and (self._running.total() > 0 or not self._done.empty()):
            try:
                item = self._done.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is None:
                continue
            t, fut = item
            self._running[t.job.firm] -= 1
            if fut.exception() is None and fut.result().ok:
                self._unlogged.append(t.job.q.delivery(t.job.id, t.r.channel_id))
        self._queued.clear()
        self._jobs.clear()


def from_settings(
    s: Settings,
    name: str,
    http: httpx.Client,
    *,
    stop: threading.Event | None = None,
    heartbeat: Heartbeat | None = None,
) -> Dispatcher:
    """A dispatcher configured as the settings say: policy, e-mail, duty apps, ack links,
    send timeout and concurrency. Waits for the database while it cannot be reached; ``stop``
    set ends the wait (``Stopping``) and later stops the dispatcher."""
    policy = Policy.build(
        grouped=s.notify_grouped_severities,
        group_wait_s=s.notify_group_wait_s,
        group_interval_s=s.notify_group_interval_s,
        quiet_hours=s.notify_quiet_hours,
        quiet_severities=s.notify_quiet_severities,
        timezone=s.notify_timezone,
        reminder_minutes=s.notify_reminder_minutes,
        voice_after_s=s.notify_voice_after_s,
    )
    secret = s.notify_ack_secret.get_secret_value()
    if not secret:
        log.warning("SHOUWANG_NOTIFY_ACK_SECRET is not set: messages go out without ack links")
    apps = None
    if s.notify_mqtt_password.get_secret_value():
        apps = DutyApps(
            s.mqtt_host,
            s.mqtt_port,
            s.notify_mqtt_username,
            s.notify_mqtt_password.get_secret_value(),
            client_id=f"shouwang-{name}",
            timeout_s=s.notify_send_timeout_s,
        )
    try:
        return _dispatcher(s, name, http, policy, secret, apps, stop, heartbeat)
    except BaseException:
        if apps is not None:
            apps.close()
        raise


def _dispatcher(
    s: Settings,
    name: str,
    http: httpx.Client,
    policy: Policy,
    secret: str,
    apps: DutyApps | None,
    stop: threading.Event | None,
    heartbeat: Heartbeat | None = None,
) -> Dispatcher:
    return Dispatcher(
        s.database_url,
        name,
        http,
        lease_s=s.notify_lease_s,
        backoff_base_s=s.notify_backoff_base_s,
        smtp=Smtp(s.notify_smtp_host, s.notify_smtp_port, s.notify_smtp_sender)
        if s.notify_smtp_host
        else None,
        policy=policy,
        ack=AckLinks(secret, s.notify_ack_url, timedelta(hours=s.notify_ack_valid_hours))
        if secret
        else None,
        duty_apps=apps,
        send_timeout_s=s.notify_send_timeout_s,
        concurrency=s.notify_concurrency,
        concurrency_per_firm=s.notify_concurrency_per_firm,
        stop=stop,
        heartbeat=heartbeat,
        pages_url=s.api_public_url or pages_origin(s.notify_ack_url),
        addresses=AddressPolicy.from_settings(s),
        phones=PhoneAccounts(
            s.notify_phone_key.get_secret_value(),
            Endpoints.from_settings(s),
            s.notify_send_timeout_s,
        )
        if s.notify_phone_key.get_secret_value()
        else None,
    )
