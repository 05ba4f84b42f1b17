"""Drills: notifications checked end to end. A person of the drill's own is on duty for the
drill's communities (``duty_staff``, a shift covering the drill) with one webhook channel that
points at a receiver the drill runs on loopback; the receiver checks every request as the
webhook contract tells receivers to (``notify.webhook``: Standard Webhooks, verified with the
reference ``standardwebhooks`` package: the signature over ``<id>.<timestamp>.<body>`` with the
channel's secret, a fresh timestamp) and keeps what it accepted by delivery id
(``webhook-id``), dropping a repeat as a receiver must. The person, channel, shifts and delivery
log rows are removed afterwards; the person's name says it belongs to the drill.

``tally`` compares what arrived with what the outbox says should have: every outbox row of the
drill's communities written during the drill that reaches the firm's duty staff, delivered on its
own (delivery id ``<row id>.<channel id>``) or in its batch's message (``<lead row id>.<channel
id>``), exactly once; an alarm's news (opened, cleared, raised to a severity) in two different
deliveries is a duplicate.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks import Webhook, WebhookVerificationError

from core.db import Conn
from notify.recipients import ROLE_OF_PARTY
from notify.webhook import new_secret

PERSON = "DRILL 值班"  # + a token: the drill's own person, never a real one
MAX_BODY = 4 * 1024 * 1024
# News an alarm has once per severity: the same again under another delivery is a duplicate.
# (Reminders and escalation steps repeat by design.)
ONCE = ("alarm_opened", "alarm_cleared", "alarm_raised")


@dataclass
class Received:
    delivery: str
    body: dict[str, Any]
    at: float  # time.time()


@dataclass
class Receiver:
    """A webhook receiver on loopback for one channel secret."""

    secret: str
    accepted: dict[str, Received] = field(default_factory=dict)
    repeats: Counter[str] = field(default_factory=Counter)  # delivery id -> requests dropped
    bad_signatures: int = 0
    malformed: int = 0
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.send_response(receiver.take(self))
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(
            target=self._server.serve_forever, name="drill-webhooks", daemon=True
        ).start()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return int(self._server.server_address[1])

    def take(self, req: BaseHTTPRequestHandler) -> int:
        """One request: its HTTP status (204 accepted or a repeat dropped, 401 a bad signature,
        400 anything a receiver cannot read)."""
        try:
            length = int(req.headers.get("Content-Length") or -1)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            with self._lock:
                self.requests += 1
                self.malformed += 1
            return 400
        body = req.rfile.read(length)
        delivery = req.headers.get("webhook-id") or ""
        try:
            Webhook(self.secret).verify(body, dict(req.headers.items()), json_parse=False)
            good = True
        except (WebhookVerificationError, ValueError):  # ValueError: a malformed header
            good = False
        with self._lock:
            self.requests += 1
            if not good:
                self.bad_signatures += 1
                return 401
            if delivery in self.accepted:
                self.repeats[delivery] += 1  # sent again (after a kill): dropped, as it must be
                return 204
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                payload = None
            if not delivery or not isinstance(payload, dict):
                self.malformed += 1
                return 400
            self.accepted[delivery] = Received(delivery, payload, time.time())
        return 204

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.accepted.values())

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class Duty:
    """The drill's person on duty, reachable by webhook at ``receiver``."""

    person: int
    channel: int
    receiver: Receiver

    @classmethod
    def seed(cls, conn: Conn, community_codes: list[str], hours: float = 2.0) -> Duty:
        token = secrets.token_hex(4)
        receiver = Receiver(new_secret())
        receiver.start()
        try:
            url = f"http://127.0.0.1:{receiver.port}/drill/{token}"
            with conn.transaction():
                (person,) = conn.execute(
                    "INSERT INTO people (name, role) VALUES (%s, 'duty_staff') RETURNING id",
                    (f"{PERSON} {token}",),
                ).fetchone() or (0,)
                (channel,) = conn.execute(
                    "INSERT INTO contact_channels (person_id, kind, address, secret)"
                    " VALUES (%s, 'webhook', %s, %s) RETURNING id",
                    (person, url, receiver.secret),
                ).fetchone() or (0,)
                conn.execute(
                    "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
                    " SELECT id, 'duty_staff', %s, now() - interval '5 minutes', now() + %s"
                    " FROM communities WHERE code = ANY(%s)",
                    (person, timedelta(hours=hours), community_codes),
                )
        except BaseException:
            receiver.close()
            raise
        return cls(int(person), int(channel), receiver)

    def remove(self, conn: Conn) -> None:
        """The person and everything that names them; the outbox rows stay (they are the
        alarms')."""
        with conn.transaction():
            conn.execute("DELETE FROM deliveries WHERE channel_id = %s", (self.channel,))
            conn.execute("DELETE FROM platform_deliveries WHERE channel_id = %s", (self.channel,))
            conn.execute("DELETE FROM duty_shifts WHERE person_id = %s", (self.person,))
            conn.execute("DELETE FROM contact_channels WHERE id = %s", (self.channel,))
            conn.execute("DELETE FROM people WHERE id = %s", (self.person,))

    def close(self) -> None:
        self.receiver.close()


