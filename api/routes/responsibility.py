"""API: the event-responsibility list (权责清单): read the list in force, check a candidate,
publish a new version (kept in ``responsibility_lists``)."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, ValidationError

from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES, RAW_BODY_RESPONSES, ApiError, FieldError
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_one
from api.scope import Action, require
from core.responsibility import ListError, ResponsibilityList, default_list, parse_list

router = APIRouter(tags=["responsibility list"], responses=ERROR_RESPONSES)
MAX_BYTES: Final = 1_000_000
SOURCE: Final = "candidate"


class Candidate(BaseModel):
    content: str = Field(max_length=MAX_BYTES, description="the list as YAML text")


class Problem(BaseModel):
    line: int
    path: str
    message: str


class Check(BaseModel):
    valid: bool
    version: str | None
    digest: str | None
    entries: int
    errors: list[Problem]


class Version(BaseModel):
    version: str
    digest: str
    published_at: datetime | None
    published_by: str


class _Stored(Version):
    content: str


class CurrentList(Version):
    source: Literal["published", "configured", "shipped"]
    content: str
    entries: list[dict[str, Any]]


_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": Candidate.model_json_schema()},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def _candidate(request: Request) -> str:
    """The YAML text: a raw YAML body, or JSON ``{"content": "..."}``."""
    raw = await request.body()
    if len(raw) > MAX_BYTES:
        raise ApiError(413, "too_large", f"a list is at most {MAX_BYTES} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/yaml", "application/x-yaml", "text/yaml", "text/plain"):
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(400, "bad_request", "the list is not UTF-8 text") from None
    try:
        return Candidate.model_validate_json(raw).content
    except ValidationError as e:
        fields = [FieldError(field="body.content", message=err["msg"]) for err in e.errors()]
        raise ApiError(
            422, "invalid", 'send YAML, or JSON {"content": "<YAML text>"}', fields
        ) from None


def _check(text: str) -> tuple[ResponsibilityList | None, list[Problem]]:
    try:
        return parse_list(text, SOURCE), []
    except ListError as e:
        return None, [Problem(line=p.line, path=p.path, message=p.message) for p in e.errors]


def _current_file(request: Request) -> tuple[str, Literal["configured", "shipped"], str]:
    configured: Path | None = request.app.state.settings.responsibility_list
    if configured is not None:
        return configured.read_text(encoding="utf-8-sig"), "configured", str(configured)
    shipped = resources.files("core").joinpath("responsibility.yaml")
    return shipped.read_text(encoding="utf-8"), "shipped", "core/responsibility.yaml"


@router.get("/responsibility-list")
async def get_list(db: Db, p: Caller, request: Request) -> CurrentList:
    """The list in force: the latest published version, else the configured or shipped file."""
    row = await fetch_one(
        db,
        _Stored,
        "SELECT version, digest, published_at, published_by, content FROM responsibility_lists"
        " ORDER BY published_at DESC, version DESC LIMIT 1",
    )
    source: Literal["published", "configured", "shipped"]
    if row is not None:
        text, source, name, published = row.content, "published", row.published_by, row
    else:
        text, source, name = _current_file(request)
        published = None
    parsed = parse_list(text, name) if source != "shipped" else default_list()
    return CurrentList(
        version=parsed.version,
        digest=published.digest if published else parsed.digest,
        published_at=published.published_at if published else None,
        published_by=name if published else "system",
        source=source,
        content=text,
        entries=[e.model_dump(mode="json") for e in parsed.entries.values()],
    )


@router.get("/responsibility-list/versions", response_model=Page[Version])
async def list_versions(db: Db, p: Caller, paging: Paging) -> Page[Version]:
    """Published versions, newest first."""
    after = paging.after(2)
    rows = await fetch_all(
        db,
        Version,
        "SELECT version, digest, published_at, published_by FROM responsibility_lists"
        " WHERE %(t)s::timestamptz IS NULL OR (published_at, version) < (%(t)s, %(v)s)"
        " ORDER BY published_at DESC, version DESC LIMIT %(n)s",
        {
            "t": None if after is None else str(after[0]),
            "v": None if after is None else str(after[1]),
            "n": paging.limit + 1,
        },
    )
    return page(rows, paging.limit, lambda r: (str(r.published_at), r.version))


@router.post("/responsibility-list/validate", openapi_extra=_BODY, responses=RAW_BODY_RESPONSES)
async def validate(p: Caller, request: Request) -> Check:
    """Check a candidate list against the format and the device catalogue; every problem is
    reported with its line. Nothing is stored."""
    parsed, problems = _check(await _candidate(request))
    return Check(
        valid=parsed is not None,
        version=parsed.version if parsed else None,
        digest=parsed.digest if parsed else None,
        entries=len(parsed.entries) if parsed else 0,
        errors=problems,
    )


@router.post(
    "/responsibility-list", status_code=201, openapi_extra=_BODY, responses=RAW_BODY_RESPONSES
)
async def publish(db: Db, p: Caller, request: Request, response: Response) -> Version:
    """Publish a new version (county regulator). A list with problems is refused with all of
    them; publishing the same version with the same content again changes nothing."""
    require(p, Action.PUBLISH_LIST)
    text = await _candidate(request)
    parsed, problems = _check(text)
    if parsed is None:
        fields = [FieldError(field=e.path, line=e.line, message=e.message) for e in problems]
        raise ApiError(422, "invalid_list", f"{len(problems)} problem(s) in the list", fields)
    existing = await fetch_one(
        db,
        Version,
        "SELECT version, digest, published_at, published_by FROM responsibility_lists"
        " WHERE version = %s",
        (parsed.version,),
    )
    if existing is not None:
        if existing.digest == parsed.digest:
            response.status_code = 200
            return existing
        raise ApiError(
            409,
            "version_taken",
            f"version {parsed.version} is already published with other content; raise the version",
        )
    stored = await fetch_one(
        db,
        Version,
        "INSERT INTO responsibility_lists (version, digest, content, published_by)"
        " VALUES (%s, %s, %s, %s) RETURNING version, digest, published_at, published_by",
        (parsed.version, parsed.digest, text, p.actor),
    )
    assert stored is not None
    return stored
