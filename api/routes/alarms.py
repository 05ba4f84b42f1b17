"""API: alarms: filter, acknowledge (as the duty room does), clear by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal, blocking
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.fastjson import page_response
from api.fields import CODE_PATTERN, BigId, OptId, Text, aware
from api.pagination import Page, Paging
from api.queries import fetch_found
from api.scope import Action, Where, require
from core.db import Conn
from core.severity import Severity
from lifecycle.acknowledge import AckError, acknowledge
from lifecycle.work_orders import TransitionError, transition

router = APIRouter(tags=["alarms"], responses=ERROR_RESPONSES)
State = Literal["active", "acknowledged", "cleared"]


class Alarm(BaseModel):
    id: int
    device_id: int
    device_uid: str
    community_id: int
    event_code: str
    severity: str
    state: str
    detector: str
    detail: dict[str, Any]
    opened_at: datetime
    last_triggered_at: datetime
    normal_since: datetime | None
    cleared_at: datetime | None
    cleared_reason: str | None
    triggers: int
    flaps: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    list_version: str
    work_order_id: int | None
    in_maintenance: bool = Field(
        False, description="it opened during a maintenance window of its device: not notified"
    )


class Clearing(BaseModel):
    reason: Literal["resolved", "false_alarm"] = Field(
        description="resolved: the fault is fixed (its work order completes); false_alarm: there"
        " was none (its work order closes as a false alarm)"
    )
    note: Text = ""


_SELECT = (
    "SELECT a.id, a.device_id, d.uid AS device_uid, d.community_id, a.event_code, a.severity,"
    " a.state, a.detector, a.detail, a.opened_at, a.last_triggered_at, a.normal_since,"
    " a.cleared_at, a.cleared_reason, a.triggers, a.flaps, a.acknowledged_at, a.acknowledged_by,"
    " a.list_version, wo.id AS work_order_id,"
    " device_in_maintenance(a.device_id, a.opened_at) AS in_maintenance"
    " FROM alarms a JOIN devices d ON d.id = a.device_id"
    " LEFT JOIN work_orders wo ON wo.alarm_id = a.id WHERE "
)


async def filters(
    p: Caller,
    state: Annotated[list[State] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    community_id: OptId = None,
    device: Annotated[str | None, Query(pattern=CODE_PATTERN, description="device uid")] = None,
    event_code: Annotated[str | None, Query(max_length=64)] = None,
    opened_from: Annotated[datetime | None, Query()] = None,
    opened_until: Annotated[datetime | None, Query()] = None,
) -> Where:
    """The list's filters, inside the caller's scope (for the list and its export)."""
    w = scope.communities(Where(), p, "d.community_id")
    w.add_if(state, "a.state = ANY(%(state)s)", "state")
    w.add_if(severity, "a.severity = ANY(%(severity)s)", "severity")
    w.add_if(community_id, "d.community_id = %(community)s", "community")
    w.add_if(device, "d.uid = %(uid)s", "uid")
    w.add_if(event_code, "a.event_code = %(code)s", "code")
    w.add_if(aware("opened_from", opened_from), "a.opened_at >= %(t0)s", "t0")
    w.add_if(aware("opened_until", opened_until), "a.opened_at < %(t1)s", "t1")
    return w


Filters = Annotated[Where, Depends(filters)]


async def matching(db: Db, w: Where, limit: int) -> list[dict[str, Any]]:
    """Alarms matching ``w`` as rows of :class:`Alarm`'s fields, newest first, at most ``limit``."""
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY a.id DESC LIMIT %(n)s")
    async with db.cursor(row_factory=dict_row) as cur:
        await cur.execute(q, {**w.params, "n": limit})
        return await cur.fetchall()


@router.get("/alarms", response_model=Page[Alarm])
async def list_alarms(db: Db, p: Caller, paging: Paging, w: Filters) -> Response:
    """Alarms in scope, newest first; ``state`` and ``severity`` may repeat."""
    require(p, Action.READ_COMMUNITIES)
    w.add_if(paging.after_id(), "a.id < %(after)s", "after")
    rows = await matching(db, w, paging.limit + 1)
    return page_response(rows, paging.limit, lambda r: (r["id"],))


