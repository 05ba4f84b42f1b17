"""API (community notice board): what the board shows, read from the database as of ``now``.

Only what the county plan asks a community to publish: the property firm, its project lead and
complaint phone, service content and fees, the maintenance units under contract with the
contact each gave for the community, elevator maintenance spending per period, each elevator's
last service (maintenance windows, ``lifecycle.maintenance``, and recorded maintenance) with its
overdue flag, and counts of devices by state. Never residents, duty staff or their phones, the
name of whoever did a visit, device credentials or alarm details. Takes an open async
connection; nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import psycopg

from api.pages.board_rules import label
from api.pages.view import BEIJING
from lifecycle.maintenance import overdue

AConn = psycopg.AsyncConnection[Any]

SPENDING_SHOWN: Final = 8  # periods, newest first
# Recorded maintenance (maintenance_records, 0010) that counts as a scheduled service.
SERVICE_RECORDS: Final = ("routine", "quarterly", "half_yearly", "annual")
FIRE_CLASSES: Final = ("fire_panel", "fire_water", "electrical_fire")


@dataclass(frozen=True, slots=True)
class Fee:
    item_zh: str
    item_en: str
    amount_cny: Decimal
    unit: str
    note: str


@dataclass(frozen=True, slots=True)
class Unit:
    kind: str
    name_zh: str
    name_en: str
    phone: str | None  # the unit's public phone
    contact_name: str | None  # the contact it gave for this community
    contact_phone: str | None


@dataclass(frozen=True, slots=True)
class Spending:
    label: str
    start: date
    end: date
    amount_cny: Decimal
    note: str


@dataclass(frozen=True, slots=True)
class Elevator:
    code: str
    building: str | None
    location: str
    last_service: date | None  # Beijing date
    days_since: int | None
    overdue: bool
    last_inspection: date | None
    inspection_overdue: bool  # a recorded inspection more than a year ago


@dataclass(frozen=True, slots=True)
class FireSystem:
    device_class: str
    devices: int
    last_service: date | None


@dataclass(frozen=True, slots=True)
class DeviceState:
    device_class: str
    devices: int
    online: int
    alarming: int  # with an alarm not yet cleared


@dataclass(frozen=True, slots=True)
class Board:
    code: str
    name_zh: str
    name_en: str
    address: str
    firm_zh: str | None
    firm_en: str | None
    complaint_phone: str | None  # the board's own, else the firm's
    lead_name: str | None
    lead_phone: str | None
    service_zh: str
    service_en: str
    updated_at: datetime | None
    fees: list[Fee]
    units: list[Unit]
    spending: list[Spending]
    elevators: list[Elevator]
    fire_systems: list[FireSystem]
    devices: list[DeviceState]
    as_of: datetime

    @property
    def elevators_overdue(self) -> int:
        return sum(e.overdue for e in self.elevators)


_COMMUNITY: Final = """
SELECT c.id, c.code, c.name_zh, c.name_en, c.address, f.name_zh, f.name_en,
    coalesce(b.complaint_phone, f.complaint_phone), b.project_lead_name, b.project_lead_phone,
    coalesce(b.service_content_zh, ''), coalesce(b.service_content_en, ''), b.updated_at
