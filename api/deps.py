"""API: what every request depends on: a database connection and the caller (``Principal``).

The caller is resolved from its bearer token on each request, so a revoked token stops working
at once. Its ``community_ids`` are fixed for the request and every query filters by them in SQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api.errors import ApiError
from api.tokens import digest
from core.db import Conn

T = TypeVar("T")
AsyncConn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True)
class Principal:
    """Who is calling, and what they may see.

    ``community_ids`` is None for the county regulator (every community); a maintenance unit
    has no communities of its own and sees the work orders assigned to it
    (``maintenance_unit_id``).
    """

    token_id: int
    role: str
    name: str
    community_ids: frozenset[int] | None
    firm_id: int | None
    region_id: int | None
    maintenance_unit_id: int | None

    def sees_community(self, cid: int) -> bool:
        return self.community_ids is None or cid in self.community_ids

    @property
    def actor(self) -> str:
        """How the caller is named in transitions, acknowledgements and comments."""
        return f"{self.name} ({self.role}, token {self.token_id})"


async def conn(request: Request) -> AsyncIterator[AsyncConn]:
    """A pooled autocommit connection for this request."""
    pool: AsyncConnectionPool[AsyncConn] = request.app.state.pool
    async with pool.connection() as c:
        yield c


Db = Annotated[AsyncConn, Depends(conn)]

_bearer = HTTPBearer(auto_error=False, description="an API token from `shouwang api token issue`")

_PRINCIPAL_SQL = """
WITH RECURSIVE t AS (
    SELECT * FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL
), sub AS (
    SELECT r.id FROM regions r JOIN t ON r.id = t.region_id
    UNION ALL SELECT r.id FROM regions r JOIN sub ON r.parent_id = sub.id
)
SELECT t.id, t.role, t.name, t.region_id, t.firm_id, t.community_id, t.maintenance_unit_id,
    ARRAY(SELECT c.id FROM communities c
          WHERE (t.role = 'township' AND c.region_id IN (SELECT id FROM sub))
             OR (t.role IN ('firm_admin', 'duty_staff') AND c.firm_id = t.firm_id)
             OR c.id = t.community_id)
FROM t
"""


async def resolve(db: AsyncConn, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller behind ``credentials``; 401 for none, an unknown or a revoked token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <API token>'")
    cur = await db.execute(_PRINCIPAL_SQL, (digest(credentials.credentials),))
    row = await cur.fetchone()
    if row is None:
        raise ApiError(401, "unauthorized", "this API token is unknown or revoked")
    token_id, role, name, region_id, firm_id, _, unit_id, communities = row
    return Principal(
        token_id=int(token_id),
        role=str(role),
        name=str(name),
        community_ids=None if role == "county_regulator" else frozenset(communities),
        firm_id=firm_id,
        region_id=region_id,
        maintenance_unit_id=unit_id,
    )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def principal(db: Db, credentials: Credentials) -> Principal:
    """The caller of this request, from its bearer token."""
    return await resolve(db, credentials)


Caller = Annotated[Principal, Depends(principal)]


async def blocking(request: Request, fn: Callable[[Conn], T]) -> T:
    """Run ``fn`` in a worker thread on a pooled synchronous connection, in one transaction
    (committed when ``fn`` returns). For the platform's shared synchronous functions:
    work-order transitions, acknowledgements, device credentials."""
    pool: ConnectionPool[Conn] = request.app.state.sync_pool

    def run() -> T:
        with pool.connection() as c:
            return fn(c)

    return await anyio.to_thread.run_sync(run)
