"""Notify: the dispatcher, the loop that delivers the outbox to the people on duty, with retries.

Each round: housekeeping (escalation steps and reminders that fell due, batches of the grouped
severities, ``notify.outbox``), then claim the rows that are due and deliver each to whoever is on
shift for it (``notify.recipients``) on every channel of theirs (``notify.channels``), each copy
with that person's acknowledgement links (``notify.ack_links``). Every attempt is logged in
``deliveries``; a channel that accepted a notification is never sent it again. A row not yet
accepted everywhere is retried with exponential backoff. A dispatcher killed between a channel
accepting and the log recording it sends once more: the delivery id is the same on every retry,
so the receiver drops the repeat.

P0 goes out at once; grouped severities go out in batches, quiet hours hold the quiet ones back
(``notify.policy``); reminders repeat until someone acknowledges, and a reminder or escalation
that falls due after the alarm was acknowledged or cleared is dropped as superseded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.db import Conn, connect
from core.settings import Settings
from notify import outbox
from notify.ack_links import AckLinks
from notify.channels import Smtp, attempt, configured
from notify.duty_app import DutyApps
from notify.policy import Policy, batch_message
from notify.recipients import Recipient, on_duty

log = logging.getLogger("shouwang.notify")


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
        self.name, self.batch = name, batch
        self.lease_s, self.backoff_base_s = lease_s, backoff_base_s
        self.channels = configured(http, smtp, duty_apps)
        self.policy, self.ack, self.clock = policy or Policy(), ack, clock
        self.duty_apps = duty_apps  # closed with the dispatcher
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
        return outbox.fire_escalations(self.conn)

    def fire_reminders(self) -> int:
        return outbox.fire_reminders(self.conn, self.policy.reminder_every, self.clock())

    def form_batches(self) -> int:
        return outbox.form_batches(self.conn, self.policy, self.clock())

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
        claims = outbox.claim(self.conn, self.name, self.lease_s, grouped, self.batch)
        for c in claims:
            payload = self._message(c)
            if payload is None:
                outbox.finish(self.conn, c.id, superseded=True)
            else:
                self._deliver(c, payload)
        return len(claims)

    def _message(self, c: outbox.Claim) -> dict[str, Any] | None:
        """What a claimed row says now: None when it is no longer worth saying (a reminder or
        escalation for a settled alarm, a batch with nothing left in it)."""
        if c.kind in ("reminder", "escalation") and outbox.alarm_settled(self.conn, c.alarm_id):
            return None
        if c.batch_id is None:
            return c.payload
        return batch_message(outbox.batch_members(self.conn, c.id))

    def recipients(
        self, community_id: int, party: str | None, at: datetime, *, only: str | None = None
    ) -> list[Recipient]:
        """The people to notify: the party's role and the firm's duty staff, or only the party
        named by an escalation step."""
        return on_duty(self.conn, community_id, party, at, only=only)

    def _deliver(self, c: outbox.Claim, payload: dict[str, Any]) -> None:
        """Send to every recipient channel that has not accepted it yet; done once all have,
        otherwise retried after a backoff."""
        done = outbox.accepted_channels(self.conn, c.id)
        now = self.clock()
        targets = self.recipients(c.community_id, c.party, now, only=c.notify)
        pending = 0
        for r in targets:
            if r.channel_id in done:
                continue
            channel = self.channels.get(r.kind)
            if channel is None:
                log.warning("outbox %s: no %s channel configured; skipping %s", c.id, r.kind, r)
                continue
            personal = payload
            if self.ack is not None:
                personal = self.ack.personal(payload, r.name or str(r.person_id), now)
            a = attempt(channel, c.id, r, personal)
            outbox.log_delivery(
                self.conn,
                c.id,
                r.person_id,
                r.channel_id,
                c.attempts,
                ok=a.ok,
                http_status=a.http_status,
                error=a.error,
                latency_ms=a.latency_ms,
            )
            pending += 0 if a.ok else 1
        if targets and not pending:
            outbox.finish(self.conn, c.id)
            return
        if not targets:
            log.warning(
                "outbox %s: nobody on duty for community %s (%s); retrying",
                c.id,
                c.community_id,
                c.party,
            )
        outbox.retry_in(self.conn, c.id, backoff_s(c.attempts, base=self.backoff_base_s))


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