def expected_rows(conn: Conn, codes: list[str], since: datetime) -> dict[int, int | None]:
    """The outbox rows of these communities written since ``since`` that the firm's duty staff
    should get (every row but an escalation step addressed to another party, and a row found
    to have nothing left to say): row id -> its batch's lead row (None: on its own)."""
    rows = conn.execute(
        "SELECT o.id, o.batch_id, o.notify_party, o.superseded, o.done_at IS NOT NULL"
        " FROM outbox o JOIN communities c ON c.id = o.community_id"
        " WHERE c.code = ANY(%s) AND o.created_at >= %s",
        (codes, since),
    ).fetchall()
    return {
        int(i): (None if b is None else int(b))
        for i, b, only, superseded, done in rows
        if not (done and superseded)
        and (only is None or ROLE_OF_PARTY.get(str(only), str(only)) == "duty_staff")
    }


def pending_rows(conn: Conn, ids: list[int]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM outbox WHERE id = ANY(%s) AND done_at IS NULL", (ids,)
    ).fetchone()
    return int(row[0]) if row else 0


def news(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The notifications a message carries (a group carries several)."""
    items = body.get("items") if body.get("kind") == "group" else None
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else [body]


@dataclass
class Tally:
    expected: int = 0  # outbox rows the duty person should get
    received: int = 0  # deliveries accepted by the receiver (distinct delivery ids)
    covered: int = 0  # expected rows that arrived (on their own or in their batch)
    missing: list[int] = field(default_factory=list)  # expected rows that never arrived
    duplicates: list[str] = field(default_factory=list)  # alarm news in two deliveries
    repeats: int = 0  # a delivery id sent again: dropped by the receiver
    unexpected: int = 0  # deliveries for rows not expected (other communities, before)
    bad_signatures: int = 0
    malformed: int = 0
    logged_accepted: int = 0  # the delivery log's accepted rows for the channel
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (device, code) notified


def tally(conn: Conn, duty: Duty, expected: dict[int, int | None]) -> Tally:
    r = duty.receiver
    got = r.snapshot()
    t = Tally(expected=len(expected), received=len(got))
    t.repeats = sum(r.repeats.values())
    t.bad_signatures, t.malformed = r.bad_signatures, r.malformed
    arrived: set[int] = set()
    seen: dict[tuple[Any, ...], str] = {}
    for rec in got:
        head, _, channel = rec.delivery.partition(".")
        if not head.isdigit() or channel != str(duty.channel):
            t.unexpected += 1  # a platform notice ("p…") or another channel's id
            continue
        row = int(head)
        arrived.add(row)
        if row not in expected and row not in expected.values():
            t.unexpected += 1
        for n in news(rec.body):
            t.codes[(str(n.get("device")), str(n.get("code")))] += 1
            if n.get("kind") in ONCE:
                key = (n.get("alarm_id"), n.get("kind"), n.get("severity"))
                if key in seen and seen[key] != rec.delivery:
                    t.duplicates.append(f"{key[1]} of alarm {key[0]} ({seen[key]}, {rec.delivery})")
                seen.setdefault(key, rec.delivery)
    for row, lead in sorted(expected.items()):
        if row in arrived or (lead is not None and lead in arrived):
            t.covered += 1
        else:
            t.missing.append(row)
    logged = conn.execute(
        "SELECT count(*) FROM deliveries WHERE channel_id = %s AND status = 'accepted'",
        (duty.channel,),
    ).fetchone()
    t.logged_accepted = int(logged[0]) if logged else 0
    return t
