"""API: devices of the registry, addressed by their uid (which is also their MQTT username)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from api import scope
from api.broker import sync_broker
from api.deps import Caller, Db, Principal, blocking
from api.errors import ERROR_RESPONSES, invalid
from api.fields import DeviceUid, Label, OptId, RefId, Uid
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, require
from core.catalogue import DeviceClass
from core.db import Conn

router = APIRouter(tags=["devices"], responses=ERROR_RESPONSES)
Interval = Annotated[int, Field(ge=1, le=86_400, description="seconds between reports")]
Attributes = Annotated[dict[str, Any], Field(max_length=100)]


class Device(BaseModel):
    id: int
    uid: str
    device_class: str
    model: str
    community_id: int
    building_id: int | None
    location: str
    maintenance_unit_id: int | None
    gateway_id: int | None
    install_date: date | None
    report_interval_s: int
    attributes: dict[str, Any]
    active: bool
    created_at: datetime


class DeviceIn(BaseModel):
    uid: DeviceUid
    device_class: DeviceClass
    model: Label = ""
    community_id: RefId
    building_id: RefId | None = None
    location: Label = ""
    maintenance_unit_id: RefId | None = None
    gateway_id: RefId | None = None
    install_date: date | None = None
    report_interval_s: Interval = 10
    attributes: Attributes = {}


class DevicePatch(BaseModel):
    model: Label | None = None
    community_id: RefId | None = None
    building_id: RefId | None = None
    location: Label | None = None
    maintenance_unit_id: RefId | None = None
    gateway_id: RefId | None = None
    install_date: date | None = None
    report_interval_s: Interval | None = None
    attributes: Attributes | None = None
    active: bool | None = None


_COLUMNS = (
    "d.id, d.uid, d.device_class, d.model, d.community_id, d.building_id, d.location,"
    " d.maintenance_unit_id, d.gateway_id, d.install_date, d.report_interval_s, d.attributes,"
    " d.active, d.created_at"
)
_SELECT = f"SELECT {_COLUMNS} FROM devices d WHERE "  # noqa: S608 (fixed column list)


@router.get("/devices", response_model=Page[Device])
async def list_devices(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    building_id: OptId = None,
    maintenance_unit_id: OptId = None,
    device_class: Annotated[DeviceClass | None, Query()] = None,
    active: Annotated[bool | None, Query()] = None,
) -> Page[Device]:
    require(p, Action.READ_COMMUNITIES)
    w = scope.communities(Where(), p, "d.community_id")
    w.add_if(community_id, "d.community_id = %(community)s", "community")
    w.add_if(building_id, "d.building_id = %(building)s", "building")
    w.add_if(maintenance_unit_id, "d.maintenance_unit_id = %(unit)s", "unit")
    w.add_if(device_class, "d.device_class = %(cls)s", "cls")
    w.add_if(active, "d.active = %(active)s", "active")
    w.add_if(paging.after_id(), "d.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY d.id LIMIT %(n)s")
    rows = await fetch_all(db, Device, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def find(db: Db, p: Principal, uid: str) -> Device:
    """The device ``uid`` if the caller sees it; else 404."""
    w = scope.communities(Where().add("d.uid = %(uid)s", uid=uid), p, "d.community_id")
    return await fetch_found(db, Device, "device", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/devices/{uid}")
async def get_device(db: Db, p: Caller, uid: Uid) -> Device:
    require(p, Action.READ_COMMUNITIES)
    return await find(db, p, uid)


async def _check_refs(db: Db, p: Principal, community_id: int, refs: dict[str, Any]) -> None:
    """The community is the caller's; building and gateway are the community's; the unit exists."""
    if not p.sees_community(community_id) or not await scalar(
        db, "SELECT 1 FROM communities WHERE id = %s", (community_id,)
    ):
        raise invalid("body.community_id", "no such community in your scope")
    checks = (
        ("building_id", "SELECT 1 FROM buildings WHERE id = %s AND community_id = %s", True),
        ("gateway_id", "SELECT 1 FROM gateways WHERE id = %s AND community_id = %s", True),
        ("maintenance_unit_id", "SELECT 1 FROM maintenance_units WHERE id = %s", False),
    )
    for name, query, in_community in checks:
        value = refs.get(name)
        if value is None:
            continue
        args = (value, community_id) if in_community else (value,)
        if not await scalar(db, query, args):
            where = " of this community" if in_community else ""
            raise invalid(f"body.{name}", f"no such {name.removesuffix('_id')}{where}")


@router.post("/devices", status_code=201)
async def create_device(db: Db, p: Caller, body: DeviceIn) -> Device:
    """Register a device; issue its MQTT credential with ``POST /v1/devices/{uid}/credentials``."""
    require(p, Action.WRITE_DEVICES)
    values = body.model_dump()
    await _check_refs(db, p, body.community_id, values)
    await db.execute(
        "INSERT INTO devices (uid, device_class, model, community_id, building_id, location,"
        " maintenance_unit_id, gateway_id, install_date, report_interval_s, attributes)"
        " VALUES (%(uid)s, %(device_class)s, %(model)s, %(community_id)s, %(building_id)s,"
        " %(location)s, %(maintenance_unit_id)s, %(gateway_id)s, %(install_date)s,"
        " %(report_interval_s)s, %(attributes)s)",
        {**values, "device_class": str(body.device_class), "attributes": Jsonb(body.attributes)},
    )
    return await find(db, p, body.uid)


@router.patch("/devices/{uid}")
async def update_device(db: Db, p: Caller, request: Request, uid: Uid, body: DevicePatch) -> Device:
    """Change a device; ``active: false`` decommissions it (its credential stops working)."""
    require(p, Action.WRITE_DEVICES)
    dev = await find(db, p, uid)
    changes = body.model_dump(exclude_unset=True)
    for key in ("model", "community_id", "location", "report_interval_s", "attributes", "active"):
        if key in changes and changes[key] is None:
            del changes[key]
    community = changes.get("community_id", dev.community_id)
    refs = {k: v for k, v in changes.items() if k.endswith("_id")}
    if "community_id" in changes:  # a move: the building and gateway must come along
        refs.setdefault("building_id", dev.building_id)
        refs.setdefault("gateway_id", dev.gateway_id)
    await _check_refs(db, p, community, refs)
    if "attributes" in changes:
        changes["attributes"] = Jsonb(changes["attributes"])
    if changes:
        await db.execute(
            sql.SQL("UPDATE devices SET {} WHERE id = %(id)s").format(assignments(changes)),
            {**changes, "id": dev.id},
        )
    if "active" in changes and changes["active"] != dev.active:
        await _sync(request)
    w = Where().add("d.id = %(id)s", id=dev.id)
    return await fetch_found(db, Device, "device", sql.SQL(_SELECT) + w.sql(), w.params)


@router.delete("/devices/{uid}", status_code=204)
async def decommission_device(db: Db, p: Caller, request: Request, uid: Uid) -> Response:
    """Decommission: the device stays in the record with its history, marked inactive; its
    credential no longer opens the broker."""
    require(p, Action.WRITE_DEVICES)
    dev = await find(db, p, uid)
    await db.execute("UPDATE devices SET active = false WHERE id = %s", (dev.id,))
    await _sync(request)
    return Response(status_code=204)


async def _sync(request: Request) -> None:
    settings = request.app.state.settings

    def run(c: Conn) -> None:
        sync_broker(c, settings)

    await blocking(request, run)
