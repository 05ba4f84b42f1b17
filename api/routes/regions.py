"""API: regions (county → township → community service centre)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from psycopg import sql
from pydantic import BaseModel

from api import scope
from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES, invalid
from api.fields import Code, Id, Label, Name, RefId
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, require

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)
RegionKind = Literal["county", "township", "community_centre"]


class Region(BaseModel):
    id: int
    code: str
    kind: str
    parent_id: int | None
    name_zh: str
    name_en: str


class RegionIn(BaseModel):
    code: Code
    kind: Literal["township", "community_centre"]
    parent_id: RefId
    name_zh: Name
    name_en: Label = ""


class RegionPatch(BaseModel):
    code: Code | None = None
    name_zh: Name | None = None
    name_en: Label | None = None


_SELECT = "SELECT r.id, r.code, r.kind, r.parent_id, r.name_zh, r.name_en FROM regions r WHERE "


@router.get("/regions", response_model=Page[Region])
async def list_regions(
    db: Db,
    p: Caller,
    paging: Paging,
    kind: Annotated[RegionKind | None, Query()] = None,
) -> Page[Region]:
    w = scope.regions(Where(), p).add_if(kind, "r.kind = %(kind)s", "kind")
    w.add_if(paging.after_id(), "r.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY r.id LIMIT %(n)s")
    rows = await fetch_all(db, Region, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Caller, region_id: int) -> Region:
    w = scope.regions(Where().add("r.id = %(id)s", id=region_id), p)
    return await fetch_found(db, Region, "region", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/regions/{region_id}")
async def get_region(db: Db, p: Caller, region_id: Id) -> Region:
    return await _one(db, p, region_id)


@router.post("/regions", status_code=201)
async def create_region(db: Db, p: Caller, body: RegionIn) -> Region:
    require(p, Action.WRITE_REGIONS)
    parent_kind = await scalar(db, "SELECT kind FROM regions WHERE id = %s", (body.parent_id,))
    if parent_kind is None:
        raise invalid("body.parent_id", "no such region")
    if parent_kind == "community_centre":
        raise invalid("body.parent_id", "a community service centre has no sub-regions")
    rid = await scalar(
        db,
        "INSERT INTO regions (code, kind, parent_id, name_zh, name_en)"
        " VALUES (%(code)s, %(kind)s, %(parent_id)s, %(name_zh)s, %(name_en)s) RETURNING id",
        body.model_dump(),
    )
    return await _one(db, p, int(rid))


@router.patch("/regions/{region_id}")
async def update_region(db: Db, p: Caller, region_id: Id, body: RegionPatch) -> Region:
    require(p, Action.WRITE_REGIONS)
    await _one(db, p, region_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if changes:
        await db.execute(
            sql.SQL("UPDATE regions SET {} WHERE id = %(id)s").format(assignments(changes)),
            {**changes, "id": region_id},
        )
    return await _one(db, p, region_id)


@router.delete("/regions/{region_id}", status_code=204)
async def delete_region(db: Db, p: Caller, region_id: Id) -> Response:
    """Only a region nothing refers to (no sub-regions, communities, tokens or people)."""
    require(p, Action.WRITE_REGIONS)
    await _one(db, p, region_id)
    await db.execute("DELETE FROM regions WHERE id = %s", (region_id,))
    return Response(status_code=204)
