"""Lifecycle: a resident's complaint or repair request becomes a work order (I/O).

The notice board's complaint form (``api.pages.complaints``) files it against a complaint entry
of the responsibility list (``kind: complaint``): the work order has no alarm and no device
(``source = 'complaint'``), its deadlines come from the entry's limits on the working calendar
(``lifecycle.deadlines``), and it then moves through ``lifecycle.work_orders`` like any other.
The resident follows it by an unguessable tracking code; the phone number and the client
address's hash are for the firm and the rate limits only (:func:`recent`). In the same
transaction a ``complaint_filed`` row in the outbox (:func:`notice`, without the phone) tells
the people on duty for the entry's responsible party (``notify``), and the entry's escalation
steps, if it has any, are scheduled as for an alarm's work order.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from psycopg.types.json import Jsonb

from core.db import Conn
from lifecycle.deadlines import Calendar, Plan, plan
from responsibility.model import Entry

ACTOR: Final = "resident (notice board)"
CODE_BYTES: Final = 10  # 80 random bits: 16 base32 characters


def new_tracking_code() -> str:
    """16 characters of base32 (A-Z, 2-7): what the resident gets to follow the complaint."""
    return base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode()


def client_hash(address: str) -> str:
    """The client address as the complaints table keeps it: hashed, for rate limits only."""
    return hashlib.sha256(f"shouwang complaint client {address}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Community:
    id: int
    code: str
    name_zh: str
    name_en: str
    firm_id: int | None
    county_code: str | None


@dataclass(frozen=True, slots=True)
class Complaint:
    """What a resident sent, checked (``api.pages.complaint_form``)."""

    category: str  # the complaint entry's code
    location: str
    description: str
    phone: str  # digits only
    photo: tuple[str, bytes] | None  # (media type, bytes)


@dataclass(frozen=True, slots=True)
class Filed:
    complaint_id: int
    work_order_id: int
    tracking_code: str


def community(conn: Conn, code: str) -> Community | None:
    row = conn.execute(
        "SELECT id, code, name_zh, name_en, firm_id, county_of_region(region_id)"
        " FROM communities WHERE code = %s",
        (code,),
    ).fetchone()
    if row is None:
        return None
    return Community(int(row[0]), row[1], row[2], row[3], row[4], row[5])


def recent(conn: Conn, phone: str, client: str, since: datetime) -> tuple[int, int]:
    """Complaints filed since ``since`` from this phone number and from this client hash."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM complaints WHERE phone = %s AND filed_at > %s),"
        " (SELECT count(*) FROM complaints WHERE client_hash = %s AND filed_at > %s)",
        (phone, since, client, since),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


class RateLimited(Exception):
    def __init__(self, what: str, limit: int) -> None:
        super().__init__(what)
        self.what, self.limit = what, limit


def file_complaint(
    conn: Conn,
    where: Community,
    entry: Entry,
    complaint: Complaint,
    *,
    client: str,
    list_version: str,
    calendar: Calendar,
    at: datetime,
    per_phone_hour: int,
    per_client_hour: int,
) -> Filed:
    """File ``complaint`` in community ``where`` against ``entry`` (a complaint entry) as of
    ``at``: the work order and the complaint in one transaction. Raises :class:`RateLimited`
    when this phone number or client (``client_hash``) already filed its share within the
    hour, ValueError for an entry that is not a complaint entry."""
    if not entry.is_complaint:
        raise ValueError(f"{entry.code} is not a complaint entry of the list")
    p = plan(entry, at, calendar)
    with conn.transaction():
        # One filing at a time per phone number: the count below stays true until commit.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('complaint:' || %s))", (complaint.phone,)
        )
        by_phone, by_client = recent(conn, complaint.phone, client, at - timedelta(hours=1))
        if by_phone >= per_phone_hour:
            raise RateLimited("phone", per_phone_hour)
        if by_client >= per_client_hour:
            raise RateLimited("client", per_client_hour)
        row = conn.execute(
            "INSERT INTO work_orders (source, community_id, firm_id, event_code, severity,"
            " responsible_party, supervisor, status, opened_at, response_due, arrival_due,"
            " resolution_due, emergency_fund, notify_regulator, list_version)"
            " VALUES ('complaint', %s, %s, %s, %s, %s, %s, 'occurred', %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            (
                where.id,
                where.firm_id,
                entry.code,
                str(entry.severity),
                str(entry.responsible),
                str(entry.supervisor),
                at,
                p.response_due,
                p.arrival_due,
                p.resolution_due,
                entry.emergency_fund,
                entry.notify_regulator,
                list_version,
            ),
        ).fetchone()
        assert row is not None
        wo = int(row[0])
        conn.execute(
            "INSERT INTO work_order_transitions (work_order_id, at, actor, from_status,"
            " to_status, note) VALUES (%s, %s, %s, NULL, 'occurred', 'complaint filed')",
            (wo, at, ACTOR),
        )
        code = new_tracking_code()
        photo_type, photo = complaint.photo or (None, None)
        row = conn.execute(
            "INSERT INTO complaints (tracking_code, community_id, work_order_id, category,"
            " location, description, photo_type, photo, phone, client_hash, filed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (
                code,
                where.id,
                wo,
                entry.code,
                complaint.location,
                complaint.description,
                photo_type,
                photo,
                complaint.phone,
                client,
                at,
            ),
        ).fetchone()
        assert row is not None
        if p.escalation:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO escalation_steps (work_order_id, step, notify, due_at)"
                    " VALUES (%s, %s, %s, %s)",
                    [(wo, step, party, due) for step, party, due in p.escalation],
                )
        conn.execute(
            "INSERT INTO outbox (kind, work_order_id, community_id, severity, responsible_party,"
            " payload) VALUES ('complaint_filed', %s, %s, %s, %s, %s)",
            (
                wo,
                where.id,
                str(entry.severity),
                str(entry.responsible),
                Jsonb(notice(where, entry, complaint, wo, at, p)),
            ),
        )
    return Filed(int(row[0]), wo, code)


def notice(
    where: Community, entry: Entry, complaint: Complaint, work_order_id: int, at: datetime, p: Plan
) -> dict[str, Any]:
    """The outbox payload of a filed complaint, for the people on duty (pure): the entry, the
    community, the place as the resident gave it and the deadlines; never the resident's phone,
    the complaint's text or its tracking code (the duty page, behind sign-in, has the rest)."""
    return {
        "kind": "complaint_filed",
        "work_order_id": work_order_id,
        "code": entry.code,
        "name": {"zh": entry.name.zh, "en": entry.name.en},
        "category": entry.code,
        "severity": str(entry.severity),
        "community": where.code,
        "community_name": where.name_zh,
        "community_name_en": where.name_en,
        "location": complaint.location,
        "responsible": str(entry.responsible),
        "opened_at": at.isoformat(),
        "deadlines": {
            "response": None if p.response_due is None else p.response_due.isoformat(),
            "arrival": None if p.arrival_due is None else p.arrival_due.isoformat(),
            "resolution": p.resolution_due.isoformat(),
        },
    }
