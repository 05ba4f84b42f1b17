"""API: buildings (楼幢) of a community."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from psycopg import sql
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal
from api.errors import ERROR_RESPONSES, invalid
from api.fields import Code, Id, Name, RefId
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, require

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)
Floors = Annotated[int, Field(ge=1, le=200)]


class Building(BaseModel):
    id: int
    community_id: int
    code: str
    name: str
    floors: int


class BuildingIn(BaseModel):
    community_id: RefId
    code: Code
    name: Name
    floors: Floors


class BuildingPatch(BaseModel):
    code: Code | None = None
    name: Name | None = None
    floors: Floors | None = None


_SELECT = "SELECT b.id, b.community_id, b.code, b.name, b.floors FROM buildings b WHERE "


@router.get("/buildings", response_model=Page[Building])
async def list_buildings(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> Page[Building]:
    require(p, Action.READ_COMMUNITIES)
    w = scope.communities(Where(), p, "b.community_id")
    w.add_if(community_id, "b.community_id = %(community)s", "community")
    w.add_if(paging.after_id(), "b.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY b.id LIMIT %(n)s")
    rows = await fetch_all(db, Building, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Principal, building_id: int) -> Building:
    w = scope.communities(Where().add("b.id = %(id)s", id=building_id), p, "b.community_id")
    return await fetch_found(db, Building, "building", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/buildings/{building_id}")
async def get_building(db: Db, p: Caller, building_id: Id) -> Building:
    require(p, Action.READ_COMMUNITIES)
    return await _one(db, p, building_id)


@router.post("/buildings", status_code=201)
async def create_building(db: Db, p: Caller, body: BuildingIn) -> Building:
    require(p, Action.WRITE_DEVICES)
    if not p.sees_community(body.community_id) or not await scalar(
        db, "SELECT 1 FROM communities WHERE id = %s", (body.community_id,)
    ):
        raise invalid("body.community_id", "no such community in your scope")
    bid = await scalar(
        db,
        "INSERT INTO buildings (community_id, code, name, floors)"
        " VALUES (%(community_id)s, %(code)s, %(name)s, %(floors)s) RETURNING id",
        body.model_dump(),
    )
    return await _one(db, p, int(bid))


@router.patch("/buildings/{building_id}")
async def update_building(db: Db, p: Caller, building_id: Id, body: BuildingPatch) -> Building:
    require(p, Action.WRITE_DEVICES)
    await _one(db, p, building_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if changes:
        await db.execute(
            sql.SQL("UPDATE buildings SET {} WHERE id = %(id)s").format(assignments(changes)),
            {**changes, "id": building_id},
        )
    return await _one(db, p, building_id)


@router.delete("/buildings/{building_id}", status_code=204)
async def delete_building(db: Db, p: Caller, building_id: Id) -> Response:
    """Only a building no device refers to."""
    require(p, Action.WRITE_DEVICES)
    await _one(db, p, building_id)
    await db.execute("DELETE FROM buildings WHERE id = %s", (building_id,))
    return Response(status_code=204)
