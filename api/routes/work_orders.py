"""API: work orders: filter, assign a maintenance unit, move through the lifecycle, comment;
each with its time limits' status (``api.sla``) and the breaches analytics recorded."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from psycopg import sql
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal, blocking
from api.errors import ERROR_RESPONSES, ApiError, invalid, not_found
from api.fields import CODE_PATTERN, BigId, OptId, RefId, aware
from api.pagination import Page, PageParams, Paging, page
from api.queries import fetch_all, fetch_found, scalar
from api.scope import Action, Where, require
from api.sla import LIMIT_OUTCOMES
from core.db import Conn
from core.severity import Severity
from lifecycle.work_orders import TransitionError, transition

router = APIRouter(tags=["work orders"], responses=ERROR_RESPONSES)
Status = Literal["occurred", "responded", "on_site", "completed", "false_alarm"]


class LimitStatus(BaseModel):
    kind: Literal["response", "arrival", "resolution"]
    due: datetime
    done_at: datetime | None
    outcome: Literal["met", "missed", "pending", "not_counted"] = Field(
        description="pending: open and not yet due; not_counted: a false alarm (see docs/api.md)"
    )


class Breach(BaseModel):
    limit_kind: str
    due: datetime
    recorded_at: datetime


class Transition(BaseModel):
    at: datetime
    actor: str
    from_status: str | None
    to_status: str
    note: str


class WorkOrder(BaseModel):
    id: int
    source: Literal["alarm", "complaint"] = Field(
        description="alarm: filed for a device's alarm; complaint: a resident's (no alarm, device)"
    )
    alarm_id: int | None
    device_id: int | None
    device_uid: str | None
    community_id: int
    firm_id: int | None
    maintenance_unit_id: int | None
    event_code: str
    severity: str
    responsible_party: str
    supervisor: str
    status: str
    opened_at: datetime
    response_due: datetime | None
    arrival_due: datetime | None
    resolution_due: datetime
    responded_at: datetime | None
    on_site_at: datetime | None
    closed_at: datetime | None
    closed_reason: str | None
    emergency_fund: bool
    notify_regulator: bool
    list_version: str
    sla: list[LimitStatus] = []
    breaches: list[Breach] = []


class WorkOrderDetail(WorkOrder):
    transitions: list[Transition]


class Assignment(BaseModel):
    maintenance_unit_id: RefId | None = Field(description="the unit to send; null: none")
    note: Annotated[str, Field(max_length=2000)] = ""


class Move(BaseModel):
    to: Literal["responded", "on_site", "completed", "false_alarm"]
    note: Annotated[str, Field(max_length=2000)] = ""


class Comment(BaseModel):
    id: int
    work_order_id: int
    author: str
    body: str
    created_at: datetime


class CommentIn(BaseModel):
    body: Annotated[str, Field(min_length=1, max_length=5000)]


_SELECT = (
    "SELECT wo.id, wo.source, wo.alarm_id, wo.device_id, d.uid AS device_uid, wo.community_id, wo.firm_id,"
    " wo.maintenance_unit_id, wo.event_code, wo.severity, wo.responsible_party, wo.supervisor,"
    " wo.status, wo.opened_at, wo.response_due, wo.arrival_due, wo.resolution_due,"
    " wo.responded_at, wo.on_site_at, wo.closed_at, wo.closed_reason, wo.emergency_fund,"
    " wo.notify_regulator, wo.list_version"
    " FROM work_orders wo LEFT JOIN devices d ON d.id = wo.device_id WHERE "
)
_DONE = {"response": "responded_at", "arrival": "on_site_at", "resolution": "closed_at"}


async def with_limits(db: Db, orders: list[WorkOrder]) -> None:
    """Fill in each work order's limit outcomes and recorded breaches (two queries per page)."""
    if not orders:
        return
    ids = [o.id for o in orders]
    q = sql.SQL("WITH scoped AS (SELECT * FROM work_orders WHERE id = ANY(%(ids)s)) ")
    cur = await db.execute(q + LIMIT_OUTCOMES, {"ids": ids, "now": datetime.now(UTC)})
    outcomes: dict[int, list[tuple[str, datetime, str | None]]] = defaultdict(list)
    for wid, kind, due, outcome in await cur.fetchall():
        outcomes[wid].append((kind, due, outcome))
    cur = await db.execute(
        "SELECT work_order_id, limit_kind, due, recorded_at FROM work_order_breaches"
        " WHERE work_order_id = ANY(%s) ORDER BY work_order_id, due",
        (ids,),
    )
    breaches: dict[int, list[Breach]] = defaultdict(list)
    for wid, kind, due, at in await cur.fetchall():
        breaches[wid].append(Breach(limit_kind=kind, due=due, recorded_at=at))
    for o in orders:
        o.breaches = breaches[o.id]
        o.sla = [
            LimitStatus(
                kind=kind,
                due=due,
                done_at=getattr(o, _DONE[kind]),
                outcome=outcome or ("not_counted" if o.status == "false_alarm" else "pending"),
            )
            for kind, due, outcome in outcomes[o.id]
            if due is not None
        ]


