"""Notify: the outbox, in SQL. Claims the rows that are due with a lease, marks them done or
superseded, schedules a retry, logs every delivery attempt in ``deliveries``, forms batches of
the grouped severities, and writes the notifications that fall due with time: escalation steps
and reminders. I/O only: what a row says and who gets it are decided elsewhere.

Rows are claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, so several dispatchers share the
work without taking the same row, and a row whose dispatcher died is taken again once its lease
runs out; a dispatcher renews the leases of the rows it is still working on. The accepted row in
``deliveries`` is unique per outbox row and channel; a channel that accepted a row, or failed
permanently for it, is settled for that row.

A resident's complaint has rows of its own (``COMPLAINT_KINDS``): no alarm, its work order
instead; escalated like an alarm's work order while nobody has taken it on.

Platform notices (``platform_notices``, ``platform_deliveries``) are a second queue of the same
shape: notify writes one per platform alarm opening and clearing it sees in ``platform_alarms``
and delivers them to the platform operators on shift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg import sql
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
    alarm_id: int | None  # None: a complaint's notice (``COMPLAINT_KINDS``)
    severity: str = ""
    # Whose sends these are, for the per-firm bound: the community's property firm
    # ("firm:<id>"), or the community itself when it has none ("community:<id>").
    firm: str = ""
    work_order_id: int | None = None


@dataclass(frozen=True, slots=True)
class Queue:
    """A queue of notifications and its delivery log."""

    table: str
    deliveries: str
    ref: str  # the delivery log's column naming the queue's row
    prefix: str  # of delivery ids: "<prefix><row id>.<channel id>"

    def delivery(self, row_id: int, channel_id: int) -> str:
        return f"{self.prefix}{row_id}.{channel_id}"


OUTBOX = Queue("outbox", "deliveries", "outbox_id", "")
PLATFORM = Queue("platform_notices", "platform_deliveries", "notice_id", "p")
PLATFORM_FIRM = "platform"
COMPLAINT_KINDS = ("complaint_filed", "complaint_escalation")
"""The rows about a resident's complaint (``lifecycle.complaints``): no alarm, a work order."""
"""The platform operators' sends count as a firm of their own for the per-firm bound."""


