"""API: the event-responsibility list (权责清单): read the list in force, check a candidate,
publish a new version (kept in ``responsibility_lists``)."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, Final, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from api.deps import Caller, Db, blocking
from api.errors import ERROR_RESPONSES, RAW_BODY_RESPONSES, ApiError
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_one
from api.scope import Action, require
from api.yaml_body import BODY, DocumentProblem, in_thread, problems, refused, yaml_text
from core.located_yaml import Problem
from core.settings import Settings
from responsibility.in_force import InForce, list_in_force
from responsibility.loader import ListError, ResponsibilityList, parse_list

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


class CurrentList(Version):
    digest: str = Field(
        description="of the list in force: the list with the override files applied (the"
        " published digest when there are none)"
    )
    source: Literal["published", "configured", "shipped"] = Field(
        description="published: the newest version published here (that passes with the override"
        " files); configured: the file pinned in SHOUWANG_RESPONSIBILITY_LIST; shipped: the"
        " platform's default list"
    )
    overrides: list[str] = Field(
        description="scopes of the county and community override files applied on top"
    )
    content: str = Field(description="the list's YAML, without the override files")
    entries: list[dict[str, Any]] = Field(description="its entries, before the overrides")


def _check(text: str) -> tuple[ResponsibilityList | None, list[Problem]]:
    try:
        return parse_list(text, SOURCE), []
    except ListError as e:
        return None, e.errors


async def in_force(request: Request) -> InForce:
    """The list in force for this API's settings (``responsibility.in_force``), which
    analytics, dashboards and public disclosure use too."""
    s: Settings = request.app.state.settings
    find = partial(
        list_in_force, pinned=s.responsibility_list, overrides_dir=s.responsibility_overrides
    )
    return await blocking(request, find)


@router.get("/responsibility-list")
async def get_list(p: Caller, request: Request) -> CurrentList:
    """The list in force: a file pinned in the settings (``configured``), else the latest
    published version, else the shipped list; the override files apply on top."""
    found = await in_force(request)
    rules, published = found.rules, found.published
    return CurrentList(
        version=rules.version,
        digest=rules.digest,
        published_at=published.published_at if published else None,
        published_by=published.published_by if published else "system",
        source="configured" if found.source == "pinned" else found.source,
        overrides=[o.scope for o in rules.overrides],
        content=found.text,
        entries=[e.model_dump(mode="json") for e in rules.entries.values()],
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
    parsed, found = await in_thread(_check, await yaml_text(request, WHAT))
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
    parsed, found = await in_thread(_check, text)
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
