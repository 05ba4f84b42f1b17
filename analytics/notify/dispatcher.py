"""Analytics: the dispatcher. Delivers outbox rows to the people on duty, with retries.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, so several dispatchers share the
work without taking the same row, and a row whose dispatcher died is taken again once its lease
runs out. Every attempt is logged in ``deliveries``; a channel that accepted a notification is
never sent it again (the accepted row is unique per outbox row and channel). A dispatcher killed
between a channel accepting and the log recording it sends once more: the delivery id header is
the same on every retry, so the receiver drops the repeat.

Routing here is the first step of the issue's design: the responsible party's role and the
firm's duty staff, whoever is on shift for the community now, over signed webhooks, WeCom and
DingTalk robots and e-mail, each message in the reader's language.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
import orjson
from psycopg.types.json import Jsonb

from analytics.notify.messages import render
from analytics.notify.robots import dingtalk_body, dingtalk_url, robot_accepted, wecom_body
from analytics.notify.webhook import headers
from core.db import Conn, connect

log = logging.getLogger("shouwang.dispatch")

# Who holds a responsible party's work on the roster.
ROLE_OF_PARTY = {
    "firm_duty_room": "duty_staff",
    "project_manager": "project_manager",
    "property_firm": "firm_manager",
    "elevator_maintenance_unit": "maintenance_staff",
    "fire_maintenance_unit": "maintenance_staff",
    "water_utility": "maintenance_staff",
    "township": "township_supervisor",
    "county_housing_bureau": "county_supervisor",
}


@dataclass(frozen=True, slots=True)
class Recipient:
    person_id: int
    channel_id: int
    kind: str
    address: str
    secret: str
    language: str = "zh"


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    sender: str


def backoff_s(attempts: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


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
    ) -> None:
        self.conn: Conn = connect(database_url, autocommit=True, application_name=name)
        self.name, self.http, self.batch = name, http, batch
        self.lease_s, self.backoff_base_s, self.smtp = lease_s, backoff_base_s, smtp
        self._stop = threading.Event()

    def run(self, poll_s: float = 0.1) -> None:
        try:
            while not self._stop.is_set():
                if not self.run_once():
                    self._stop.wait(poll_s)
        finally:
            self.conn.close()

    def stop(self) -> None:
        self._stop.set()

    def fire_escalations(self) -> int:
        """Turn escalation steps that fell due (not acknowledged, responded or closed meanwhile)
        into notifications to the step's party, in one transaction; return how many."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT s.work_order_id, s.step, s.notify, w.alarm_id, w.community_id, w.severity,"
                " w.event_code, w.opened_at, d.uid FROM escalation_steps s"
                " JOIN work_orders w ON w.id = s.work_order_id JOIN devices d ON d.id = w.device_id"
                " WHERE s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at <= clock_timestamp()"
                " ORDER BY s.due_at LIMIT 100 FOR UPDATE OF s SKIP LOCKED"
            ).fetchall()
            for wo, step, party, alarm, community, severity, code, opened, uid in rows:
                payload = {
                    "kind": "escalation",
                    "alarm_id": alarm,
                    "work_order_id": wo,
                    "code": code,
                    "name": {"zh": code, "en": code},
                    "severity": severity,
                    "device": uid,
                    "step": step,
                    "notify": party,
                    "opened_at": opened.isoformat(),
                }
                self.conn.execute(
                    "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
                    " responsible_party, notify_party, payload)"
                    " VALUES ('escalation', %s, %s, %s, %s, %s, %s, %s)",
                    (alarm, wo, community, severity, party, party, Jsonb(payload)),
                )
                self.conn.execute(
                    "UPDATE escalation_steps SET fired_at = clock_timestamp() WHERE work_order_id = %s"
                    " AND step = %s",
                    (wo, step),
                )
        return len(rows)

    def run_once(self) -> int:
        """Fire due escalations, claim due rows and try each; return how many rows were tried."""
        self.fire_escalations()
        rows = self.conn.execute(
            "UPDATE outbox SET claimed_by = %s, claimed_until = clock_timestamp() + make_interval(secs => %s),"
            " attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL"
            " AND (claimed_until IS NULL OR claimed_until < clock_timestamp())"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, community_id, responsible_party, payload, attempts, notify_party",
            (self.name, self.lease_s, self.batch),
        ).fetchall()
        for outbox_id, community_id, party, payload, attempts, notify in sorted(rows):
            self._deliver(int(outbox_id), int(community_id), party, payload, int(attempts), notify)
        return len(rows)

    def recipients(
        self, community_id: int, party: str | None, at: datetime, *, only: str | None = None
    ) -> list[Recipient]:
        """The people to notify: the party's role and the firm's duty staff, or only the party
        named by an escalation step."""
        if only is not None:
            roles = [ROLE_OF_PARTY.get(only, only)]
        else:
            roles = sorted({"duty_staff", ROLE_OF_PARTY.get(party or "", "duty_staff")})
        rows = self.conn.execute(
            "SELECT DISTINCT p.id, c.id, c.kind, c.address, coalesce(c.secret, ''), p.language"
            " FROM duty_shifts s JOIN people p ON p.id = s.person_id AND p.active"
            " JOIN contact_channels c ON c.person_id = p.id"
            " WHERE s.community_id = %s AND s.role = ANY(%s) AND s.starts_at <= %s AND %s < s.ends_at"
            " ORDER BY p.id, c.id",
            (community_id, roles, at, at),
        ).fetchall()
        return [
            Recipient(int(p), int(c), str(k), str(a), str(s), str(lang))
            for p, c, k, a, s, lang in rows
        ]

    def _deliver(
        self,
        outbox_id: int,
        community_id: int,
        party: str | None,
        payload: dict[str, Any],
        attempts: int,
        notify: str | None = None,
    ) -> None:
        done = {
            r[0]
            for r in self.conn.execute(
                "SELECT channel_id FROM deliveries WHERE outbox_id = %s AND status = 'accepted'",
                (outbox_id,),
            )
        }
        targets = self.recipients(community_id, party, datetime.now(UTC), only=notify)
        body = orjson.dumps(payload)
        pending = 0
        for r in targets:
            if r.channel_id in done:
                continue
            if r.kind not in SENDERS or (r.kind == "email" and self.smtp is None):
                continue  # per-person MQTT comes with the rest of the notifier
            ok = self._send(outbox_id, r, payload, body, attempts)
            pending += 0 if ok else 1
        if targets and not pending:
            self.conn.execute(
                "UPDATE outbox SET done_at = clock_timestamp() WHERE id = %s", (outbox_id,)
            )
            return
        if not targets:
            log.warning(
                "outbox %s: nobody on duty for community %s (%s); retrying",
                outbox_id,
                community_id,
                party,
            )
        delay = backoff_s(attempts, base=self.backoff_base_s)
        self.conn.execute(
            "UPDATE outbox SET claimed_until = clock_timestamp() + make_interval(secs => %s) WHERE id = %s",
            (delay, outbox_id),
        )

    def _send(
        self, outbox_id: int, r: Recipient, payload: dict[str, Any], body: bytes, attempt: int
    ) -> bool:
        began = time.perf_counter()
        status: int | None = None
        try:
            ok, status, error = SENDERS[r.kind](self, outbox_id, r, payload, body)
        except (httpx.HTTPError, OSError, smtplib.SMTPException) as e:
            ok, error = False, f"{type(e).__name__}: {e}"
        latency = (time.perf_counter() - began) * 1000
        self.conn.execute(
            "INSERT INTO deliveries (outbox_id, person_id, channel_id, attempt, status, http_status, error,"
            " latency_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (
                outbox_id,
                r.person_id,
                r.channel_id,
                attempt,
                "accepted" if ok else "failed",
                status,
                error,
                latency,
            ),
        )
        return ok

    def _webhook(self, outbox_id: int, r: Recipient, _p: dict[str, Any], body: bytes) -> Sent:
        resp = self.http.post(
            r.address,
            content=body,
            headers=headers(r.secret, body, int(time.time()), f"{outbox_id}.{r.channel_id}"),
        )
        ok = 200 <= resp.status_code < 300
        return ok, resp.status_code, "" if ok else resp.text[:500]

    def _robot(self, outbox_id: int, r: Recipient, payload: dict[str, Any], _b: bytes) -> Sent:
        title, text = render(payload, r.language)
        if r.kind == "wecom":
            url, msg = r.address, wecom_body(title, text)
        else:
            url, msg = (
                dingtalk_url(r.address, r.secret, int(time.time() * 1000)),
                dingtalk_body(title, text),
            )
        resp = self.http.post(url, json=msg)
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        ok = resp.status_code == 200 and robot_accepted(answer)
        return ok, resp.status_code, "" if ok else resp.text[:500]

    def _email(self, outbox_id: int, r: Recipient, payload: dict[str, Any], _b: bytes) -> Sent:
        assert self.smtp is not None
        title, text = render(payload, r.language)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = title, self.smtp.sender, r.address
        msg["Message-ID"] = make_msgid(idstring=f"shouwang.{outbox_id}.{r.channel_id}")
        msg.set_content(text)
        with smtplib.SMTP(self.smtp.host, self.smtp.port, timeout=10) as client:
            client.send_message(msg)
        return True, None, ""


Sent = tuple[bool, int | None, str]
SENDERS: dict[str, Callable[[Dispatcher, int, Recipient, dict[str, Any], bytes], Sent]] = {
    "webhook": Dispatcher._webhook,
    "wecom": Dispatcher._robot,
    "dingtalk": Dispatcher._robot,
    "email": Dispatcher._email,
}
