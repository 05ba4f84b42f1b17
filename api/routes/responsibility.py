"""API: the event-responsibility list (权责清单): read the list in force, check a candidate,
publish a new version (kept in ``responsibility_lists``)."""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES, RAW_BODY_RESPONSES, ApiError
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_one
from api.scope import Action, require
from api.yaml_body import BODY, DocumentProblem, problems, refused, yaml_text
from core.located_yaml import Problem
from responsibility.model import ListError, ResponsibilityList, default_list, parse_list

router = APIRouter(tags=["responsibility list"], responses=ERROR_RESPONSES)
SOURCE: Final = "candidate"
WHAT: Final = "a list"


class Check(BaseModel):
    valid: bool
    version: str | None
    digest: str | None
    entries: int
    errors: list[DocumentProblem]


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


def _check(text: str) -> tuple[ResponsibilityList | None, list[Problem]]:
    try:
        return parse_list(text, SOURCE), []
    except ListError as e:
        return None, e.errors


def _current_file(request: Request) -> tuple[str, Literal["configured", "shipped"], str]:
    configured: Path | None = request.app.state.settings.responsibility_list
    if configured is not None:
        return configured.read_text(encoding="utf-8-sig"), "configured", str(configured)
    shipped = resources.files("responsibility").joinpath("default.yaml")
    return shipped.read_text(encoding="utf-8"), "shipped", "responsibility/default.yaml"


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


@router.post("/responsibility-list/validate", openapi_extra=BODY, responses=RAW_BODY_RESPONSES)
async def validate(p: Caller, request: Request) -> Check:
    """Check a candidate list against the format and the device catalogue; every problem is
    reported with its line. Nothing is stored."""
    parsed, found = _check(await yaml_text(request, WHAT))
    return Check(
        valid=parsed is not None,
        version=parsed.version if parsed else None,
        digest=parsed.digest if parsed else None,
        entries=len(parsed.entries) if parsed else 0,
        errors=problems(found),
    )


@router.post(
    "/responsibility-list", status_code=201, openapi_extra=BODY, responses=RAW_BODY_RESPONSES
)
async def publish(db: Db, p: Caller, request: Request, response: Response) -> Version:
    """Publish a new version (county regulator). A list with problems is refused with all of
    them; publishing the same version with the same content again changes nothing."""
    require(p, Action.PUBLISH_LIST)
    text = await yaml_text(request, WHAT)
    parsed, found = _check(text)
    if parsed is None:
        raise refused("invalid_list", "the list", found)
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