def claim(
    conn: Conn,
    name: str,
    lease_s: float,
    grouped: list[str],
    limit: int,
    *,
    skip_firms: list[str] | None = None,
    exclude: list[int] | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` rows that are due, in id order: not done, not leased, and either a
    batch's lead, an escalation, or a severity that is not grouped; none of the firms in
    ``skip_firms`` (this dispatcher has enough of theirs in hand) and none of the ids in
    ``exclude`` (it is working on them)."""
    rows = conn.execute(
        "UPDATE outbox SET claimed_by = %s, claimed_until = clock_timestamp() + make_interval(secs => %s),"
        " attempts = attempts + 1 WHERE id IN (SELECT id FROM outbox WHERE done_at IS NULL"
        " AND (claimed_until IS NULL OR claimed_until < clock_timestamp())"
        " AND (batch_id = id OR (batch_id IS NULL AND (kind IN ('escalation', 'complaint_escalation')"
        " OR NOT severity = ANY(%s))))"
        " AND NOT id = ANY(%s) AND NOT coalesce('firm:' || (SELECT c.firm_id FROM communities c"
        " WHERE c.id = outbox.community_id), 'community:' || outbox.community_id) = ANY(%s)"
        " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING id, community_id, responsible_party, payload, attempts, notify_party,"
        " batch_id, kind, alarm_id, severity, coalesce('firm:' || (SELECT c.firm_id"
        " FROM communities c WHERE c.id = outbox.community_id), 'community:' || outbox.community_id),"
        " work_order_id",
        (name, lease_s, grouped, exclude or [], skip_firms or [], limit),
    ).fetchall()
    return [
        Claim(
            int(i),
            int(c),
            party,
            payload,
            int(n),
            notify,
            batch,
            kind,
            None if alarm is None else int(alarm),
            sev,
            firm,
            None if wo is None else int(wo),
        )
        for i, c, party, payload, n, notify, batch, kind, alarm, sev, firm, wo in sorted(rows)
    ]


def backlog(conn: Conn, grouped: list[str]) -> tuple[int, float]:
    """The rows due and not delivered, as :func:`claim` would take them (not done, not under a
    lease, not waiting for their batch), and the age in seconds of the oldest (0 if none)."""
    row = conn.execute(
        "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
        " FROM outbox WHERE done_at IS NULL"
        " AND (claimed_until IS NULL OR claimed_until < clock_timestamp())"
        " AND (batch_id = id OR (batch_id IS NULL AND (kind IN ('escalation', 'complaint_escalation')"
        " OR NOT severity = ANY(%s))))",
        (grouped,),
    ).fetchone()
    return (0, 0.0) if row is None else (int(row[0]), max(0.0, float(row[1])))


def alarm_settled(conn: Conn, alarm_id: int) -> bool:
    """Whether someone acknowledged the alarm or it cleared (or it is gone)."""
    row = conn.execute("SELECT state FROM alarms WHERE id = %s", (alarm_id,)).fetchone()
    return row is None or row[0] != "active"


def work_order_taken_on(conn: Conn, work_order_id: int | None) -> bool:
    """Whether someone took the work order on (responded), or it is closed (or gone): a
    complaint's escalation is no longer worth sending."""
    row = conn.execute(
        "SELECT responded_at IS NOT NULL OR closed_at IS NOT NULL OR status <> 'occurred'"
        " FROM work_orders WHERE id = %s",
        (work_order_id,),
    ).fetchone()
    return row is None or bool(row[0])


def alarm_in_maintenance(conn: Conn, alarm_id: int) -> bool:
    """Whether the alarm's device was under maintenance when the alarm opened (a maintenance
    window, ``lifecycle.maintenance``): such an alarm is shown but never notified."""
    row = conn.execute(
        "SELECT device_in_maintenance(device_id, opened_at) FROM alarms WHERE id = %s",
        (alarm_id,),
    ).fetchone()
    return bool(row and row[0])


def batch_members(conn: Conn, lead: int) -> list[tuple[dict[str, Any], str]]:
    """(payload, alarm state) of every row in the batch led by ``lead``, in id order, but those
    of alarms that opened during a maintenance window of their device; a complaint's notice
    (no alarm) has the state ``""``."""
    return conn.execute(
        "SELECT o.payload, coalesce(a.state, '') FROM outbox o"
        " LEFT JOIN alarms a ON a.id = o.alarm_id"
        " WHERE o.batch_id = %s"
        " AND (a.id IS NULL OR NOT device_in_maintenance(a.device_id, a.opened_at))"
        " ORDER BY o.id",
        (lead,),
    ).fetchall()


def finish(
    conn: Conn,
    row_id: int,
    *,
    superseded: bool = False,
    undeliverable: bool = False,
    q: Queue = OUTBOX,
) -> None:
    """Mark the row, and the rest of its batch (outbox), done."""
    if q is OUTBOX:
        conn.execute(
            "UPDATE outbox SET done_at = clock_timestamp(), superseded = superseded OR %s,"
            " undeliverable = undeliverable OR %s"
            " WHERE id = %s OR (batch_id = %s AND done_at IS NULL)",
            (superseded, undeliverable, row_id, row_id),
        )
        return
    conn.execute(
        sql.SQL(
            "UPDATE {} SET done_at = clock_timestamp(), superseded = superseded OR %s,"
            " undeliverable = undeliverable OR %s WHERE id = %s"
        ).format(sql.Identifier(q.table)),
        (superseded, undeliverable, row_id),
    )


def retry_in(conn: Conn, row_id: int, delay_s: float, *, q: Queue = OUTBOX) -> None:
    """Keep the row leased for ``delay_s``: it is claimed again, by anyone, after that."""
    conn.execute(
        sql.SQL(
            "UPDATE {} SET claimed_until = clock_timestamp() + make_interval(secs => %s)"
            " WHERE id = %s"
        ).format(sql.Identifier(q.table)),
        (delay_s, row_id),
    )


def renew(conn: Conn, name: str, lease_s: float, ids: list[int], *, q: Queue = OUTBOX) -> set[int]:
    """Extend this dispatcher's lease on the rows it is still working on; return those it
    still holds (a row another dispatcher took meanwhile is not among them)."""
    if not ids:
        return set()
    rows = conn.execute(
        sql.SQL(
            "UPDATE {} SET claimed_until = clock_timestamp() + make_interval(secs => %s)"
            " WHERE id = ANY(%s) AND claimed_by = %s AND done_at IS NULL RETURNING id"
        ).format(sql.Identifier(q.table)),
        (lease_s, ids, name),
    ).fetchall()
    return {int(r[0]) for r in rows}


def release(conn: Conn, name: str, ids: list[int], *, q: Queue = OUTBOX) -> None:
    """Give rows back at once (a dispatcher stopping): anyone may claim them now."""
    if ids:
        conn.execute(
            sql.SQL(
                "UPDATE {} SET claimed_until = clock_timestamp() WHERE id = ANY(%s)"
                " AND claimed_by = %s AND done_at IS NULL"
            ).format(sql.Identifier(q.table)),
            (ids, name),
        )


def settled_channels(conn: Conn, row_id: int, *, q: Queue = OUTBOX) -> dict[int, bool]:
    """The channels done with this row, each with whether it accepted it (else it failed
    permanently): never sent it again."""
    rows = conn.execute(
        sql.SQL(
            "SELECT channel_id, bool_or(status = 'accepted') FROM {} WHERE {} = %s"
            " AND (status = 'accepted' OR permanent) GROUP BY channel_id"
        ).format(sql.Identifier(q.deliveries), sql.Identifier(q.ref)),
        (row_id,),
    ).fetchall()
    return {int(c): bool(a) for c, a in rows}


def accepted_channels(conn: Conn, row_id: int, *, q: Queue = OUTBOX) -> set[int]:
    """The channels that already accepted this row."""
    return {c for c, ok in settled_channels(conn, row_id, q=q).items() if ok}


def storable(text: str, limit: int = 2000) -> str:
    """Text as the database takes it: no NUL, no lone surrogates, at most ``limit`` chars."""
    text = text[:limit].replace("\x00", "\\0")
    return text.encode("utf-8", errors="replace").decode("utf-8")


def log_delivery(
    conn: Conn,
    row_id: int,
    person_id: int,
    channel_id: int,
    attempt: int,
    *,
    ok: bool,
    http_status: int | None,
    error: str,
    latency_ms: float,
    permanent: bool = False,
    q: Queue = OUTBOX,
    request_id: str = "",
    provider_status: str = "",
) -> None:
    """One attempt, accepted or failed (permanently or not), in the queue's delivery log, with
    the provider's request id and status when it has them (SMS, voice)."""
    conn.execute(
        sql.SQL(
            "INSERT INTO {} ({}, person_id, channel_id, attempt, status, permanent, http_status,"
            " error, latency_ms, provider_request_id, provider_status)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
        ).format(sql.Identifier(q.deliveries), sql.Identifier(q.ref)),
        (
            row_id,
            person_id,
            channel_id,
            attempt,
            "accepted" if ok else "failed",
            permanent and not ok,
            http_status if http_status is None or -(2**31) <= http_status < 2**31 else None,
            storable(error),
            latency_ms,
            storable(request_id, 128) or None,
            storable(provider_status, 64) or None,
        ),
    )


@dataclass(frozen=True, slots=True)
class PlatformClaim:
    """A platform notice this dispatcher holds until its lease runs out."""

    id: int
    kind: str
    severity: str
    payload: dict[str, Any]
    attempts: int  # this one included
    platform_alarm_id: int


def note_platform_alarms(conn: Conn, *, within_days: float = 30.0) -> int:
    """A notice for every platform alarm's opening and clearing that has none yet (both, the
    opening first, for an alarm that opened and cleared unseen); return how many were written.
    Alarms cleared more than ``within_days`` ago are not looked at."""
    return conn.execute(
        "INSERT INTO platform_notices (platform_alarm_id, alarm_opened_at, kind, severity, payload)"
        " SELECT a.id, a.opened_at, k.kind, a.severity, jsonb_strip_nulls(jsonb_build_object("
        " 'kind', k.kind, 'platform_alarm_id', a.id, 'alarm', a.kind, 'subject', a.subject,"
        " 'severity', a.severity, 'opened_at', a.opened_at, 'triggers', a.triggers,"
        " 'detail', a.detail,"
        " 'cleared_at', CASE WHEN k.ord = 1 THEN a.cleared_at END,"
        " 'cleared_reason', CASE WHEN k.ord = 1 THEN a.cleared_reason END))"
        " FROM platform_alarms a CROSS JOIN (VALUES ('platform_alarm_opened', 0),"
        " ('platform_alarm_cleared', 1)) AS k (kind, ord)"
        " WHERE (k.ord = 0 OR a.state = 'cleared')"
        " AND (a.state <> 'cleared'"
        " OR coalesce(a.cleared_at, clock_timestamp()) > clock_timestamp() - make_interval(days => %s))"
        " AND NOT EXISTS (SELECT 1 FROM platform_notices n WHERE n.platform_alarm_id = a.id"
        " AND n.alarm_opened_at = a.opened_at AND n.kind = k.kind)"
        " ORDER BY a.id, k.ord ON CONFLICT DO NOTHING",
        (int(within_days),),
    ).rowcount


def claim_platform(
    conn: Conn, name: str, lease_s: float, limit: int, *, exclude: list[int] | None = None
) -> list[PlatformClaim]:
    """Claim up to ``limit`` platform notices that are due, in id order; a clearing waits until
    its alarm's opening is done, so nobody hears of the clearing first."""
    rows = conn.execute(
        "UPDATE platform_notices SET claimed_by = %s,"
        " claimed_until = clock_timestamp() + make_interval(secs => %s), attempts = attempts + 1"
        " WHERE id IN (SELECT n.id FROM platform_notices n WHERE n.done_at IS NULL"
        " AND (n.claimed_until IS NULL OR n.claimed_until < clock_timestamp())"
        " AND NOT n.id = ANY(%s)"
        " AND NOT (n.kind = 'platform_alarm_cleared' AND EXISTS (SELECT 1 FROM platform_notices e"
        " WHERE e.platform_alarm_id = n.platform_alarm_id AND e.alarm_opened_at = n.alarm_opened_at"
        " AND e.kind = 'platform_alarm_opened' AND e.done_at IS NULL))"
        " ORDER BY n.id LIMIT %s FOR UPDATE OF n SKIP LOCKED)"
        " RETURNING id, kind, severity, payload, attempts, platform_alarm_id",
        (name, lease_s, exclude or [], limit),
    ).fetchall()
    return [
        PlatformClaim(int(i), kind, sev, payload, int(n), int(alarm))
        for i, kind, sev, payload, n, alarm in sorted(rows)
    ]


def fire_escalations(conn: Conn) -> int:
    """Turn escalation steps that fell due (not acknowledged, responded or closed meanwhile)
    into notifications to the step's party, in one transaction; return how many. A complaint's
    work order (no alarm, no device) escalates as a ``complaint_escalation``, its notice's
    payload with the step."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT s.work_order_id, s.step, s.notify, w.alarm_id, w.community_id, w.severity,"
            " w.event_code, w.opened_at, d.uid, w.source = 'complaint',"
            " (SELECT o.payload FROM outbox o WHERE o.work_order_id = w.id"
            "  AND o.kind = 'complaint_filed' AND w.source = 'complaint')"
            " FROM escalation_steps s JOIN work_orders w ON w.id = s.work_order_id"
            " LEFT JOIN devices d ON d.id = w.device_id"
            " WHERE s.fired_at IS NULL AND s.cancelled_at IS NULL AND s.due_at <= clock_timestamp()"
            " AND (d.id IS NOT NULL OR w.source = 'complaint')"
            " ORDER BY s.due_at LIMIT 100 FOR UPDATE OF s SKIP LOCKED"
        ).fetchall()
        for (
            wo,
            step,
            party,
            alarm,
            community,
            severity,
            code,
            opened,
            uid,
            complaint,
            filed,
        ) in rows:
            payload: dict[str, Any] = {
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
            if complaint:
                del payload["alarm_id"], payload["device"]
                payload = {**(filed or {}), **payload, "kind": "complaint_escalation"}
                if filed:
                    payload["name"] = filed.get("name", payload["name"])
            conn.execute(
                "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
                " responsible_party, notify_party, payload)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (payload["kind"], alarm, wo, community, severity, party, party, Jsonb(payload)),
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


def fire_voice_calls(conn: Conn, after: timedelta, now: datetime) -> int:
    """A voice call for every active (unacknowledged) P0 alarm first announced at least
    ``after`` before ``now`` (one per alarm, ever); return how many."""
    return conn.execute(
        "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
        " responsible_party, payload)"
        " SELECT 'voice_call', o.alarm_id, o.work_order_id, o.community_id, a.severity,"
        " o.responsible_party, o.payload || jsonb_build_object('kind', 'voice_call',"
        " 'severity', a.severity)"
        " FROM alarms a JOIN LATERAL (SELECT * FROM outbox o WHERE o.alarm_id = a.id"
        " AND o.kind IN ('alarm_opened', 'alarm_raised') ORDER BY o.created_at LIMIT 1) o ON true"
        " WHERE a.state = 'active' AND a.severity = 'P0' AND o.created_at <= %s"
        " AND NOT EXISTS (SELECT 1 FROM outbox v WHERE v.alarm_id = a.id AND v.kind = 'voice_call')"
        " ON CONFLICT DO NOTHING",
        (now - after,),
    ).rowcount


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
            " WHERE done_at IS NULL AND batch_id IS NULL AND kind NOT IN ('escalation', 'complaint_escalation')"
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
                " WHERE done_at IS NULL AND batch_id IS NULL AND kind NOT IN ('escalation', 'complaint_escalation')"
                " AND community_id = %s AND coalesce(responsible_party, '') = %s"
                " AND severity = %s) b WHERE outbox.done_at IS NULL AND outbox.batch_id IS NULL"
                " AND outbox.kind NOT IN ('escalation', 'complaint_escalation')"
                " AND outbox.community_id = %s"
                " AND coalesce(outbox.responsible_party, '') = %s AND outbox.severity = %s",
                (community_id, party, severity) * 2,
            ).rowcount
            if batched:
                conn.execute(
                    "UPDATE notify_groups SET last_sent_at = %s WHERE group_key = %s", (now, key)
                )
                formed += 1
    return formed
