"""API: fetching rows straight into response models (I/O helpers for the routes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from psycopg import sql
from psycopg.rows import class_row
from pydantic import BaseModel

from api.deps import AsyncConn
from api.errors import not_found

M = TypeVar("M", bound=BaseModel)
Query = str | sql.Composable
Params = Mapping[str, Any] | Sequence[Any] | None


async def fetch_all(db: AsyncConn, model: type[M], query: Query, params: Params = None) -> list[M]:
    async with db.cursor(row_factory=class_row(model)) as cur:
        await cur.execute(query, params)  # type: ignore[arg-type]  # fixed SQL or composed
        return await cur.fetchall()


async def fetch_one(db: AsyncConn, model: type[M], query: Query, params: Params = None) -> M | None:
    async with db.cursor(row_factory=class_row(model)) as cur:
        await cur.execute(query, params)  # type: ignore[arg-type]
        return await cur.fetchone()


async def fetch_found(
    db: AsyncConn, model: type[M], what: str, query: Query, params: Params = None
) -> M:
    """The one row, or 404 (missing and out of scope look the same)."""
    row = await fetch_one(db, model, query, params)
    if row is None:
        raise not_found(what)
    return row


async def scalar(db: AsyncConn, query: Query, params: Params = None) -> Any:
    cur = await db.execute(query, params)  # type: ignore[arg-type]
    row = await cur.fetchone()
    return None if row is None else row[0]


def assignments(changes: Mapping[str, Any]) -> sql.Composable:
    """``col = %(col)s, ...`` for the fields a PATCH sets (names from the request model)."""
    return sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in changes
    )
