"""Notify: who gets a notification. The responsible party maps to a roster role; the people whose
duty shift covers the community in that role *now*, plus the firm's duty staff, get it, on each of
their contact channels. Overlapping shifts are handovers: both people get it. An escalation step
goes to the step's party only. A platform alarm goes to the people on a platform shift
(``platform_shifts``: the whole platform, no community) now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.db import Conn

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
    """One person on one of their contact channels."""

    person_id: int
    channel_id: int
    kind: str
    address: str = field(repr=False)  # a robot's URL is a credential
    secret: str = field(repr=False)
    language: str = "zh"
    name: str = ""


def roles(party: str | None, *, only: str | None = None) -> list[str]:
    """The roster roles to notify: the party's role and the firm's duty staff, or only the role
    of the party an escalation step names (pure)."""
    if only is not None:
        return [ROLE_OF_PARTY.get(only, only)]
    return sorted({"duty_staff", ROLE_OF_PARTY.get(party or "", "duty_staff")})


def on_duty(
    conn: Conn, community_id: int, party: str | None, at: datetime, *, only: str | None = None
) -> list[Recipient]:
    """The people on shift at ``at`` for the community in those roles, one entry per active
    person and contact channel, in person and channel order."""
    rows = conn.execute(
        "SELECT DISTINCT p.id, c.id, c.kind, c.address, coalesce(c.secret, ''), p.language,"
        " p.name"
        " FROM duty_shifts s JOIN people p ON p.id = s.person_id AND p.active"
        " JOIN contact_channels c ON c.person_id = p.id"
        " WHERE s.community_id = %s AND s.role = ANY(%s) AND s.starts_at <= %s AND %s < s.ends_at"
        " ORDER BY p.id, c.id",
        (community_id, roles(party, only=only), at, at),
    ).fetchall()
    return [
        Recipient(int(p), int(c), str(k), str(a), str(s), str(lang), str(n))
        for p, c, k, a, s, lang, n in rows
    ]


def platform_on_duty(conn: Conn, at: datetime) -> list[Recipient]:
    """The people on a platform shift at ``at``, one entry per active person and contact
    channel, in person and channel order."""
    rows = conn.execute(
        "SELECT DISTINCT p.id, c.id, c.kind, c.address, coalesce(c.secret, ''), p.language,"
        " p.name"
        " FROM platform_shifts s JOIN people p ON p.id = s.person_id AND p.active"
        " JOIN contact_channels c ON c.person_id = p.id"
        " WHERE s.starts_at <= %s AND %s < s.ends_at"
        " ORDER BY p.id, c.id",
        (at, at),
    ).fetchall()
    return [
        Recipient(int(p), int(c), str(k), str(a), str(s), str(lang), str(n))
        for p, c, k, a, s, lang, n in rows
    ]
