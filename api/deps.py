"""API: what every request depends on: a database connection and the caller (``Principal``).

The caller is resolved from its bearer token (one recursive query), then kept for
``api_token_cache_s`` seconds (:class:`TokenCache`, default 5; 0 turns it off), so a revoked token
or a changed scope (a community created, moved or handed to another firm elsewhere) takes effect
within that time. A change made through this API process takes effect in it at once: any
request other than GET, HEAD or OPTIONS empties the cache when it is done. Its ``community_ids``
are fixed for the request and every query filters by them in SQL.

Such a request also names its caller on its database connections for the audit log
(``core.audit``): for the session on the pooled autocommit connection, until the request ends;
for the transaction on the synchronous one (:func:`blocking`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, TypeVar

import anyio.to_thread
import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api.errors import ApiError
from api.limits import throttle
from api.tokens import digest
from core.audit import FORGET_SQL, Actor, naming
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


@dataclass
class TokenCache:
    """Callers resolved from their token digests, each kept for ``ttl_s`` seconds after it was
    read from the database (only known, unrevoked tokens; ``ttl_s`` <= 0 keeps nothing)."""

    ttl_s: float
    max_entries: int = 10_000
    _entries: dict[bytes, tuple[float, Principal]] = field(default_factory=dict)

    def get(self, key: bytes) -> Principal | None:
        hit = self._entries.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return hit[1]

    def put(self, key: bytes, p: Principal) -> None:
        if self.ttl_s <= 0:
            return
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[key] = (now + self.ttl_s, p)

    def clear(self) -> None:
        self._entries.clear()


async def resolve(
    db: AsyncConn,
    credentials: HTTPAuthorizationCredentials | None,
    cache: TokenCache | None = None,
) -> Principal:
    """The caller behind ``credentials``; 401 for none, an unknown or a revoked token (one
    revoked less than ``cache.ttl_s`` ago may still pass)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <API token>'")
    key = digest(credentials.credentials)
    if cache is not None and (cached := cache.get(key)) is not None:
        return cached
    cur = await db.execute(_PRINCIPAL_SQL, (key,))
    row = await cur.fetchone()
    if row is None:
        raise ApiError(401, "unauthorized", "this API token is unknown or revoked")
    token_id, role, name, region_id, firm_id, _, unit_id, communities = row
    p = Principal(
        token_id=int(token_id),
        role=str(role),
        name=str(name),
        community_ids=None if role == "county_regulator" else frozenset(communities),
        firm_id=firm_id,
        region_id=region_id,
        maintenance_unit_id=unit_id,
    )
    if cache is not None:
        cache.put(key, p)
    return p


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


async def principal(request: Request, db: Db, credentials: Credentials) -> AsyncIterator[Principal]:
    """The caller of this request, from its bearer token. A request that may change something
    (any method but GET, HEAD and OPTIONS) takes one from the token's write allowance
    (``api.limits.throttle``: 429 when it is used up), names the caller on the request's
    connections for the audit log (``core.audit``), and the token cache is emptied after it,
    so what it changed (a community's firm or region, say) is in force for the next request at
    once."""
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    write = request.method not in _READS
    p = await resolve(db, credentials, cache)
    if write:
        throttle(request, p.token_id)
        await _name(request, db, Actor(p.actor, "api", p.token_id))
    try:
        yield p
    finally:
        if write:
            await _forget(db)
        if cache is not None and write:
            cache.clear()


def act(request: Request, actor: Actor) -> None:
    """Who this request's changes are by in the audit log, for its :func:`blocking` calls (a
    request with a token names its caller itself)."""
    request.state.audit_actor = actor


async def _name(request: Request, db: AsyncConn, actor: Actor) -> None:
    """Name the caller on the request's connection, for the session (it is autocommit: a
    transaction's setting would end with the statement), and for :func:`blocking`."""
    act(request, actor)
    query, params = naming(actor, local=False)
    await db.execute(query, params)


async def _forget(db: AsyncConn) -> None:
    """Name nobody again before the connection goes back to the pool, even when the request was
    cancelled; a connection that cannot be told is closed (the pool discards it), so no name
    outlives its request."""
    with anyio.CancelScope(shield=True):
        try:
            await db.execute(FORGET_SQL)
        except psycopg.Error:
            await db.close()


# scope="function": the cache is emptied when the route returns, before its answer goes out.
Caller = Annotated[Principal, Depends(principal, scope="function")]


async def blocking(request: Request, fn: Callable[[Conn], T]) -> T:
    """Run ``fn`` in a worker thread on a pooled synchronous connection, in one transaction
    (committed when ``fn`` returns). For the platform's shared synchronous functions:
    work-order transitions, acknowledgements, device credentials. The request's actor
    (:func:`act`) is named for that transaction only: what ``fn`` changes after committing
    part-way is recorded as the API's database role."""
    pool: ConnectionPool[Conn] = request.app.state.sync_pool
    actor: Actor | None = getattr(request.state, "audit_actor", None)

    def run() -> T:
        with pool.connection() as c:
            if actor is not None:
                c.execute(*naming(actor, local=True))
            return fn(c)

    return await anyio.to_thread.run_sync(run)
