"""API: the platform's own alarms (``lifecycle.platform``) and the platform operators' roster.

Platform alarms are nobody's community: a platform operator reads and acknowledges them, the
county regulator reads them; both keep the roster of platform shifts (the county appoints its
IT contact, the vendor its on-call). Every other role is refused (403).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from psycopg import sql
from pydantic import BaseModel

from api.deps import Caller, Db, blocking
from api.errors import ERROR_RESPONSES, ApiError, invalid, not_found
from api.fields import BigId, Id, OptId, RefId, TimeSpan, aware
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_found, scalar
from api.scope import Action, Where, require
from core.db import Conn
from lifecycle.platform import AckRefused, PlatformKind, acknowledge

router = APIRouter(prefix="/platform", tags=["platform"], responses=ERROR_RESPONSES)
State = Literal["active", "acknowledged", "cleared"]


class PlatformAlarm(BaseModel):
    id: int
    kind: str
    subject: str
    severity: str
    state: str
    opened_at: datetime
    last_triggered_at: datetime
    triggers: int
    cleared_at: datetime | None
    cleared_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    detail: dict[str, Any]


class PlatformShift(BaseModel):
    id: int
    person_id: int
    person_name: str
    starts_at: datetime
    ends_at: datetime


class PlatformShiftIn(TimeSpan):
    person_id: RefId


_ALARMS = (
    "SELECT a.id, a.kind, a.subject, a.severity, a.state, a.opened_at, a.last_triggered_at,"
    " a.triggers, a.cleared_at, a.cleared_reason, a.acknowledged_at, a.acknowledged_by, a.detail"
    " FROM platform_alarms a WHERE "
)


@router.get("/alarms", response_model=Page[PlatformAlarm])
async def list_platform_alarms(
    db: Db,
    p: Caller,
    paging: Paging,
    state: Annotated[list[State] | None, Query()] = None,
    kind: Annotated[list[PlatformKind] | None, Query()] = None,
    open: Annotated[bool | None, Query(description="true: not cleared; false: cleared")] = None,
) -> Page[PlatformAlarm]:
    """The platform's alarms, newest first; ``state`` and ``kind`` may repeat."""
    require(p, Action.READ_PLATFORM)
    w = Where()
    w.add_if(state, "a.state = ANY(%(state)s)", "state")
    w.add_if(kind and [str(k) for k in kind], "a.kind = ANY(%(kind)s)", "kind")
    if open is not None:
        w.add("a.state <> 'cleared'" if open else "a.state = 'cleared'")
    w.add_if(paging.after_id(), "a.id < %(after)s", "after")
    q = sql.SQL(_ALARMS) + w.sql() + sql.SQL(" ORDER BY a.id DESC LIMIT %(n)s")
    rows = await fetch_all(db, PlatformAlarm, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _alarm(db: Db, alarm_id: int) -> PlatformAlarm:
    q = sql.SQL(_ALARMS) + sql.SQL("a.id = %s")
    return await fetch_found(db, PlatformAlarm, "platform alarm", q, (alarm_id,))


@router.get("/alarms/{alarm_id}")
async def get_platform_alarm(db: Db, p: Caller, alarm_id: BigId) -> PlatformAlarm:
    require(p, Action.READ_PLATFORM)
    return await _alarm(db, alarm_id)


@router.post("/alarms/{alarm_id}/acknowledge")
async def acknowledge_platform_alarm(
    db: Db, request: Request, p: Caller, alarm_id: BigId
) -> PlatformAlarm:
    """Acknowledge: records the token's holder (its name) and when. The first acknowledgement
    stands (again: no change) and survives re-triggers; a cleared alarm answers 409."""
    require(p, Action.ACK_PLATFORM_ALARMS)

    def run(c: Conn) -> None:
        try:
            acknowledge(c, alarm_id, p.name)
        except AckRefused as e:
            if e.reason == "unknown":
                raise not_found("platform alarm") from None
            raise ApiError(409, "not_open", str(e)) from None

    await blocking(request, run)
    return await _alarm(db, alarm_id)


_SHIFTS = (
    "SELECT s.id, s.person_id, pe.name AS person_name, s.starts_at, s.ends_at"
    " FROM platform_shifts s JOIN people pe ON pe.id = s.person_id WHERE "
)


@router.get("/shifts", response_model=Page[PlatformShift])
async def list_platform_shifts(
    db: Db,
    p: Caller,
    paging: Paging,
    person_id: OptId = None,
    at: Annotated[datetime | None, Query(description="only shifts covering this time")] = None,
    ends_after: Annotated[
        datetime | None, Query(description="e.g. now: current and future")
    ] = None,
) -> Page[PlatformShift]:
    """The platform operators' shifts: whoever is on one is told of every platform alarm."""
    require(p, Action.READ_PLATFORM)
    w = Where()
    w.add_if(person_id, "s.person_id = %(person)s", "person")
    w.add_if(aware("at", at), "s.starts_at <= %(at)s AND %(at)s < s.ends_at", "at")
    w.add_if(aware("ends_after", ends_after), "s.ends_at > %(ends_after)s", "ends_after")
    w.add_if(paging.after_id(), "s.id > %(after)s", "after")
    q = sql.SQL(_SHIFTS) + w.sql() + sql.SQL(" ORDER BY s.id LIMIT %(n)s")
    rows = await fetch_all(db, PlatformShift, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _shift(db: Db, shift_id: int) -> PlatformShift:
    q = sql.SQL(_SHIFTS) + sql.SQL("s.id = %s")
    return await fetch_found(db, PlatformShift, "platform shift", q, (shift_id,))


@router.get("/shifts/{shift_id}")
async def get_platform_shift(db: Db, p: Caller, shift_id: Id) -> PlatformShift:
    require(p, Action.READ_PLATFORM)
    return await _shift(db, shift_id)


@router.post("/shifts", status_code=201)
async def create_platform_shift(db: Db, p: Caller, body: PlatformShiftIn) -> PlatformShift:
    """Put a platform operator on shift; overlapping shifts are handovers (both are told)."""
    require(p, Action.WRITE_PLATFORM_ROSTER)
    if not await scalar(
        db,
        "SELECT 1 FROM people WHERE id = %s AND role = 'platform_operator' AND active",
        (body.person_id,),
    ):
        raise invalid(
            "body.person_id",
            "no such active platform_operator; add one with POST /v1/people"
            ' {"role": "platform_operator"}',
        )
    sid = await scalar(
        db,
        "INSERT INTO platform_shifts (person_id, starts_at, ends_at)"
        " VALUES (%(person_id)s, %(starts_at)s, %(ends_at)s) RETURNING id",
        body.model_dump(),
    )
    return await _shift(db, int(sid))


@router.delete("/shifts/{shift_id}", status_code=204)
async def delete_platform_shift(db: Db, p: Caller, shift_id: Id) -> Response:
    require(p, Action.WRITE_PLATFORM_ROSTER)
    cur = await db.execute("DELETE FROM platform_shifts WHERE id = %s", (shift_id,))
    if cur.rowcount == 0:
        raise not_found("platform shift")
    return Response(status_code=204)
