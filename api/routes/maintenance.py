"""API: maintenance windows (``lifecycle.maintenance``): open, close early, list.

A firm opens windows for its communities' devices, a maintenance unit for the devices it
maintains; a device outside the caller's scope is not found (404), as for one that does not
exist. Alarms of a device that open inside one of its windows are shown (``in_maintenance`` on
the alarm) but not notified, and their work orders do not count in the SLA figures.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from psycopg import sql
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal, blocking
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.fields import INT4, BigId, Name, OptId, Text, aware
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_found, scalar
from api.scope import Action, Where, require
from core.db import Conn
from lifecycle import maintenance_windows as store
from lifecycle.maintenance import MAX_LENGTH, Kind, WindowError

router = APIRouter(tags=["maintenance windows"], responses=ERROR_RESPONSES)


class MaintenanceWindow(BaseModel):
    id: int
    community_id: int
    kind: str
    starts_at: datetime
    ends_at: datetime
    maintenance_unit_id: int | None
    performer: str
    work_done: str
    opened_by: str
    closed_at: datetime | None
    closed_by: str | None
    device_ids: list[int]
    active: bool = Field(description="it covers the time of the request")


class WindowIn(BaseModel):
    kind: Kind = Field(
        description="service (e.g. the half-monthly elevator service), annual_inspection, repair"
        " or fire_drill; each has its longest window (docs/maintenance.md)"
    )
    device_ids: list[Annotated[int, Field(ge=1, le=INT4)]] = Field(min_length=1, max_length=500)
    performer: Name = Field(description="who does the work: a person, or the unit's crew")
    work_done: Text = Field("", description="what is (or was) done on the visit")
    starts_at: datetime | None = Field(None, description="default now; at most 1 h in the past")
    ends_at: datetime | None = Field(None, description="default the kind's longest window")


class WindowClose(BaseModel):
    work_done: Text | None = Field(None, description="what was done, replacing what was said")


_SELECT = (
    "SELECT w.id, w.community_id, w.kind, w.starts_at, w.ends_at, w.maintenance_unit_id,"
    " w.performer, w.work_done, w.opened_by, w.closed_at, w.closed_by,"
    " array(SELECT m.device_id FROM maintenance_window_devices m WHERE m.window_id = w.id"
    " ORDER BY m.device_id) AS device_ids,"
    " (w.starts_at <= %(now)s AND %(now)s < w.ends_at) AS active"
    " FROM maintenance_windows w WHERE "
)


def _windows(w: Where, p: Principal) -> Where:
    """Windows the caller sees: a unit those with a device it maintains; others by community."""
    if p.role == "maintenance_unit":
        return w.add(
            "EXISTS (SELECT 1 FROM maintenance_window_devices m JOIN devices d"
            " ON d.id = m.device_id WHERE m.window_id = w.id"
            " AND d.maintenance_unit_id = %(scope_unit)s)",
            scope_unit=p.maintenance_unit_id,
        )
    return scope.communities(w, p, "w.community_id")


def _devices(w: Where, p: Principal) -> Where:
    """Devices the caller may open a window for: a unit those it maintains, a firm its
    communities'."""
    if p.role == "maintenance_unit":
        return w.add("d.maintenance_unit_id = %(scope_unit)s", scope_unit=p.maintenance_unit_id)
    return scope.communities(w, p, "d.community_id")


@router.get("/maintenance-windows", response_model=Page[MaintenanceWindow])
async def list_windows(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    device_id: OptId = None,
    kind: Annotated[Kind | None, Query()] = None,
    at: Annotated[datetime | None, Query(description="only windows covering this time")] = None,
) -> Page[MaintenanceWindow]:
    require(p, Action.READ_COMMUNITIES, Action.READ_WORK_ORDERS)
    w = _windows(Where(), p)
    w.add_if(community_id, "w.community_id = %(community)s", "community")
    w.add_if(kind, "w.kind = %(kind)s", "kind")
    w.add_if(
        device_id,
        "EXISTS (SELECT 1 FROM maintenance_window_devices x WHERE x.window_id = w.id"
        " AND x.device_id = %(device)s)",
        "device",
    )
    w.add_if(aware("at", at), "w.starts_at <= %(at)s AND %(at)s < w.ends_at", "at")
    w.add_if(paging.after_id(), "w.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY w.id LIMIT %(n)s")
    params = {**w.params, "n": paging.limit + 1, "now": datetime.now(UTC)}
    rows = await fetch_all(db, MaintenanceWindow, q, params)
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Principal, window_id: int) -> MaintenanceWindow:
    w = _windows(Where().add("w.id = %(id)s", id=window_id), p)
    q = sql.SQL(_SELECT) + w.sql()
    params = {**w.params, "now": datetime.now(UTC)}
    return await fetch_found(db, MaintenanceWindow, "maintenance window", q, params)


@router.get("/maintenance-windows/{window_id}")
async def get_window(db: Db, p: Caller, window_id: BigId) -> MaintenanceWindow:
    require(p, Action.READ_COMMUNITIES, Action.READ_WORK_ORDERS)
    return await _one(db, p, window_id)


@router.post("/maintenance-windows", status_code=201)
async def open_window(db: Db, p: Caller, request: Request, body: WindowIn) -> MaintenanceWindow:
    """Open a window for devices of one community. 422 names the field out of bounds; a device
    outside your scope is 404."""
    require(p, Action.WRITE_DEVICES, Action.WRITE_UNITS)
    ids = sorted(set(body.device_ids))
    w = _devices(Where().add("d.id = ANY(%(ids)s)", ids=ids), p)
    seen = await scalar(db, sql.SQL("SELECT count(*) FROM devices d WHERE ") + w.sql(), w.params)
    if int(seen or 0) != len(ids):
        raise not_found("device (one of device_ids)")
    now = datetime.now(UTC)
    starts_at = body.starts_at or now
    ends_at = body.ends_at or starts_at + MAX_LENGTH[body.kind]
    unit = p.maintenance_unit_id if p.role == "maintenance_unit" else None

    def run(c: Conn) -> int:
        return store.open_window(
            c,
            kind=body.kind,
            starts_at=starts_at,
            ends_at=ends_at,
            device_ids=body.device_ids,
            performer=body.performer,
            work_done=body.work_done,
            maintenance_unit_id=unit,
            opened_by=p.actor,
            now=now,
        )

    try:
        wid = await blocking(request, run)
    except WindowError as e:
        raise invalid(f"body.{e.field}", e.message) from None
    return await _one(db, p, wid)


@router.post("/maintenance-windows/{window_id}/close")
async def close_window(
    db: Db, p: Caller, request: Request, window_id: BigId, body: WindowClose | None = None
) -> MaintenanceWindow:
    """End a window now (one not yet started then covers nothing). 422 if it is already over."""
    require(p, Action.WRITE_DEVICES, Action.WRITE_UNITS)
    await _one(db, p, window_id)
    now = datetime.now(UTC)
    work_done = body.work_done if body else None

    def run(c: Conn) -> None:
        store.close(c, window_id, closed_by=p.actor, now=now, work_done=work_done)

    try:
        await blocking(request, run)
    except WindowError as e:
        raise invalid("path.window_id", e.message) from None
    return await _one(db, p, window_id)
