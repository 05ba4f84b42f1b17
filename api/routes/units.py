"""API: maintenance units (维保单位). Their names and phones are public, so every role reads them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from psycopg import sql
from pydantic import BaseModel

from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES, forbidden, not_found
from api.fields import Code, Id, Label, Name, Phone
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, require

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)
UnitKind = Literal["elevator", "fire", "water"]


class MaintenanceUnit(BaseModel):
    id: int
    code: str
    kind: str
    name_zh: str
    name_en: str
    phone: str | None


class UnitIn(BaseModel):
    code: Code
    kind: UnitKind
    name_zh: Name
    name_en: Label = ""
    phone: Phone | None = None


class UnitPatch(BaseModel):
    code: Code | None = None
    kind: UnitKind | None = None
    name_zh: Name | None = None
    name_en: Label | None = None
    phone: Phone | None = None


_SELECT = (
    "SELECT u.id, u.code, u.kind, u.name_zh, u.name_en, u.phone FROM maintenance_units u WHERE "
)


@router.get("/maintenance-units", response_model=Page[MaintenanceUnit])
async def list_units(
    db: Db, p: Caller, paging: Paging, kind: Annotated[UnitKind | None, Query()] = None
) -> Page[MaintenanceUnit]:
    w = Where().add_if(kind, "u.kind = %(kind)s", "kind")
    w.add_if(paging.after_id(), "u.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY u.id LIMIT %(n)s")
    rows = await fetch_all(db, MaintenanceUnit, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, unit_id: int) -> MaintenanceUnit:
    q = sql.SQL(_SELECT) + sql.SQL("u.id = %s")
    return await fetch_found(db, MaintenanceUnit, "maintenance unit", q, (unit_id,))


@router.get("/maintenance-units/{unit_id}")
async def get_unit(db: Db, p: Caller, unit_id: Id) -> MaintenanceUnit:
    return await _one(db, unit_id)


@router.post("/maintenance-units", status_code=201)
async def create_unit(db: Db, p: Caller, body: UnitIn) -> MaintenanceUnit:
    require(p, Action.WRITE_UNITS)
    if p.role != "county_regulator":
        raise forbidden("register maintenance units")
    uid = await scalar(
        db,
        "INSERT INTO maintenance_units (code, kind, name_zh, name_en, phone)"
        " VALUES (%(code)s, %(kind)s, %(name_zh)s, %(name_en)s, %(phone)s) RETURNING id",
        body.model_dump(),
    )
    return await _one(db, int(uid))


@router.patch("/maintenance-units/{unit_id}")
async def update_unit(db: Db, p: Caller, unit_id: Id, body: UnitPatch) -> MaintenanceUnit:
    """The regulator changes any unit; a unit its own names and phone."""
    require(p, Action.WRITE_UNITS)
    changes = body.model_dump(exclude_unset=True)
    if p.role != "county_regulator":
        if unit_id != p.maintenance_unit_id:
            raise not_found("maintenance unit")
        if "code" in changes or "kind" in changes:
            raise forbidden("change a maintenance unit's code or kind")
    await _one(db, unit_id)
    for key in ("code", "kind", "name_zh", "name_en"):
        if key in changes and changes[key] is None:
            del changes[key]
    if changes:
        await db.execute(
            sql.SQL("UPDATE maintenance_units SET {} WHERE id = %(id)s").format(
                assignments(changes)
            ),
            {**changes, "id": unit_id},
        )
    return await _one(db, unit_id)


@router.delete("/maintenance-units/{unit_id}", status_code=204)
async def delete_unit(db: Db, p: Caller, unit_id: Id) -> Response:
    require(p, Action.WRITE_UNITS)
    if p.role != "county_regulator":
        raise forbidden("delete maintenance units")
    await _one(db, unit_id)
    await db.execute("DELETE FROM maintenance_units WHERE id = %s", (unit_id,))
    return Response(status_code=204)
