"""API: public disclosure of each community's maintenance (no login), as the county plan requires.

Per community: the property firm and its complaint phone, the elevator / fire / water
maintenance units and their public phones, the last maintenance of each elevator and fire
system, elevator maintenance expenditure when recorded, and the work orders of the last complete
calendar quarter (UTC+8) by type with the share closed within limits (``api.sla``), and the
residents' complaints of that quarter apart from them (received, handled in time, late).

Only public fields leave this module: codes and names, never database ids, device credentials,
attributes or people's contacts. Work-order types are named as the responsibility list in force
names them for the community (the route passes the list, ``responsibility.in_force``). Queries
take an open async connection; :func:`last_quarter` and the assembly are pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.sql import SQL
from pydantic import BaseModel, Field

from api.performance import Complaints, complaint_summary
from api.sla import (
    COMPLAINT_COUNTS,
    COMPLAINT_PER_ORDER,
    LIMIT_OUTCOMES,
    NOT_IN_MAINTENANCE,
    share,
)
from core.workcalendar import SHANGHAI
from responsibility.loader import ResponsibilityList, default_list
from responsibility.model import Entry

AConn = AsyncConnection[TupleRow]

ELEVATOR_SERVICE_DAYS: Final = 15  # half-monthly service, overdue after 15 days (domain §2)
SERVICE_KINDS: Final = ("routine", "quarterly", "half_yearly", "annual")
FIRE_CLASSES: Final = ("fire_panel", "fire_water", "electrical_fire")


class Region(BaseModel):
    code: str
    name_zh: str
    name_en: str


class PropertyFirm(BaseModel):
    code: str
    name_zh: str
    name_en: str
    complaint_phone: str | None


class MaintenanceUnit(BaseModel):
    kind: str = Field(description="elevator, fire or water")
    code: str
    name_zh: str
    name_en: str
    phone: str | None = Field(description="the unit's public phone")


class CommunitySummary(BaseModel):
    code: str
    name_zh: str
    name_en: str
    address: str
    region: Region
    property_firm: PropertyFirm | None
    maintenance_units: list[MaintenanceUnit]


class ElevatorMaintenance(BaseModel):
    code: str
    building: str | None
    location: str
    last_service: date | None = Field(description="last scheduled service (local date)")
    days_since_service: int | None
    service_overdue: bool = Field(
        description=f"no scheduled service within the last {ELEVATOR_SERVICE_DAYS} days"
    )
    last_annual_inspection: date | None
    last_repair: date | None


class FireSystemMaintenance(BaseModel):
    system: str = Field(description="fire_panel, fire_water or electrical_fire")
    devices: int
    last_service: date | None = Field(description="latest scheduled service of any of them")


class Period(BaseModel):
    label: str = Field(description="e.g. 2026Q3")
    start: date
    end: date = Field(description="exclusive")


class Expenditure(BaseModel):
    period: Period
    total_cny: float
    visits_with_cost: int


class WorkOrderType(BaseModel):
    event_code: str
    name_zh: str
    name_en: str
    severity: str
    work_orders: int


class IncidentSummary(BaseModel):
    period: Period
    work_orders: int
    false_alarms: int
    closed_within_limits: int
    share_closed_within_limits: float | None = Field(
        description="closed within every limit / work orders that were not false alarms"
    )
    by_type: list[WorkOrderType]


class ComplaintSummary(Complaints):
    period: Period


class CommunityDisclosure(CommunitySummary):
    elevators: list[ElevatorMaintenance]
    fire_systems: list[FireSystemMaintenance]
    elevator_expenditure: Expenditure | None = Field(
        description="recorded elevator maintenance costs in the period; null when none recorded"
    )
    incidents: IncidentSummary = Field(description="work orders from alarms (not complaints)")
    complaints: ComplaintSummary = Field(description="residents' complaints, counted apart")
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Quarter:
    year: int
    q: int

    @property
    def start(self) -> date:
        return date(self.year, 3 * self.q - 2, 1)

    @property
    def end(self) -> date:
        return date(self.year + 1, 1, 1) if self.q == 4 else date(self.year, 3 * self.q + 1, 1)

    def period(self) -> Period:
        return Period(label=f"{self.year}Q{self.q}", start=self.start, end=self.end)

    def bounds(self) -> tuple[datetime, datetime]:
        return local_midnight(self.start), local_midnight(self.end)


def local_midnight(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI)


def last_quarter(now: datetime) -> Quarter:
    """The last complete calendar quarter before ``now`` (local time, UTC+8)."""
    today = now.astimezone(SHANGHAI).date()
    current = (today.month - 1) // 3 + 1
    return Quarter(today.year - 1, 4) if current == 1 else Quarter(today.year, current - 1)


def local_date(t: datetime | None) -> date | None:
    return None if t is None else t.astimezone(SHANGHAI).date()


_COMMUNITY = """
SELECT c.id, c.code, c.name_zh, c.name_en, c.address, r.code, r.name_zh, r.name_en,
       f.code, f.name_zh, f.name_en, f.complaint_phone, county_of_region(c.region_id)
