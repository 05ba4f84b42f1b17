"""API: the audit log: who changed the registry, credentials, roster, tokens, lists and alarm or
work-order state, when, and the row before and after (secrets redacted; ``core.audit``).

The county regulator reads all of it; a firm admin the entries of its own firm (its firm, its
communities and what is in them, its people and their channels, its tokens and work orders: the
firm at the time of the change, before or after it); every other role gets 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from psycopg import sql
from pydantic import BaseModel

from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES
from api.fields import INT8, OptId, aware
from api.pagination import Page, Paging, page
from api.queries import fetch_all
from api.scope import Action, Where, require
from core.audit import RESOURCES

router = APIRouter(tags=["audit"], responses=ERROR_RESPONSES)

Resource = Literal[RESOURCES]  # type: ignore[valid-type]  # the audited tables, one list


class AuditEntry(BaseModel):
    id: int
    at: datetime
    xact: int  # the database transaction: changes made together share it
    actor: str  # "name (role, token N)", "cli:<OS user>", "sql:<database role>"
    via: Literal["api", "cli", "sql"]
    token_id: int | None
    db_role: str  # the database login the change came through
    action: Literal["insert", "update", "delete", "truncate"]
    resource: str
    resource_id: str | None
    firm_ids: list[int]
    community_id: int | None
    region_id: int | None
    before: dict[str, Any] | None  # an update: only the columns it changed
    after: dict[str, Any] | None


_SELECT = (
    "SELECT id, at, xact, actor, via, token_id, db_role, action, resource, resource_id,"
    " firm_ids, community_id, region_id, before, after FROM audit_log WHERE "
)


@router.get("/audit", response_model=Page[AuditEntry])
async def list_audit(
    db: Db,
    p: Caller,
    paging: Paging,
    resource: Annotated[Resource | None, Query(description="the table changed")] = None,
    resource_id: Annotated[
        str | None, Query(max_length=200, description="its key, e.g. a device's id")
    ] = None,
    actor: Annotated[str | None, Query(max_length=300, description="exactly as listed")] = None,
    token_id: OptId = None,
    via: Annotated[Literal["api", "cli", "sql"] | None, Query()] = None,
    action: Annotated[Literal["insert", "update", "delete", "truncate"] | None, Query()] = None,
    firm_id: OptId = None,
    community_id: OptId = None,
    xact: Annotated[int | None, Query(ge=1, le=INT8)] = None,
    since: Annotated[datetime | None, Query(description="with a time zone")] = None,
    until: Annotated[datetime | None, Query(description="with a time zone; exclusive")] = None,
) -> Page[AuditEntry]:
    """Changes, newest first: the regulator's all, a firm admin's its own firm's."""
    require(p, Action.READ_AUDIT)
    w = Where()
    if p.role != "county_regulator":  # a firm admin: its own firm's entries
        w.add("firm_ids @> ARRAY[%(scope_firm)s]::int[]", scope_firm=p.firm_id)
    w.add_if(resource, "resource = %(resource)s", "resource")
    w.add_if(resource_id, "resource_id = %(resource_id)s", "resource_id")
    w.add_if(actor, "actor = %(actor)s", "actor")
    w.add_if(token_id, "token_id = %(token)s", "token")
    w.add_if(via, "via = %(via)s", "via")
    w.add_if(action, "action = %(action)s", "action")
    w.add_if(firm_id, "firm_ids @> ARRAY[%(firm)s]::int[]", "firm")
    w.add_if(community_id, "community_id = %(community)s", "community")
    w.add_if(xact, "xact = %(xact)s", "xact")
    w.add_if(aware("since", since), "at >= %(since)s", "since")
    w.add_if(aware("until", until), "at < %(until)s", "until")
    w.add_if(paging.after_id(), "id < %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY id DESC LIMIT %(n)s")
    rows = await fetch_all(db, AuditEntry, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))
