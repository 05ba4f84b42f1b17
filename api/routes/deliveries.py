"""API: the notification delivery log: every attempt to reach someone about an alarm."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from psycopg import sql
from pydantic import BaseModel

from api import scope
from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES
from api.fields import INT8, OptId, aware
from api.pagination import Page, Paging, page
from api.queries import fetch_all
from api.scope import Action, Where, require

router = APIRouter(tags=["notifications"], responses=ERROR_RESPONSES)


class Delivery(BaseModel):
    id: int
    at: datetime
    kind: str
    alarm_id: int | None  # None: a resident's complaint (kind complaint_*)
    work_order_id: int | None
    community_id: int
    severity: str
    person_id: int | None
    channel_id: int
    channel_kind: str
    attempt: int
    status: str
    http_status: int | None
    error: str
    latency_ms: float


_SELECT = (
    "SELECT dl.id, dl.at, o.kind, o.alarm_id, o.work_order_id, o.community_id, o.severity,"
    " dl.person_id, dl.channel_id, ch.kind AS channel_kind, dl.attempt, dl.status,"
    " dl.http_status, dl.error, dl.latency_ms"
    " FROM deliveries dl JOIN outbox o ON o.id = dl.outbox_id"
    " JOIN contact_channels ch ON ch.id = dl.channel_id WHERE "
)


@router.get("/deliveries", response_model=Page[Delivery])
async def list_deliveries(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    person_id: OptId = None,
    alarm_id: Annotated[int | None, Query(ge=1, le=INT8)] = None,
    status: Annotated[Literal["accepted", "failed"] | None, Query()] = None,
    since: Annotated[datetime | None, Query()] = None,
) -> Page[Delivery]:
    """Delivery attempts for the caller's communities, newest first."""
    require(p, Action.READ_DELIVERIES)
    w = scope.communities(Where(), p, "o.community_id")
    w.add_if(community_id, "o.community_id = %(community)s", "community")
    w.add_if(person_id, "dl.person_id = %(person)s", "person")
    w.add_if(alarm_id, "o.alarm_id = %(alarm)s", "alarm")
    w.add_if(status, "dl.status = %(status)s", "status")
    w.add_if(aware("since", since), "dl.at >= %(since)s", "since")
    w.add_if(paging.after_id(), "dl.id < %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY dl.id DESC LIMIT %(n)s")
    rows = await fetch_all(db, Delivery, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))