async def filters(
    p: Caller,
    status: Annotated[list[Status] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    open: Annotated[bool | None, Query(description="true: not yet closed")] = None,
    breached: Annotated[bool | None, Query(description="true: some limit was missed")] = None,
    community_id: OptId = None,
    maintenance_unit_id: OptId = None,
    device: Annotated[str | None, Query(pattern=CODE_PATTERN, description="device uid")] = None,
    event_code: Annotated[str | None, Query(max_length=64)] = None,
    opened_from: Annotated[datetime | None, Query()] = None,
    opened_until: Annotated[datetime | None, Query()] = None,
) -> Where:
    """The list's filters, inside the caller's scope (for the list and its export)."""
    w = scope.work_orders(Where(), p)
    w.add_if(status, "wo.status = ANY(%(status)s)", "status")
    w.add_if(severity, "wo.severity = ANY(%(severity)s)", "severity")
    if open is not None:
        w.add("wo.closed_at IS NULL" if open else "wo.closed_at IS NOT NULL")
    if breached is not None:
        exists = "EXISTS (SELECT 1 FROM work_order_breaches b WHERE b.work_order_id = wo.id)"
        w.add(exists if breached else f"NOT {exists}")
    w.add_if(community_id, "wo.community_id = %(community)s", "community")
    w.add_if(maintenance_unit_id, "wo.maintenance_unit_id = %(unit)s", "unit")
    w.add_if(device, "d.uid = %(uid)s", "uid")
    w.add_if(event_code, "wo.event_code = %(code)s", "code")
    w.add_if(aware("opened_from", opened_from), "wo.opened_at >= %(t0)s", "t0")
    w.add_if(aware("opened_until", opened_until), "wo.opened_at < %(t1)s", "t1")
    return w


Filters = Annotated[Where, Depends(filters)]


async def matching(db: Db, w: Where, limit: int) -> list[WorkOrder]:
    """Work orders matching ``w``, newest first, at most ``limit`` (without their limits)."""
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY wo.id DESC LIMIT %(n)s")
    return await fetch_all(db, WorkOrder, q, {**w.params, "n": limit})


@router.get("/work-orders", response_model=Page[WorkOrder])
async def list_work_orders(db: Db, p: Caller, paging: Paging, w: Filters) -> Page[WorkOrder]:
    """Work orders in scope, newest first; a maintenance unit sees those assigned to it."""
    require(p, Action.READ_WORK_ORDERS)
    return await work_order_page(db, w, paging)


async def work_order_page(db: Db, w: Where, paging: PageParams) -> Page[WorkOrder]:
    """One page of the work orders matching ``w`` (``filters``), with their limits."""
    w.add_if(paging.after_id(), "wo.id < %(after)s", "after")
    rows = await matching(db, w, paging.limit + 1)
    result = page(rows, paging.limit, lambda r: (r.id,))
    await with_limits(db, result.items)
    return result


async def _one(db: Db, p: Principal, work_order_id: int) -> WorkOrder:
    w = scope.work_orders(Where().add("wo.id = %(id)s", id=work_order_id), p)
    wo = await fetch_found(db, WorkOrder, "work order", sql.SQL(_SELECT) + w.sql(), w.params)
    await with_limits(db, [wo])
    return wo


@router.get("/work-orders/{work_order_id}")
async def get_work_order(db: Db, p: Caller, work_order_id: BigId) -> WorkOrderDetail:
    require(p, Action.READ_WORK_ORDERS)
    wo = await _one(db, p, work_order_id)
    transitions = await fetch_all(
        db,
        Transition,
        "SELECT at, actor, from_status, to_status, note FROM work_order_transitions"
        " WHERE work_order_id = %s ORDER BY at, id",
        (work_order_id,),
    )
    return WorkOrderDetail(**wo.model_dump(), transitions=transitions)


def _lock(c: Conn, p: Principal, work_order_id: int) -> None:
    w = scope.work_orders(Where().add("wo.id = %(id)s", id=work_order_id), p)
    q = sql.SQL("SELECT 1 FROM work_orders wo WHERE ") + w.sql() + sql.SQL(" FOR UPDATE")
    if c.execute(q, w.params).fetchone() is None:
        raise not_found("work order")


@router.post("/work-orders/{work_order_id}/assign")
async def assign(
    db: Db, request: Request, p: Caller, work_order_id: BigId, body: Assignment
) -> WorkOrder:
    """Send a maintenance unit (or withdraw it); recorded as a comment."""
    require(p, Action.ASSIGN_WORK_ORDERS)
    unit = None
    if body.maintenance_unit_id is not None:
        unit = await scalar(
            db, "SELECT code FROM maintenance_units WHERE id = %s", (body.maintenance_unit_id,)
        )
        if unit is None:
            raise invalid("body.maintenance_unit_id", "no such maintenance unit")

    def run(c: Conn) -> None:
        _lock(c, p, work_order_id)
        c.execute(
            "UPDATE work_orders SET maintenance_unit_id = %s WHERE id = %s",
            (body.maintenance_unit_id, work_order_id),
        )
        text = f"assigned to {unit}" if unit else "maintenance unit withdrawn"
        c.execute(
            "INSERT INTO work_order_comments (work_order_id, author, token_id, body)"
            " VALUES (%s, %s, %s, %s)",
            (work_order_id, p.actor, p.token_id, text + (f": {body.note}" if body.note else "")),
        )

    await blocking(request, run)
    return await _one(db, p, work_order_id)


@router.post("/work-orders/{work_order_id}/transitions")
async def move(
    db: Db, request: Request, p: Caller, work_order_id: BigId, body: Move
) -> WorkOrderDetail:
    """occurred → responded → on_site → completed, or false_alarm from any open state; skipped
    steps are stamped at the same time (analytics.store.transition)."""
    require(p, Action.MOVE_WORK_ORDERS)

    def run(c: Conn) -> None:
        _lock(c, p, work_order_id)
        try:
            transition(
                c, work_order_id, body.to, actor=p.actor, at=datetime.now(UTC), note=body.note
            )
        except TransitionError as e:
            raise ApiError(409, "invalid_transition", str(e)) from None

    await blocking(request, run)
    return await get_work_order(db, p, work_order_id)


@router.get("/work-orders/{work_order_id}/comments", response_model=Page[Comment])
async def list_comments(db: Db, p: Caller, paging: Paging, work_order_id: BigId) -> Page[Comment]:
    require(p, Action.READ_WORK_ORDERS)
    await _one(db, p, work_order_id)
    w = Where().add("work_order_id = %(wo)s", wo=work_order_id)
    w.add_if(paging.after_id(), "id > %(after)s", "after")
    q = (
        sql.SQL(
            "SELECT id, work_order_id, author, body, created_at FROM work_order_comments WHERE "
        )
        + w.sql()
        + sql.SQL(" ORDER BY id LIMIT %(n)s")
    )
    rows = await fetch_all(db, Comment, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


@router.post("/work-orders/{work_order_id}/comments", status_code=201)
async def add_comment(db: Db, p: Caller, work_order_id: BigId, body: CommentIn) -> Comment:
    require(p, Action.COMMENT_WORK_ORDERS)
    await _one(db, p, work_order_id)
    return await fetch_found(
        db,
        Comment,
        "work order",
        "INSERT INTO work_order_comments (work_order_id, author, token_id, body)"
        " VALUES (%s, %s, %s, %s) RETURNING id, work_order_id, author, body, created_at",
        (work_order_id, p.actor, p.token_id, body.body),
    )
