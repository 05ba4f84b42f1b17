"""API: pagination of every list (pure).

A list takes ``limit`` (1..500, default 50) and ``cursor``, the opaque ``next`` of the page
before, and answers ``{"items": [...], "next": <cursor or null>}``. Cursors are keyset
positions (the sort key of the last item), so pages stay consistent while rows are added.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from api.errors import ApiError, FieldError

T = TypeVar("T")
Key = tuple[int | str, ...]
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> Key:
    bad = ApiError(
        400,
        "bad_cursor",
        "this cursor is not valid; pass the 'next' value of the previous page as it is",
        [FieldError(field="query.cursor", message="not a cursor from this list")],
    )
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        raise bad from None
    if (
        not isinstance(raw, list)
        or len(raw) != arity
        or not all(isinstance(v, int | str) and not isinstance(v, bool) for v in raw)
    ):
        raise bad
    return tuple(raw)


@dataclass(frozen=True, slots=True)
class PageParams:
    limit: int
    cursor: str | None

    def after(self, arity: int = 1) -> Key | None:
        return None if self.cursor is None else decode_cursor(self.cursor, arity)

    def after_id(self) -> int | None:
        """The cursor of a list ordered by one integer id."""
        key = self.after(1)
        if key is None:
            return None
        if not isinstance(key[0], int):
            raise ApiError(400, "bad_cursor", "this cursor belongs to another list")
        return key[0]


async def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="the 'next' of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit, cursor)


Paging = Annotated[PageParams, Depends(page_params)]


def page(rows: Sequence[T], limit: int, key: Callable[[T], Key]) -> Page[T]:
    """A page from ``rows`` fetched with ``LIMIT limit + 1``: the extra row says there is more."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return Page[T](items=items, next=encode_cursor(key(items[-1])) if more and items else None)
