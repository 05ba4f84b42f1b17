"""API: communities (小区), each in a region and run by a property firm."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from psycopg import sql
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal
from api.errors import ERROR_RESPONSES, invalid
from api.fields import Code, Id, Label, Name, RefId
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, require

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)
Address = Annotated[str, Field(max_length=500)]


class Community(BaseModel):
    id: int
    code: str
    region_id: int
    firm_id: int | None
    name_zh: str
    name_en: str
    address: str


class CommunityIn(BaseModel):
    code: Code
    region_id: RefId
    firm_id: RefId | None = None
    name_zh: Name
    name_en: Label = ""
    address: Address = ""


class CommunityPatch(BaseModel):
    code: Code | None = None
    region_id: RefId | None = None
    firm_id: RefId | None = None
    name_zh: Name | None = None
    name_en: Label | None = None
    address: Address | None = None


_SELECT = (
    "SELECT c.id, c.code, c.region_id, c.firm_id, c.name_zh, c.name_en, c.address"
    " FROM communities c WHERE "
)


@router.get("/communities", response_model=Page[Community])
async def list_communities(
    db: Db,
    p: Caller,
    paging: Paging,
    region_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
    firm_id: Annotated[int | None, Query(ge=1, le=2_147_483_647)] = None,
) -> Page[Community]:
    require(p, Action.READ_COMMUNITIES)
    w = scope.communities(Where(), p, "c.id")
    w.add_if(region_id, "c.region_id = %(region)s", "region")
    w.add_if(firm_id, "c.firm_id = %(firm)s", "firm")
    w.add_if(paging.after_id(), "c.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY c.id LIMIT %(n)s")
    rows = await fetch_all(db, Community, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Principal | None, community_id: int) -> Community:
    """The community, if ``p`` sees it (``None``: unscoped, after a check of its own)."""
    w = Where().add("c.id = %(id)s", id=community_id)
    if p is not None:
        scope.communities(w, p, "c.id")
    return await fetch_found(db, Community, "community", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/communities/{community_id}")
async def get_community(db: Db, p: Caller, community_id: Id) -> Community:
    require(p, Action.READ_COMMUNITIES)
    return await _one(db, p, community_id)


async def _check_refs(db: Db, p: Principal, region_id: int | None, firm_id: int | None) -> None:
    if region_id is not None:
        w = scope.regions(Where().add("r.id = %(id)s", id=region_id), p)
        kind = await scalar(db, sql.SQL("SELECT kind FROM regions r WHERE ") + w.sql(), w.params)
        if kind is None:
            raise invalid("body.region_id", "no such region in your scope")
        if kind == "county":
            raise invalid("body.region_id", "a community lies in a township or community centre")
    if firm_id is not None and not await scalar(
        db, "SELECT 1 FROM firms WHERE id = %s", (firm_id,)
    ):
        raise invalid("body.firm_id", "no such property firm")


@router.post("/communities", status_code=201)
async def create_community(db: Db, p: Caller, body: CommunityIn) -> Community:
    require(p, Action.WRITE_COMMUNITIES)
    await _check_refs(db, p, body.region_id, body.firm_id)
    cid = await scalar(
        db,
        "INSERT INTO communities (code, region_id, firm_id, name_zh, name_en, address)"
        " VALUES (%(code)s, %(region_id)s, %(firm_id)s, %(name_zh)s, %(name_en)s, %(address)s)"
        " RETURNING id",
        body.model_dump(),
    )
    return await _one(db, None, int(cid))


@router.patch("/communities/{community_id}")
async def update_community(db: Db, p: Caller, community_id: Id, body: CommunityPatch) -> Community:
    require(p, Action.WRITE_COMMUNITIES)
    await _one(db, p, community_id)
    changes = body.model_dump(exclude_unset=True)
    for key in ("code", "region_id", "name_zh", "name_en", "address"):
        if key in changes and changes[key] is None:
            del changes[key]
    await _check_refs(db, p, changes.get("region_id"), changes.get("firm_id"))
    if changes:
        await db.execute(
            sql.SQL("UPDATE communities SET {} WHERE id = %(id)s").format(assignments(changes)),
            {**changes, "id": community_id},
        )
    return await _one(db, None, community_id)


@router.delete("/communities/{community_id}", status_code=204)
async def delete_community(db: Db, p: Caller, community_id: Id) -> Response:
    """Only a community nothing refers to (no buildings, devices, alarms, shifts)."""
    require(p, Action.WRITE_COMMUNITIES)
    await _one(db, p, community_id)
    await db.execute("DELETE FROM communities WHERE id = %s", (community_id,))
    return Response(status_code=204)
