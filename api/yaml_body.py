"""API: a YAML document sent as a request body, raw (``application/yaml``) or as JSON
``{"content": "<YAML text>"}``; used by the routes that take documents people write.

A document is at most ``MAX_BYTES`` of YAML whatever the body's limit (the upload routes' body
may be up to ``SHOUWANG_API_MAX_UPLOAD_BYTES``, ``api/limits.py``), and is parsed in a worker
thread (:func:`in_thread`), so that a large one does not hold up every other request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

import anyio.to_thread
from fastapi import Request
from pydantic import BaseModel, Field, ValidationError

from api.errors import ApiError, FieldError
from core.located_yaml import Problem

T = TypeVar("T")
MAX_BYTES: Final = 1_000_000  # of YAML: a document people write
YAML_TYPES: Final = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")


class Document(BaseModel):
    content: str = Field(max_length=MAX_BYTES, description="the document as YAML text")


class DocumentProblem(BaseModel):
    line: int
    path: str
    message: str


# For a route's ``openapi_extra``: the two ways to send the document.
BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Document.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def yaml_text(request: Request, what: str) -> str:
    """The YAML text of the body; ``what`` names the document in errors ("a list")."""
    raw = await request.body()
    if len(raw) > MAX_BYTES:
        raise ApiError(
            413,
            "too_large",
            f"{what} is at most {MAX_BYTES} bytes of YAML",
            [FieldError(field="body", message=f"more than {MAX_BYTES} bytes")],
        )
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in YAML_TYPES:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(400, "bad_request", f"{what} is not UTF-8 text") from None
    try:
        return Document.model_validate_json(raw).content
    except ValidationError as e:
        fields = [FieldError(field="body.content", message=err["msg"]) for err in e.errors()]
        raise ApiError(
            422, "invalid", 'send YAML, or JSON {"content": "<YAML text>"}', fields
        ) from None


async def in_thread(parse: Callable[[str], T], text: str) -> T:
    """``parse(text)`` in a worker thread: parsing a document takes CPU time (seconds for a
    large one), which must not stop the event loop serving every other request and stream."""
    return await anyio.to_thread.run_sync(parse, text)


def problems(errors: Sequence[Problem]) -> list[DocumentProblem]:
    return [DocumentProblem(line=p.line, path=p.path, message=p.message) for p in errors]


def refused(code: str, what: str, errors: Sequence[Problem]) -> ApiError:
    """422 with every problem of a document, each with its line."""
    fields = [FieldError(field=p.path, line=p.line, message=p.message) for p in errors]
    return ApiError(422, code, f"{len(errors)} problem(s) in {what}", fields)
