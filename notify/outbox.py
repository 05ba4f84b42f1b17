"""Notify: the outbox, in SQL. Claims the rows that are due with a lease, marks them done or
superseded, schedules a retry, logs every delivery attempt in ``deliveries``, forms batches of
the grouped severities, and writes the notifications that fall due with time: escalation steps
and reminders. I/O only: what a row says and who gets it are decided elsewhere.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, so several dispatchers share the
work without taking the same row, and a row whose dispatcher died is taken again once its lease
runs out. The accepted row in ``deliveries`` is unique per outbox row and channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from core.db import Conn
from notify.policy import Policy, group_key


@dataclass(frozen=True, slots=True)
class Claim:
    """An outbox row this dispatcher holds until its lease runs out."""

    id: int
    community_id: int
    party: str | None  # the responsible party
    payload: dict[str, Any]
    attempts: int  # this one included
    notify: str | None  # an escalation step's party: only they get it
    batch_id: int | None  # the batch's lead row, when batched
    kind: str
    alarm_id: int


def claim(conn: Conn, name: str, lease_s: float, grouped: list[str], limit: int) -> list[Claim]:
    """Claim up to ``limit`` rows that are due, in id order: not done, not leased, and either a
    batch's lead, an escalation, or a severity that is not grouped."""
    rows = conn.execute(
        "UPDATE outbox SET claimed_by = %s, claimed_until = clock_timestamp() + make_interval(secs => %s),"
        " attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL"
        " AND (claimed_until IS NULL OR claimed_until < clock_timestamp())"
        " AND (batch_id = id OR (batch_id IS NULL AND (kind = 'escalation'"
        " OR NOT severity = ANY(%s))))"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING id, community_id, responsible_party, payload, attempts, notify_party,"
        " batch_id, kind, alarm_id",
        (name, lease_s, grouped, limit),
    ).fetchall()
    return [
        Claim(int(i), int(c), party, payload, int(n), notify, batch, kind, int(alarm))
        for i, c, party, payload, n, notify, batch, kind, alarm in sorted(rows)
    ]


def alarm_settled(conn: Conn, alarm_id: int) -> bool:
    """Whether someone acknowledged the alarm or it cleared (or it is gone)."""
    row = conn.execute("SELECT state FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
    return row is None or row[0] != "active"


def batch_members(conn: Conn, lead: int) -> list[tuple[dict[str, Any], str]]:
    """(payload, alarm state) of every row in the batch led by ``lead``, in id order."""
    return conn.execute(
        "SELECT o.payload, a.state FROM outbox o JOIN alarms a ON a.id = o.alarm_id"
        " WHERE o.batch_id = %s ORDER BY o.id",
        (lead,),
    ).fetchall()


def finish(conn: Conn, outbox_id: int, *, superseded: bool = False) -> None:
    """Mark the row, and the rest of its batch, done."""
    conn.execute(
        "UPDATE outbox SET done_at = clock_timestamp(), superseded = superseded OR %s"
        " WHERE id = %s OR (batch_id = %s AND done_at IS NULL)",
        (superseded, outbox_id, outbox_id),
    )


def retry_in(conn: Conn, outbox_id: int, delay_s: float) -> None:
    """Keep the row leased for ``delay_s``: it is claimed again, by anyone, after that."""
    conn.execute(
        "UPDATE outbox SET claimed_until = clock_timestamp() + make_interval(secs => %s) WHERE id = %s",
        (delay_s, outbox_id),
    )


def accepted_channels(conn: Conn, outbox_id: int) -> set[int]:
    """The channels that already accepted this row: never sent it again."""
    return {
        int(r[0])
        for r in conn.execute(
            "SELECT channel_id FROM deliveries WHERE outbox_id = %s AND status = 'accepted'",
            (outbox_id,),
        )
    }


def log_delivery(
    conn: Conn,
    outbox_id: int,
    person_id: int,
    channel_id: int,
    attempt: int,
    *,
    ok: bool,
    http_status: int | None,
    error: str,
    latency_ms: float,
) -> None:
    """One attempt, accepted or failed, in ``deliveries``."""
    conn.execute(
        "INSERT INTO deliveries (outbox_id, person_id, channel_id, attempt, status, http_status, error,"
        " latency_ms) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            outbox_id,
            person_id,
            channel_id,
            attempt,
            "accepted" if ok else "failed",
            http_status,
            error,
            latency_ms,
        ),
    )


def fire_escalations(conn: Conn) -> int:
    """Turn escalation steps that fell due (not acknowledged, responded or closed meanwhile)
    into notifications to the step's party, in one transaction; return how many."""
    with conn.transaction():
        rows = conn.execute(
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
            conn.execute(
                "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
                " responsible_party, notify_party, payload)"
                " VALUES ('escalation', %s, %s, %s, %s, %s, %s, %s)",
                (alarm, wo, community, severity, party, party, Jsonb(payload)),
            )
            conn.execute(
                "UPDATE escalation_steps SET fired_at = clock_timestamp() WHERE work_order_id = %s"
                " AND step = %s",
                (wo, step),
            )
    return len(rows)


def fire_reminders(conn: Conn, every: Mapping[str, timedelta], now: datetime) -> int:
    """A reminder for every open alarm whose last notice to the people on duty is older than its
    severity's interval in ``every`` (at most one pending per alarm); return how many."""
    n = 0
    for severity, interval in sorted(every.items()):
        n += conn.execute(
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
            (severity, now - interval),
        ).rowcount
    return n


def form_batches(conn: Conn, p: Policy, now: datetime) -> int:
    """Batch the grouped notifications whose group wait and interval have passed and that quiet
    hours do not hold back, one batch per community, party and severity; return how many
    batches were formed. A batch's lead is its lowest row id."""
    if not p.grouped:
        return 0
    formed = 0
    with conn.transaction():
        groups = conn.execute(
            "SELECT community_id, coalesce(responsible_party, ''), severity FROM outbox"
            " WHERE done_at IS NULL AND batch_id IS NULL AND kind <> 'escalation'"
            " AND severity = ANY(%s) GROUP BY 1, 2, 3 HAVING min(created_at) <= %s",
            (sorted(p.grouped), now - p.group_wait),
        ).fetchall()
        for community_id, party, severity in groups:
            if p.held(severity, now):
                continue
            key = group_key(community_id, party, severity)
            conn.execute(
                "INSERT INTO notify_groups (group_key) VALUES (%s) ON CONFLICT DO NOTHING", (key,)
            )
            due = conn.execute(
                "SELECT 1 FROM notify_groups WHERE group_key = %s AND"
                " (last_sent_at IS NULL OR last_sent_at <= %s) FOR UPDATE SKIP LOCKED",
                (key, now - p.group_interval),
            ).fetchone()
            if due is None:
                continue
            batched = conn.execute(
                "UPDATE outbox SET batch_id = b.lead FROM (SELECT min(id) AS lead FROM outbox"
                " WHERE done_at IS NULL AND batch_id IS NULL AND kind <> 'escalation'"
                " AND community_id = %s AND coalesce(responsible_party, '') = %s"
                " AND severity = %s) b WHERE outbox.done_at IS NULL AND outbox.batch_id IS NULL"
                " AND outbox.kind <> 'escalation' AND outbox.community_id = %s"
                " AND coalesce(outbox.responsible_party, '') = %s AND outbox.severity = %s",
                (community_id, party, severity) * 2,
            ).rowcount
            if batched:
                conn.execute(
                    "UPDATE notify_groups SET last_sent_at = %s WHERE group_key = %s", (now, key)
                )
                formed += 1
    return formed
