"""API: JSON answers written straight from database rows, for the lists read most often.

FastAPI validates a route's return value against its ``response_model`` and serialises it through
pydantic: for a page of a hundred devices with a thousand readings that is most of the request's
CPU. The hot lists (the latest state of devices, alarms) build plain dicts from their rows and
answer them through :func:`json_response` instead; their ``response_model`` stays in the route
decorator, so the OpenAPI schema is unchanged, and FastAPI passes a ``Response`` through as it is.
orjson writes exactly what pydantic would (``Z`` for UTC, microseconds only when not zero, NaN
and infinities as ``null``); tests compare the two byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson
from fastapi import Response

from api.pagination import Key, encode_cursor

OPTIONS: Final = orjson.OPT_UTC_Z


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=OPTIONS)


def json_response(content: Any) -> Response:
    return Response(dumps(content), media_type="application/json")


def page_response(
    rows: list[dict[str, Any]], limit: int, key: Callable[[dict[str, Any]], Key]
) -> Response:
    """``{"items", "next"}`` from ``rows`` fetched with ``LIMIT limit + 1``, as
    :func:`api.pagination.page` answers it."""
    items = rows[:limit]
    more = len(rows) > limit
    nxt = encode_cursor(key(items[-1])) if more and items else None
    return json_response({"items": items, "next": nxt})
