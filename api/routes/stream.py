"""API: ``GET /v1/stream``: alarm and work-order changes in the caller's scope, as
Server-Sent Events, live from the database's change notifications (``api.stream``)."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Annotated, Final

import psycopg
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.background import BackgroundTask

from api.deps import AsyncConn, Credentials, Principal, resolve
from api.errors import ERROR_RESPONSES, ApiError, documented
from api.scope import Action, require
from api.stream import Change, Hub, StreamsFull, Subscription, kept_since, missed, visible

router = APIRouter(tags=["stream"], responses=ERROR_RESPONSES)
KEEPALIVE_S: Final = 15.0
MIN_RECHECK_S: Final = 1.0
RETRY_FULL_S: Final = 10


def _event(change: Change) -> str:
    return f"id: {change.seq}\nevent: {change.kind}\ndata: {json.dumps(change.as_dict())}\n\n"


def recheck_every(token_cache_s: float) -> float:
    """How often a stream reads its token again: the token cache time (a revoked token stops
    working within it everywhere), at least ``MIN_RECHECK_S``."""
    return max(MIN_RECHECK_S, token_cache_s)


async def _recheck(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> Principal | str:
    """The caller as the database has it now (not the token cache's), or the last event of a
    stream that must end: ``revoked`` (the token is no longer valid) or ``reset`` (the database
    could not be asked; the client reconnects)."""
    pool: AsyncConnectionPool[AsyncConn] = request.app.state.pool
    try:
        async with pool.connection() as db:
            p = await resolve(db, credentials)
        require(p, Action.READ_WORK_ORDERS)
    except ApiError as e:
        return f"event: revoked\ndata: {json.dumps({'reason': e.message})}\n\n"
    except (psycopg.Error, PoolTimeout):
        why = {"reason": "the token could not be checked; reconnect"}
        return f"event: reset\ndata: {json.dumps(why)}\n\n"
    return p


async def _events(
    hub: Hub,
    sub: Subscription,
    p: Principal,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None,
    max_events: int | None,
    max_seconds: float | None,
    after: int | None,
) -> AsyncIterator[str]:
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    every = recheck_every(request.app.state.settings.api_token_cache_s)
    recheck_at = time.monotonic() + every
    sent, last = 0, -1
    try:
        yield "retry: 3000\nevent: ready\ndata: {}\n\n"
        if after is not None:  # a reconnect: what it missed first, then live
            pool: AsyncConnectionPool[AsyncConn] = request.app.state.pool
            async with pool.connection() as db:
                oldest = await kept_since(db)
                replay = await missed(db, after)
            if oldest is not None and after < oldest - 1:
                gap = {"after": after, "oldest_kept": oldest, "reason": "re-read the lists"}
                yield f"event: gap\ndata: {json.dumps(gap)}\n\n"
            for earlier in replay:
                last = earlier.seq
                if visible(earlier, p) and (max_events is None or sent < max_events):
                    sent += 1
                    yield _event(earlier)
        keepalive_at = time.monotonic() + KEEPALIVE_S
        while max_events is None or sent < max_events:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                break
            if now >= recheck_at:  # the token may have been revoked, its scope changed
                checked = await _recheck(request, credentials)
                if isinstance(checked, str):
                    yield checked
                    break
                p, recheck_at = checked, time.monotonic() + every
            if now >= keepalive_at:
                if await request.is_disconnected():
                    break
                yield ": keepalive\n\n"
                keepalive_at = now + KEEPALIVE_S
            wake = min(recheck_at, keepalive_at, math.inf if deadline is None else deadline)
            try:
                change = await asyncio.wait_for(
                    sub.queue.get(), timeout=max(0.0, wake - time.monotonic())
                )
            except TimeoutError:
                continue
            if change is None:
                yield 'event: reset\ndata: {"reason": "the stream fell behind; reconnect"}\n\n'
                break
            if change.seq > last and visible(change, p):
                sent += 1
                yield _event(change)
                keepalive_at = time.monotonic() + KEEPALIVE_S
    finally:
        hub.unsubscribe(sub)


def _full(e: StreamsFull) -> ApiError:
    retry = {"Retry-After": str(RETRY_FULL_S)}
    if e.per_token:
        return ApiError(
            429,
            "too_many_streams",
            f"this token has {e.cap} live streams open, the most it may"
            " (SHOUWANG_API_STREAM_MAX_PER_TOKEN); close one first",
            headers=retry,
        )
    return ApiError(
        503,
        "streams_full",
        f"this API process serves {e.cap} live streams, the most it may"
        " (SHOUWANG_API_STREAM_MAX); try again later",
        headers=retry,
    )


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **documented(503),
    },
)
async def stream(
    request: Request,
    credentials: Credentials,
    max_events: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    max_seconds: Annotated[float | None, Query(gt=0, le=86_400)] = None,
    last_event_id: Annotated[
        int | None,
        Header(alias="Last-Event-ID", ge=0, description="resume after this event (SSE reconnect)"),
    ] = None,
    after: Annotated[int | None, Query(ge=0, description="as Last-Event-ID, for scripts")] = None,
) -> StreamingResponse:
    """Server-Sent Events: ``ready`` once listening, then one ``alarm`` or ``work_order`` event
    per committed change in your scope (``data``: kind, op, id, community_id, device_id,
    event_code, severity, state). Comments keep the connection alive every 15 s; ``reset`` means
    the client fell behind and should reconnect. Each event's ``id`` is its number in the change
    log: a client that reconnects with ``Last-Event-ID`` (browsers' EventSource does) or
    ``after`` is first sent the changes in its scope it missed (kept 7 days), then live ones;
    ``gap`` first if some of what it missed is no longer kept (re-read the lists).
    ``max_events`` / ``max_seconds`` end the stream early (for scripts and tests). The token
    is read again every ``SHOUWANG_API_TOKEN_CACHE_S`` (at least 1 s): once revoked, the stream
    ends with ``revoked``. A token has at most ``SHOUWANG_API_STREAM_MAX_PER_TOKEN`` streams
    open (429 beyond), the API process ``SHOUWANG_API_STREAM_MAX`` (503 beyond)."""
    pool: AsyncConnectionPool[AsyncConn] = request.app.state.pool
    hub: Hub = request.app.state.hub
    async with pool.connection() as db:  # held only to identify the caller, not for the stream
        p = await resolve(db, credentials)
        require(p, Action.READ_WORK_ORDERS)
        await hub.forget_old(db)
    try:  # before the answer starts: a failure here is still an error
        sub = await hub.subscribe(p.token_id)
    except StreamsFull as e:
        raise _full(e) from None
    return StreamingResponse(
        _events(hub, sub, p, request, credentials, max_events, max_seconds, after or last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(hub.unsubscribe, sub),  # also when the body never started
    )