FROM communities c LEFT JOIN firms f ON f.id = c.firm_id
LEFT JOIN notice_boards b ON b.community_id = c.id
WHERE c.code = %s
"""


async def board(conn: AConn, code: str, now: datetime) -> Board | None:
    """The notice board of community ``code`` as of ``now``; None when there is no such
    community."""
    cur = await conn.execute(_COMMUNITY, (code,))
    row = await cur.fetchone()
    if row is None:
        return None
    cid = int(row[0])
    return Board(
        code=row[1],
        name_zh=row[2],
        name_en=row[3],
        address=row[4],
        firm_zh=row[5],
        firm_en=row[6],
        complaint_phone=row[7],
        lead_name=row[8],
        lead_phone=row[9],
        service_zh=row[10],
        service_en=row[11],
        updated_at=row[12],
        fees=await _fees(conn, cid),
        units=await _units(conn, cid),
        spending=await _spending(conn, cid),
        elevators=await _elevators(conn, cid, now),
        fire_systems=await _fire_systems(conn, cid, now),
        devices=await _devices(conn, cid),
        as_of=now,
    )


async def _fees(conn: AConn, cid: int) -> list[Fee]:
    cur = await conn.execute(
        "SELECT item_zh, item_en, amount_cny, unit, note FROM notice_board_fees"
        " WHERE community_id = %s ORDER BY position",
        (cid,),
    )
    return [Fee(*r) for r in await cur.fetchall()]


async def _units(conn: AConn, cid: int) -> list[Unit]:
    """The units under contract, with the contact given for this community while that unit is
    still the one under contract."""
    cur = await conn.execute(
        "SELECT l.kind, u.name_zh, u.name_en, u.phone, k.contact_name, k.contact_phone"
        " FROM community_maintenance_units l JOIN maintenance_units u"
        "  ON u.id = l.maintenance_unit_id"
        " LEFT JOIN notice_board_contacts k ON k.community_id = l.community_id"
        "  AND k.kind = l.kind AND k.maintenance_unit_id = l.maintenance_unit_id"
        " WHERE l.community_id = %s"
        " ORDER BY array_position(ARRAY['elevator', 'fire', 'water'], l.kind)",
        (cid,),
    )
    return [Unit(*r) for r in await cur.fetchall()]


async def _spending(conn: AConn, cid: int) -> list[Spending]:
    cur = await conn.execute(
        "SELECT period_start, period_end, amount_cny, note FROM elevator_spending"
        " WHERE community_id = %s ORDER BY period_start DESC, period_end LIMIT %s",
        (cid, SPENDING_SHOWN),
    )
    return [Spending(label(s, e), s, e, a, n) for s, e, a, n in await cur.fetchall()]


# The latest visit of each kind per device: maintenance windows that have started by now and
# cover some time (as the view device_last_service, at a given time), and recorded maintenance.
_VISITS: Final = """
SELECT d.id, d.uid, b.name, d.location, d.device_class,
    greatest(
        (SELECT max(w.starts_at) FROM maintenance_window_devices m
         JOIN maintenance_windows w ON w.id = m.window_id
         WHERE m.device_id = d.id AND w.kind = 'service' AND w.starts_at <= %(now)s
           AND w.ends_at > w.starts_at),
        (SELECT max(r.performed_at) FROM maintenance_records r
         WHERE r.device_id = d.id AND r.kind = ANY(%(service)s) AND r.performed_at <= %(now)s)),
    greatest(
        (SELECT max(w.starts_at) FROM maintenance_window_devices m
         JOIN maintenance_windows w ON w.id = m.window_id
         WHERE m.device_id = d.id AND w.kind = 'annual_inspection' AND w.starts_at <= %(now)s
           AND w.ends_at > w.starts_at),
        (SELECT max(r.performed_at) FROM maintenance_records r
         WHERE r.device_id = d.id AND r.kind = 'annual_inspection'
           AND r.performed_at <= %(now)s))
FROM devices d LEFT JOIN buildings b ON b.id = d.building_id
WHERE d.community_id = %(cid)s AND d.active AND d.device_class = ANY(%(classes)s)
ORDER BY b.code NULLS LAST, length(d.uid), d.uid  -- E2 before E10
"""


def _local(t: datetime | None) -> date | None:
    return None if t is None else t.astimezone(BEIJING).date()


async def _visits(conn: AConn, cid: int, now: datetime, classes: list[str]) -> list[Any]:
    cur = await conn.execute(
        _VISITS, {"now": now, "service": list(SERVICE_RECORDS), "cid": cid, "classes": classes}
    )
    return await cur.fetchall()


async def _elevators(conn: AConn, cid: int, now: datetime) -> list[Elevator]:
    today = now.astimezone(BEIJING).date()
    out = []
    for _, uid, building, location, _, service, inspection in await _visits(
        conn, cid, now, ["elevator"]
    ):
        last = _local(service)
        out.append(
            Elevator(
                code=uid,
                building=building,
                location=location,
                last_service=last,
                days_since=None if last is None else (today - last).days,
                overdue=overdue("service", service, now),
                last_inspection=_local(inspection),
                inspection_overdue=inspection is not None
                and overdue("annual_inspection", inspection, now),
            )
        )
    return out


async def _fire_systems(conn: AConn, cid: int, now: datetime) -> list[FireSystem]:
    found: dict[str, tuple[int, datetime | None]] = {}
    for _, _, _, _, cls, service, _ in await _visits(conn, cid, now, list(FIRE_CLASSES)):
        n, last = found.get(cls, (0, None))
        if service is not None and (last is None or service > last):
            last = service
        found[cls] = (n + 1, last)
    return [
        FireSystem(cls, found[cls][0], _local(found[cls][1]))
        for cls in FIRE_CLASSES
        if cls in found
    ]


async def _devices(conn: AConn, cid: int) -> list[DeviceState]:
    cur = await conn.execute(
        "SELECT d.device_class, count(*), count(*) FILTER (WHERE p.online),"
        " count(*) FILTER (WHERE EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = d.id"
        "  AND a.state <> 'cleared'))"
        " FROM devices d LEFT JOIN device_presence p ON p.device_id = d.id"
        " WHERE d.community_id = %s AND d.active GROUP BY d.device_class ORDER BY d.device_class",
        (cid,),
    )
    return [DeviceState(c, int(n), int(on), int(al)) for c, n, on, al in await cur.fetchall()]
