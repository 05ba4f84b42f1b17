"""Analytics: the dispatcher. Delivers outbox rows to the people on duty, with retries.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, so several dispatchers share the
work without taking the same row, and a row whose dispatcher died is taken again once its lease
runs out. Every attempt is logged in ``deliveries``; a channel that accepted a notification is
never sent it again (the accepted row is unique per outbox row and channel). A dispatcher killed
between a channel accepting and the log recording it sends once more: the delivery id header is
the same on every retry, so the receiver drops the repeat.

Routing: the responsible party's role and the firm's duty staff, whoever is on shift for the
community now, over signed webhooks, WeCom and DingTalk robots, e-mail and the person's duty-app
MQTT topic, each message in the reader's language with a link to acknowledge. P0 goes out at
once; grouped severities are batched per community, party and severity (``policy``), quiet hours
hold the quiet ones back, reminders repeat until someone acknowledges, and a reminder or
escalation that falls due after the alarm was acknowledged or cleared is dropped.
"""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import httpx
import orjson
from psycopg.types.json import Jsonb

from core.db import Conn, connect
from core.settings import Settings
from core.wire import duty_topic
from lifecycle.acknowledge import make_token
from notify.duty_app import DutyApps
from notify.messages import render
from notify.policy import Policy, group_key, merge_batch
from notify.robots import dingtalk_body, dingtalk_url, robot_accepted, wecom_body
from notify.webhook import headers

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
    name: str = ""


@dataclass(frozen=True, slots=True)
class Smtp:
    host: str
    port: int
    sender: str