FROM communities c JOIN regions r ON r.id = c.region_id LEFT JOIN firms f ON f.id = c.firm_id
"""


def _summary(row: TupleRow, units: list[MaintenanceUnit]) -> CommunitySummary:
    _, code, zh, en, address, r_code, r_zh, r_en, f_code, f_zh, f_en, f_phone, _county = row
    firm = None
    if f_code is not None:
        firm = PropertyFirm(code=f_code, name_zh=f_zh, name_en=f_en, complaint_phone=f_phone)
    return CommunitySummary(
        code=code,
        name_zh=zh,
        name_en=en,
        address=address,
        region=Region(code=r_code, name_zh=r_zh, name_en=r_en),
        property_firm=firm,
        maintenance_units=units,
    )


async def _units(conn: AConn, community_ids: list[int]) -> dict[int, list[MaintenanceUnit]]:
    cur = await conn.execute(
        "SELECT l.community_id, l.kind, u.code, u.name_zh, u.name_en, u.phone"
        " FROM community_maintenance_units l JOIN maintenance_units u ON u.id = l.maintenance_unit_id"
        " WHERE l.community_id = ANY(%s) ORDER BY l.community_id, l.kind",
        (community_ids,),
    )
    out: dict[int, list[MaintenanceUnit]] = {i: [] for i in community_ids}
    for cid, kind, code, zh, en, phone in await cur.fetchall():
        out[cid].append(MaintenanceUnit(kind=kind, code=code, name_zh=zh, name_en=en, phone=phone))
    return out


async def list_communities(
    conn: AConn, *, limit: int, after: str | None = None
) -> list[CommunitySummary]:
    """Up to ``limit`` communities in code order, after the code ``after``."""
    cur = await conn.execute(
        _COMMUNITY + " WHERE %(after)s::text IS NULL OR c.code > %(after)s"
        " ORDER BY c.code LIMIT %(limit)s",
        {"after": after, "limit": limit},
    )
    rows = await cur.fetchall()
    units = await _units(conn, [int(r[0]) for r in rows])
    return [_summary(r, units[int(r[0])]) for r in rows]


async def community_disclosure(
    conn: AConn, code: str, *, now: datetime, rules: ResponsibilityList | None = None
) -> CommunityDisclosure | None:
    """Everything disclosed about community ``code`` as of ``now``; None if there is none.
    ``rules``: the responsibility list in force, which names the work-order types (the shipped
    list when not given)."""
    cur = await conn.execute(_COMMUNITY + " WHERE c.code = %s", (code,))
    row = await cur.fetchone()
    if row is None:
        return None
    cid = int(row[0])
    summary = _summary(row, (await _units(conn, [cid]))[cid])
    names = (rules or default_list()).for_community(summary.code, row[12])
    quarter = last_quarter(now)
    return CommunityDisclosure(
        **summary.model_dump(),
        elevators=await _elevators(conn, cid, now),
        fire_systems=await _fire_systems(conn, cid, now),
        elevator_expenditure=await _expenditure(conn, cid, quarter),
        incidents=await _incidents(conn, cid, quarter, now, names),
        complaints=await _complaints(conn, cid, quarter, now),
        as_of=now,
    )


async def _elevators(conn: AConn, cid: int, now: datetime) -> list[ElevatorMaintenance]:
    cur = await conn.execute(
        "SELECT d.uid, b.name, d.location,"
        " max(m.performed_at) FILTER (WHERE m.kind = ANY(%(service)s)),"
        " max(m.performed_at) FILTER (WHERE m.kind = 'annual_inspection'),"
        " max(m.performed_at) FILTER (WHERE m.kind = 'repair')"
        " FROM devices d LEFT JOIN buildings b ON b.id = d.building_id"
        " LEFT JOIN maintenance_records m ON m.device_id = d.id AND m.performed_at <= %(now)s"
        " WHERE d.community_id = %(cid)s AND d.device_class = 'elevator' AND d.active"
        " GROUP BY d.id, b.name ORDER BY d.uid",
        {"service": list(SERVICE_KINDS), "now": now, "cid": cid},
    )
    today = now.astimezone(SHANGHAI).date()
    out = []
    for uid, building, location, service, inspection, repair in await cur.fetchall():
        last = local_date(service)
        days = None if last is None else (today - last).days
        out.append(
            ElevatorMaintenance(
                code=uid,
                building=building,
                location=location,
                last_service=last,
                days_since_service=days,
                service_overdue=service is None
                or now - service > timedelta(days=ELEVATOR_SERVICE_DAYS),
                last_annual_inspection=local_date(inspection),
                last_repair=local_date(repair),
            )
        )
    return out


async def _fire_systems(conn: AConn, cid: int, now: datetime) -> list[FireSystemMaintenance]:
    cur = await conn.execute(
        "SELECT d.device_class, count(DISTINCT d.id), max(m.performed_at)"
        " FROM devices d LEFT JOIN maintenance_records m"
        "  ON m.device_id = d.id AND m.kind = ANY(%s) AND m.performed_at <= %s"
        " WHERE d.community_id = %s AND d.device_class = ANY(%s) AND d.active"
        " GROUP BY d.device_class",
        (list(SERVICE_KINDS), now, cid, list(FIRE_CLASSES)),
    )
    found = {cls: (int(n), local_date(t)) for cls, n, t in await cur.fetchall()}
    return [
        FireSystemMaintenance(system=cls, devices=found[cls][0], last_service=found[cls][1])
        for cls in FIRE_CLASSES
        if cls in found
    ]


async def _expenditure(conn: AConn, cid: int, quarter: Quarter) -> Expenditure | None:
    start, end = quarter.bounds()
    cur = await conn.execute(
        "SELECT coalesce(sum(m.cost_cny), 0), count(m.cost_cny)"
        " FROM maintenance_records m JOIN devices d ON d.id = m.device_id"
        " WHERE d.community_id = %s AND d.device_class = 'elevator'"
        " AND m.performed_at >= %s AND m.performed_at < %s",
        (cid, start, end),
    )
    total, n = await cur.fetchone() or (Decimal(0), 0)
    if n == 0:
        return None
    return Expenditure(period=quarter.period(), total_cny=float(total), visits_with_cost=int(n))


async def _incidents(
    conn: AConn, cid: int, quarter: Quarter, now: datetime, names: Mapping[str, Entry]
) -> IncidentSummary:
    start, end = quarter.bounds()
    params: dict[str, object] = {"cid": cid, "start": start, "end": end, "now": now}
    scoped = SQL(
        "WITH scoped AS (SELECT * FROM work_orders w WHERE w.community_id = %(cid)s"
        " AND w.source = 'alarm' AND w.opened_at >= %(start)s AND w.opened_at < %(end)s AND {})"
    ).format(NOT_IN_MAINTENANCE)
    cur = await conn.execute(
        scoped
        + SQL(
            " SELECT event_code, severity, count(*) FROM scoped"
            " GROUP BY event_code, severity ORDER BY count(*) DESC, event_code, severity"
        ),
        params,
    )
    by_type = []
    for event_code, severity, n in await cur.fetchall():
        entry = names.get(event_code)
        by_type.append(
            WorkOrderType(
                event_code=event_code,
                name_zh=entry.name.zh if entry else event_code,
                name_en=entry.name.en if entry else event_code,
                severity=severity,
                work_orders=int(n),
            )
        )
    cur = await conn.execute(
        scoped
        + SQL(", outcomes AS (")
        + LIMIT_OUTCOMES
        + SQL(
            ") SELECT count(*), count(*) FILTER (WHERE w.status = 'false_alarm'),"
            " count(*) FILTER (WHERE w.status <> 'false_alarm' AND w.closed_at IS NOT NULL"
            "  AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.work_order_id = w.id"
            "  AND o.outcome = 'missed'))"
            " FROM scoped w"
        ),
        params,
    )
    total, false_alarms, within = await cur.fetchone() or (0, 0, 0)
    return IncidentSummary(
        period=quarter.period(),
        work_orders=int(total),
        false_alarms=int(false_alarms),
        closed_within_limits=int(within),
        share_closed_within_limits=share(int(within), int(total) - int(false_alarms)),
        by_type=by_type,
    )


_COMPLAINTS: Final = SQL(
    "WITH scoped AS (SELECT * FROM work_orders w WHERE w.source = 'complaint'"
    " AND w.community_id = %(cid)s AND w.opened_at >= %(start)s AND w.opened_at < %(end)s),"
    " outcomes AS ({}), {} SELECT {} FROM scoped w LEFT JOIN per_order p ON p.work_order_id = w.id"
).format(LIMIT_OUTCOMES, COMPLAINT_PER_ORDER, COMPLAINT_COUNTS)


async def _complaints(conn: AConn, cid: int, quarter: Quarter, now: datetime) -> ComplaintSummary:
    """The quarter's complaints from residents, counted as the firm-performance report counts
    them (``api.sla.COMPLAINT_COUNTS``); none of their text or phones."""
    start, end = quarter.bounds()
    cur = await conn.execute(_COMPLAINTS, {"cid": cid, "start": start, "end": end, "now": now})
    row = await cur.fetchone() or (0, 0, 0, 0, 0)
    received, closed, not_valid, in_time, late = (int(v) for v in row)
    counts = complaint_summary((received, closed, not_valid, in_time, late))
    return ComplaintSummary(period=quarter.period(), **counts.model_dump())
