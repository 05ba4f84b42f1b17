"""API routes: public disclosure of communities' maintenance; no login (``api.disclosure``)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Request

from api.deps import Db
from api.disclosure import (
    CommunityDisclosure,
    CommunitySummary,
    community_disclosure,
    list_communities,
)
from api.errors import ERROR_RESPONSES, ApiError, not_found
from api.fields import CODE_PATTERN, Uid
from api.pagination import Page, Paging, page
from api.routes.responsibility import in_force

router = APIRouter(prefix="/v1/public", tags=["public disclosure"], responses=ERROR_RESPONSES)


@router.get("/communities", response_model=Page[CommunitySummary])
async def communities(db: Db, paging: Paging) -> Page[CommunitySummary]:
    """Every community with its property firm and its maintenance units' public phones."""
    after = paging.after(1)
    if after is not None and not (
        isinstance(after[0], str) and re.fullmatch(CODE_PATTERN, after[0])
    ):
        raise ApiError(400, "bad_cursor", "this cursor belongs to another list")
    rows = await list_communities(
        db, limit=paging.limit + 1, after=None if after is None else str(after[0])
    )
    return page(rows, paging.limit, lambda c: (c.code,))


@router.get("/communities/{code}", response_model=CommunityDisclosure)
async def community(db: Db, code: Uid, request: Request) -> CommunityDisclosure:
    """What the county plan requires a community to disclose: maintenance units and their
    phones, last maintenance of each elevator and fire system, elevator maintenance expenditure,
    and last quarter's work orders with the share closed within limits."""
    rules = (await in_force(request)).rules
    found = await community_disclosure(db, code, now=datetime.now(UTC), rules=rules)
    if found is None:
        raise not_found(f"community {code!r}")
    return found