@dataclass(frozen=True, slots=True)
class AckLinks:
    """Signed, expiring, single-use acknowledgement links: ``<url>/<token>``."""

    secret: str
    url: str
    valid: timedelta = timedelta(hours=24)

    def link(self, alarm_id: int, person: str, now: datetime) -> str:
        expires = int((now + self.valid).timestamp())
        return f"{self.url.rstrip('/')}/{make_token(self.secret, alarm_id, person, expires)}"


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
        policy: Policy | None = None,
        ack: AckLinks | None = None,
        duty_apps: DutyApps | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        housekeeping_s: float = 1.0,
    ) -> None:
        self.conn: Conn = connect(database_url, autocommit=True, application_name=name)
        self.name, self.http, self.batch = name, http, batch
        self.lease_s, self.backoff_base_s, self.smtp = lease_s, backoff_base_s, smtp
        self.policy, self.ack, self.duty_apps, self.clock = (
            policy or Policy(),
            ack,
            duty_apps,
            clock,
        )
        self.housekeeping_s = housekeeping_s
        self._last_housekeeping = -1e9
        self._stop = threading.Event()

    def run(self, poll_s: float = 0.1) -> None:
        try:
            while not self._stop.is_set():
                if not self.run_once():
                    self._stop.wait(poll_s)
        finally:
            self.close()

    def close(self) -> None:
        self.conn.close()
        if self.duty_apps is not None:
            self.duty_apps.close()

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

    def fire_reminders(self) -> int:
        """A reminder for every open, unacknowledged alarm whose last notice to the people on
        duty is older than its severity's reminder interval; return how many."""
        now, n = self.clock(), 0
        for severity, every in sorted(self.policy.reminder_every.items()):
            n += self.conn.execute(
                "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
                " responsible_party, payload)"
                " SELECT 'reminder', o.alarm_id, o.work_order_id, o.community_id, a.severity,"
                " o.responsible_party, o.payload || jsonb_build_object('kind', 'reminder',"
                " 'severity', a.severity, 'reminder', (SELECT count(*) + 1 FROM outbox r"
                " WHERE r.alarm_id = a.id AND r.kind = 'reminder'))"
                " FROM alarms a JOIN LATERAL (SELECT * FROM outbox o WHERE o.alarm_id = a.id"
                " AND o.kind IN ('alarm_opened', 'alarm_raised', 'reminder')"
                " ORDER BY o.created_at DESC LIMIT 1) o ON true"
                " WHERE a.state = 'active' AND a.severity = %s AND o.created_at <= %s"
                " ON CONFLICT DO NOTHING",
                (severity, now - every),
            ).rowcount
        return n

    def form_batches(self) -> int:
        """Batch the grouped notifications whose group wait and interval have passed and that
        quiet hours do not hold back; return how many batches were formed."""
        now, p = self.clock(), self.policy
        if not p.grouped:
            return 0
        formed = 0
        with self.conn.transaction():
            groups = self.conn.execute(
                "SELECT community_id, coalesce(responsible_party, ''), severity FROM outbox"
                " WHERE done_at IS NULL AND batch_id IS NULL AND kind <> 'escalation'"
                " AND severity = ANY(%s) GROUP BY 1, 2, 3 HAVING min(created_at) <= %s",
                (sorted(p.grouped), now - p.group_wait),
            ).fetchall()
            for community_id, party, severity in groups:
                if p.held(severity, now):
                    continue
                key = group_key(community_id, party, severity)
                self.conn.execute(
                    "INSERT INTO notify_groups (group_key) VALUES (%s) ON CONFLICT DO NOTHING",
                    (key,),
                )
                due = self.conn.execute(
                    "SELECT 1 FROM notify_groups WHERE group_key = %s AND"
                    " (last_sent_at IS NULL OR last_sent_at <= %s) FOR UPDATE SKIP LOCKED",
                    (key, now - p.group_interval),
                ).fetchone()
                if due is None:
                    continue
                batched = self.conn.execute(
                    "UPDATE outbox SET batch_id = b.lead FROM (SELECT min(id) AS lead FROM outbox"
                    " WHERE done_at IS NULL AND batch_id IS NULL AND kind <> 'escalation'"
                    " AND community_id = %s AND coalesce(responsible_party, '') = %s"
                    " AND severity = %s) b WHERE outbox.done_at IS NULL AND outbox.batch_id IS NULL"
                    " AND outbox.kind <> 'escalation' AND outbox.community_id = %s"
                    " AND coalesce(outbox.responsible_party, '') = %s AND outbox.severity = %s",
                    (community_id, party, severity) * 2,
                ).rowcount
                if batched:
                    self.conn.execute(
                        "UPDATE notify_groups SET last_sent_at = %s WHERE group_key = %s",
                        (now, key),
                    )
                    formed += 1
        return formed

    def housekeeping(self) -> None:
        """Escalations, reminders and batches, at most every ``housekeeping_s``."""
        if time.monotonic() - self._last_housekeeping < self.housekeeping_s:
            return
        self._last_housekeeping = time.monotonic()
        self.fire_escalations()
        self.fire_reminders()
        self.form_batches()

    def run_once(self) -> int:
        """Housekeeping, then claim due rows and try each; return how many rows were tried."""
        self.housekeeping()
        grouped = sorted(self.policy.grouped)
        rows = self.conn.execute(
            "UPDATE outbox SET claimed_by = %s, claimed_until = clock_timestamp() + make_interval(secs => %s),"
            " attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL"
            " AND (claimed_until IS NULL OR claimed_until < clock_timestamp())"
            " AND (batch_id = id OR (batch_id IS NULL AND (kind = 'escalation'"
            " OR NOT severity = ANY(%s))))"
            " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, community_id, responsible_party, payload, attempts, notify_party,"
            " batch_id, kind, alarm_id",
            (self.name, self.lease_s, grouped, self.batch),
        ).fetchall()
        for oid, community_id, party, stored, attempts, notify, batch, kind, alarm in sorted(rows):
            outbox_id, payload = int(oid), stored
            if kind in ("reminder", "escalation") and self._settled(int(alarm)):
                self._finish(outbox_id, superseded=True)
                continue
            if batch is not None:
                payload = self._batch_payload(outbox_id)
                if payload is None:
                    self._finish(outbox_id, superseded=True)
                    continue
            self._deliver(outbox_id, int(community_id), party, payload, int(attempts), notify)
        return len(rows)

    def _settled(self, alarm_id: int) -> bool:
        """Whether someone acknowledged the alarm or it cleared: reminders and escalations stop."""
        row = self.conn.execute("SELECT state FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
        return row is None or row[0] != "active"

    def _batch_payload(self, lead: int) -> dict[str, Any] | None:
        """The message for a batch: the single notification, or a group of them without
        duplicates; None when nothing in it is still worth saying."""
        rows = self.conn.execute(
            "SELECT o.payload, a.state FROM outbox o JOIN alarms a ON a.id = o.alarm_id"
            " WHERE o.batch_id = %s ORDER BY o.id",
            (lead,),
        ).fetchall()
        items = merge_batch(
            [p for p, state in rows if not (p.get("kind") == "reminder" and state != "active")]
        )
        if not items:
            return None
        if len(items) == 1:
            return dict(items[0])
        first = items[0]
        return {
            "kind": "group",
            "severity": first.get("severity"),
            "community": first.get("community"),
            "responsible": first.get("responsible"),
            "count": len(items),
            "items": items,
        }

    def _finish(self, outbox_id: int, *, superseded: bool = False) -> None:
        """Mark the row, and the rest of its batch, done."""
        self.conn.execute(
            "UPDATE outbox SET done_at = clock_timestamp(), superseded = superseded OR %s"
            " WHERE id = %s OR (batch_id = %s AND done_at IS NULL)",
            (superseded, outbox_id, outbox_id),
        )

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
            "SELECT DISTINCT p.id, c.id, c.kind, c.address, coalesce(c.secret, ''), p.language,"
            " p.name"
            " FROM duty_shifts s JOIN people p ON p.id = s.person_id AND p.active"
            " JOIN contact_channels c ON c.person_id = p.id"
            " WHERE s.community_id = %s AND s.role = ANY(%s) AND s.starts_at <= %s AND %s < s.ends_at"
            " ORDER BY p.id, c.id",
            (community_id, roles, at, at),
        ).fetchall()
        return [
            Recipient(int(p), int(c), str(k), str(a), str(s), str(lang), str(n))
            for p, c, k, a, s, lang, n in rows
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
        now = self.clock()
        targets = self.recipients(community_id, party, now, only=notify)
        pending = 0
        for r in targets:
            if r.channel_id in done:
                continue
            if not self._can_send(r.kind):
                log.warning(
                    "outbox %s: no %s channel configured; skipping %s", outbox_id, r.kind, r
                )
                continue
            personal = self._with_ack_links(payload, r, now)
            ok = self._send(outbox_id, r, personal, orjson.dumps(personal), attempts)
            pending += 0 if ok else 1
        if targets and not pending:
            self._finish(outbox_id)
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

    def _can_send(self, kind: str) -> bool:
        if kind == "email":
            return self.smtp is not None
        if kind == "mqtt":
            return self.duty_apps is not None
        return kind in SENDERS

    def _with_ack_links(
        self, payload: dict[str, Any], r: Recipient, now: datetime
    ) -> dict[str, Any]:
        """The payload as this person receives it: each open alarm with their own link."""
        if self.ack is None:
            return payload
        ack = self.ack

        def linked(p: dict[str, Any]) -> dict[str, Any]:
            if p.get("kind") == "alarm_cleared" or p.get("alarm_id") is None:
                return p
            return {**p, "ack_url": ack.link(int(p["alarm_id"]), r.name or str(r.person_id), now)}

        if payload.get("kind") == "group":
            return {**payload, "items": [linked(p) for p in payload.get("items", [])]}
        return linked(payload)

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

    def _duty_app(self, outbox_id: int, r: Recipient, payload: dict[str, Any], _b: bytes) -> Sent:
        """The person's duty app: QoS 1 on its own topic; accepted once the broker has it."""
        assert self.duty_apps is not None
        title, text = render(payload, r.language)
        message = orjson.dumps(
            {"id": f"{outbox_id}.{r.channel_id}", "title": title, "text": text, **payload}
        )
        ok, error = self.duty_apps.publish(duty_topic(r.address), message)
        return ok, None, error


Sent = tuple[bool, int | None, str]
SENDERS: dict[str, Callable[[Dispatcher, int, Recipient, dict[str, Any], bytes], Sent]] = {
    "webhook": Dispatcher._webhook,
    "wecom": Dispatcher._robot,
    "dingtalk": Dispatcher._robot,
    "email": Dispatcher._email,
    "mqtt": Dispatcher._duty_app,
}


def from_settings(s: Settings, name: str, http: httpx.Client) -> Dispatcher:
    """A dispatcher configured as the settings say: policy, e-mail, duty apps, ack links."""
    policy = Policy.build(
        grouped=s.notify_grouped_severities,
        group_wait_s=s.notify_group_wait_s,
        group_interval_s=s.notify_group_interval_s,
        quiet_hours=s.notify_quiet_hours,
        quiet_severities=s.notify_quiet_severities,
        timezone=s.notify_timezone,
        reminder_minutes=s.notify_reminder_minutes,
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
        )
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
    )
