"""API: the duty roster's shifts, and who is on duty in a community (``lifecycle.roster``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from psycopg import sql
from pydantic import BaseModel

from api import scope
from api.deps import Caller, Db, Principal
from api.errors import ERROR_RESPONSES, invalid, not_found
from api.fields import Id, OptId, RefId, TimeSpan, aware
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_found, scalar
from api.routes.people import Person, PersonRole
from api.scope import Action, Where, require
from lifecycle.roster import Shift as RosterShift
from lifecycle.roster import on_duty

router = APIRouter(tags=["duty roster"], responses=ERROR_RESPONSES)


class Shift(BaseModel):
    id: int
    community_id: int
    role: str
    person_id: int
    starts_at: datetime
    ends_at: datetime


class ShiftIn(TimeSpan):
    community_id: RefId
    role: PersonRole
    person_id: RefId


class OnDuty(BaseModel):
    community_id: int
    role: str
    at: datetime
    people: list[Person]


_SELECT = (
    "SELECT s.id, s.community_id, s.role, s.person_id, s.starts_at, s.ends_at"
    " FROM duty_shifts s WHERE "
)


@router.get("/shifts", response_model=Page[Shift])
async def list_shifts(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    person_id: OptId = None,
    role: Annotated[PersonRole | None, Query()] = None,
    at: Annotated[datetime | None, Query(description="only shifts covering this time")] = None,
    ends_after: Annotated[
        datetime | None, Query(description="e.g. now: current and future")
    ] = None,
) -> Page[Shift]:
    require(p, Action.READ_ROSTER)
    w = scope.communities(Where(), p, "s.community_id")
    w.add_if(community_id, "s.community_id = %(community)s", "community")
    w.add_if(person_id, "s.person_id = %(person)s", "person")
    w.add_if(role, "s.role = %(role)s", "role")
    w.add_if(aware("at", at), "s.starts_at <= %(at)s AND %(at)s < s.ends_at", "at")
    w.add_if(aware("ends_after", ends_after), "s.ends_at > %(ends_after)s", "ends_after")
    w.add_if(paging.after_id(), "s.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY s.id LIMIT %(n)s")
    rows = await fetch_all(db, Shift, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Principal, shift_id: int) -> Shift:
    w = scope.communities(Where().add("s.id = %(id)s", id=shift_id), p, "s.community_id")
    return await fetch_found(db, Shift, "shift", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/shifts/{shift_id}")
async def get_shift(db: Db, p: Caller, shift_id: Id) -> Shift:
    require(p, Action.READ_ROSTER)
    return await _one(db, p, shift_id)


@router.post("/shifts", status_code=201)
async def create_shift(db: Db, p: Caller, body: ShiftIn) -> Shift:
    """Put a person on duty for a community; overlapping shifts are handovers."""
    require(p, Action.WRITE_ROSTER)
    if not p.sees_community(body.community_id) or not await scalar(
        db, "SELECT 1 FROM communities WHERE id = %s", (body.community_id,)
    ):
        raise invalid("body.community_id", "no such community in your scope")
    w = scope.people(Where().add("pe.id = %(id)s AND pe.active", id=body.person_id), p)
    if not await scalar(db, sql.SQL("SELECT 1 FROM people pe WHERE ") + w.sql(), w.params):
        raise invalid("body.person_id", "no such active person in your scope")
    sid = await scalar(
        db,
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%(community_id)s, %(role)s, %(person_id)s, %(starts_at)s, %(ends_at)s)"
        " RETURNING id",
        body.model_dump(),
    )
    return await _one(db, p, int(sid))


@router.delete("/shifts/{shift_id}", status_code=204)
async def delete_shift(db: Db, p: Caller, shift_id: Id) -> Response:
    require(p, Action.WRITE_ROSTER)
    await _one(db, p, shift_id)
    await db.execute("DELETE FROM duty_shifts WHERE id = %s", (shift_id,))
    return Response(status_code=204)


@router.get("/communities/{community_id}/on-duty")
async def get_on_duty(
    db: Db,
    p: Caller,
    community_id: Id,
    role: Annotated[PersonRole, Query()] = "duty_staff",
    at: Annotated[datetime | None, Query(description="default: now")] = None,
) -> OnDuty:
    """Who holds ``role`` for the community at ``at`` (handovers: everyone in the overlap)."""
    require(p, Action.READ_ROSTER)
    if not p.sees_community(community_id) or not await scalar(
        db, "SELECT 1 FROM communities WHERE id = %s", (community_id,)
    ):
        raise not_found("community")
    when = aware("at", at) or datetime.now(UTC)
    shifts = await fetch_all(
        db,
        Shift,
        sql.SQL(_SELECT)
        + sql.SQL("s.community_id = %s AND s.role = %s AND s.starts_at <= %s AND %s < s.ends_at"),
        (community_id, role, when, when),
    )
    ids = on_duty(
        [RosterShift(s.community_id, s.role, s.person_id, s.starts_at, s.ends_at) for s in shifts],
        community_id,
        role,
        when,
    )
    people = await fetch_all(
        db,
        Person,
        "SELECT id, name, role, firm_id, unit_id, region_id, language, active"
        " FROM people WHERE id = ANY(%s) AND active",
        (ids,),
    )
    order = {pid: i for i, pid in enumerate(ids)}
    people.sort(key=lambda x: order[x.id])
    return OnDuty(community_id=community_id, role=role, at=when, people=people)
