"""API: one error body for every 4xx and 5xx, and the one place errors become responses.

Every error response is ``{"error": {"code", "message", "fields": [...]}}``; ``fields`` names
each offending input (``body.name``, ``query.limit``, ``row 3`` of a CSV with ``row``, a line of
a YAML file with ``line``). Routes raise :class:`ApiError`; FastAPI's validation errors, unknown
paths and the database's integrity errors are mapped here, nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

import psycopg.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import ShouwangError

log = logging.getLogger("shouwang.api")


class FieldError(BaseModel):
    field: str
    message: str
    row: int | None = None  # CSV imports: the row's line number (the header is line 1)
    line: int | None = None  # YAML documents: the line of the problem


class ErrorDetail(BaseModel):
    code: str
    message: str
    fields: list[FieldError] = []


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error the caller can act on; ``status`` is the HTTP status, ``code`` a stable word."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[FieldError] = (),
        headers: Mapping[str, str] | None = None,  # e.g. Retry-After
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        self.headers = dict(headers or {})


def not_found(what: str) -> ApiError:
    """The same answer for "does not exist" and "not in your scope"."""
    return ApiError(404, "not_found", f"no {what} here; check the id, or that it is in your scope")


def forbidden(action: str) -> ApiError:
    return ApiError(403, "forbidden", f"your role may not {action}")


def invalid(field: str, message: str) -> ApiError:
    return ApiError(
        422, "invalid", f"{field}: {message}", [FieldError(field=field, message=message)]
    )


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses, each with the error body."""
    return {s: {"model": ErrorBody, "description": HTTPStatus(s).phrase} for s in statuses}


# Every route documents these, so schema checks accept them (413: a body above the limit, 429:
# a token's writes or streams above its limit; api/limits.py); routes reading a raw body add
# RAW_BODY_RESPONSES.
ERROR_RESPONSES: Final = documented(400, 401, 403, 404, 409, 413, 422, 429)
RAW_BODY_RESPONSES: Final = documented(413, 415)


def body(
    status: int,
    code: str,
    message: str,
    fields: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    detail = ErrorDetail(code=code, message=message, fields=list(fields))
    extra = dict(headers or {})
    if status == 401:
        extra["WWW-Authenticate"] = "Bearer"
    return JSONResponse(
        ErrorBody(error=detail).model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=extra or None,
    )


def _loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
_CODES |= {405: "method_not_allowed", 406: "not_acceptable", 409: "conflict"}
_CODES |= {413: "too_large", 415: "unsupported_media_type", 422: "invalid", 429: "rate_limited"}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, e: ApiError) -> JSONResponse:
        return body(e.status, e.code, e.message, e.fields, e.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, e: RequestValidationError) -> JSONResponse:
        fields = [FieldError(field=_loc(err["loc"]), message=err["msg"]) for err in e.errors()]
        names = ", ".join(dict.fromkeys(f.field for f in fields))
        return body(422, "invalid", f"the request is not valid: {names}", fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(e.status_code, "error")
        message = str(e.detail) if e.detail else HTTPStatus(e.status_code).phrase
        if e.status_code == 404:
            message = "no such resource; see /docs for the API's paths"
        return body(e.status_code, code, message)

    @app.exception_handler(psycopg.errors.UniqueViolation)
    async def _unique(_: Request, e: psycopg.errors.UniqueViolation) -> JSONResponse:
        what = e.diag.constraint_name or "a unique key"
        return body(409, "conflict", f"this would duplicate an existing record ({what})")

    @app.exception_handler(psycopg.errors.ForeignKeyViolation)
    async def _in_use(_: Request, e: psycopg.errors.ForeignKeyViolation) -> JSONResponse:
        table = e.diag.table_name or "another record"
        return body(409, "conflict", f"other records ({table}) still refer to this one")

    @app.exception_handler(psycopg.errors.IntegrityError)
    async def _integrity(_: Request, e: psycopg.errors.IntegrityError) -> JSONResponse:
        what = e.diag.constraint_name or type(e).__name__
        return body(422, "invalid", f"the registry refuses this value ({what})")

    @app.exception_handler(psycopg.DataError)
    async def _data(_: Request, e: psycopg.DataError) -> JSONResponse:
        return body(422, "invalid", f"the database cannot store this value ({type(e).__name__})")

    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(PoolTimeout)
    @app.exception_handler(ShouwangError)
    async def _unavailable(request: Request, e: Exception) -> JSONResponse:
        log.warning("%s %s: %s", request.method, request.url.path, e)
        return body(503, "unavailable", "a service the API needs is unavailable; try again later")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return body(500, "internal", "the server failed; the error is logged")