async def _one(db: Db, p: Principal, alarm_id: int) -> Alarm:
    w = scope.communities(Where().add("a.id = %(id)s", id=alarm_id), p, "d.community_id")
    return await fetch_found(db, Alarm, "alarm", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/alarms/{alarm_id}")
async def get_alarm(db: Db, p: Caller, alarm_id: BigId) -> Alarm:
    require(p, Action.READ_COMMUNITIES)
    return await _one(db, p, alarm_id)


def _lock(c: Conn, p: Principal, alarm_id: int) -> str:
    """Lock the alarm for this transaction if the caller sees it; return its state."""
    w = scope.communities(Where().add("a.id = %(id)s", id=alarm_id), p, "d.community_id")
    q = (
        sql.SQL("SELECT a.state FROM alarms a JOIN devices d ON d.id = a.device_id WHERE ")
        + w.sql()
        + sql.SQL(" FOR UPDATE OF a")
    )
    row = c.execute(q, w.params).fetchone()
    if row is None:
        raise not_found("alarm")
    return str(row[0])


@router.post("/alarms/{alarm_id}/acknowledge")
async def acknowledge_alarm(db: Db, request: Request, p: Caller, alarm_id: BigId) -> Alarm:
    """Acknowledge: records who and when, moves the work order to "responded" and stops the
    escalation. Acknowledging again changes nothing."""
    require(p, Action.ACT_ON_ALARMS)

    def run(c: Conn) -> None:
        if _lock(c, p, alarm_id) == "acknowledged":
            return
        try:
            acknowledge(c, alarm_id, actor=p.actor, at=datetime.now(UTC))
        except AckError as e:
            raise ApiError(409, "not_open", str(e)) from None

    await blocking(request, run)
    return await _one(db, p, alarm_id)


@router.post("/alarms/{alarm_id}/clear")
async def clear_alarm(
    db: Db, request: Request, p: Caller, alarm_id: BigId, body: Clearing
) -> Alarm:
    """Clear an open alarm by hand and close its work order (completed or false alarm)."""
    require(p, Action.ACT_ON_ALARMS)

    def run(c: Conn) -> None:
        if _lock(c, p, alarm_id) == "cleared":
            raise ApiError(409, "not_open", f"alarm {alarm_id} is already cleared")
        now = datetime.now(UTC)
        reason = f"manual: {body.reason}" + (f": {body.note}" if body.note else "")
        c.execute(
            "UPDATE alarms SET state = 'cleared', cleared_at = %s, cleared_reason = %s"
            " WHERE id = %s",
            (now, reason, alarm_id),
        )
        wo = c.execute(
            "SELECT id FROM work_orders WHERE alarm_id = %s AND closed_at IS NULL", (alarm_id,)
        ).fetchone()
        if wo is not None:
            to = "completed" if body.reason == "resolved" else "false_alarm"
            try:
                transition(c, int(wo[0]), to, actor=p.actor, at=now, note=body.note)
            except TransitionError as e:
                raise ApiError(409, "conflict", str(e)) from None
        # The clear notice, in the same transaction, as analytics writes it for a recovery.
        c.execute(
            "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
            " responsible_party, payload)"
            " SELECT 'alarm_cleared', o.alarm_id, o.work_order_id, o.community_id, o.severity,"
            " o.responsible_party, o.payload || jsonb_build_object('kind', 'alarm_cleared',"
            " 'at', %s::text, 'cleared_by', %s::text, 'cleared_reason', %s::text)"
            " FROM outbox o WHERE o.alarm_id = %s AND o.kind = 'alarm_opened'"
            " ORDER BY o.id LIMIT 1",
            (now.isoformat(), p.actor, reason, alarm_id),
        )

    await blocking(request, run)
    return await _one(db, p, alarm_id)
