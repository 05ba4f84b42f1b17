"""API: property-service firms (物业服务企业)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response
from psycopg import sql
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal
from api.errors import ERROR_RESPONSES, forbidden, not_found
from api.fields import Code, Id, Label, Name, Phone
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, require

router = APIRouter(tags=["registry"], responses=ERROR_RESPONSES)
CreditCode = Annotated[str, Field(max_length=40)]


class Firm(BaseModel):
    id: int
    code: str
    name_zh: str
    name_en: str
    credit_code: str | None
    contact_phone: str | None
    complaint_phone: str | None


class FirmIn(BaseModel):
    code: Code
    name_zh: Name
    name_en: Label = ""
    credit_code: CreditCode | None = None
    contact_phone: Phone | None = None
    complaint_phone: Phone | None = None


class FirmPatch(BaseModel):
    code: Code | None = None
    name_zh: Name | None = None
    name_en: Label | None = None
    credit_code: CreditCode | None = None
    contact_phone: Phone | None = None
    complaint_phone: Phone | None = None


_SELECT = (
    "SELECT f.id, f.code, f.name_zh, f.name_en, f.credit_code, f.contact_phone,"
    " f.complaint_phone FROM firms f WHERE "
)


@router.get("/firms", response_model=Page[Firm])
async def list_firms(db: Db, p: Caller, paging: Paging) -> Page[Firm]:
    w = scope.firms(Where(), p).add_if(paging.after_id(), "f.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY f.id LIMIT %(n)s")
    rows = await fetch_all(db, Firm, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Principal, firm_id: int) -> Firm:
    w = scope.firms(Where().add("f.id = %(id)s", id=firm_id), p)
    return await fetch_found(db, Firm, "firm", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/firms/{firm_id}")
async def get_firm(db: Db, p: Caller, firm_id: Id) -> Firm:
    return await _one(db, p, firm_id)


@router.post("/firms", status_code=201)
async def create_firm(db: Db, p: Caller, body: FirmIn) -> Firm:
    require(p, Action.WRITE_FIRMS)
    if p.role != "county_regulator":
        raise forbidden("register property firms")
    fid = await scalar(
        db,
        "INSERT INTO firms (code, name_zh, name_en, credit_code, contact_phone, complaint_phone)"
        " VALUES (%(code)s, %(name_zh)s, %(name_en)s, %(credit_code)s, %(contact_phone)s,"
        " %(complaint_phone)s) RETURNING id",
        body.model_dump(),
    )
    return await _one(db, p, int(fid))


@router.patch("/firms/{firm_id}")
async def update_firm(db: Db, p: Caller, firm_id: Id, body: FirmPatch) -> Firm:
    """The regulator changes any firm; a firm admin its own firm's names and phones."""
    require(p, Action.WRITE_FIRMS)
    changes = body.model_dump(exclude_unset=True)
    if p.role != "county_regulator" and "code" in changes:
        raise forbidden("change a firm's code")
    if p.role != "county_regulator" and firm_id != p.firm_id:
        raise not_found("firm")  # another firm: as good as absent for writing
    await _one(db, p, firm_id)
    for key in ("code", "name_zh", "name_en"):
        if key in changes and changes[key] is None:
            del changes[key]
    if changes:
        await db.execute(
            sql.SQL("UPDATE firms SET {} WHERE id = %(id)s").format(assignments(changes)),
            {**changes, "id": firm_id},
        )
    return await _one(db, p, firm_id)


@router.delete("/firms/{firm_id}", status_code=204)
async def delete_firm(db: Db, p: Caller, firm_id: Id) -> Response:
    require(p, Action.WRITE_FIRMS)
    if p.role != "county_regulator":
        raise forbidden("delete property firms")
    await _one(db, p, firm_id)
    await db.execute("DELETE FROM firms WHERE id = %s", (firm_id,))
    return Response(status_code=204)
