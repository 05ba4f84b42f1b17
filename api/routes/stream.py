"""API: ``GET /v1/stream``: alarm and work-order changes in the caller's scope, as
Server-Sent Events, live from the database's change notifications (``api.stream``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Final

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import AsyncConnectionPool
from starlette.background import BackgroundTask

from api.deps import AsyncConn, Credentials, Principal, resolve
from api.errors import ERROR_RESPONSES
from api.scope import Action, require
from api.stream import Change, Hub, Subscription, kept_since, missed, visible

router = APIRouter(tags=["stream"], responses=ERROR_RESPONSES)
KEEPALIVE_S: Final = 15.0


def _event(change: Change) -> str:
    return f"id: {change.seq}\nevent: {change.kind}\ndata: {json.dumps(change.as_dict())}\n\n"


async def _events(
    hub: Hub,
    sub: Subscription,
    p: Principal,
    request: Request,
    max_events: int | None,
    max_seconds: float | None,
    after: int | None,
) -> AsyncIterator[str]:
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
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
        while max_events is None or sent < max_events:
            wait = KEEPALIVE_S
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    break
            try:
                change = await asyncio.wait_for(sub.queue.get(), timeout=wait)
            except TimeoutError:
                if await request.is_disconnected():
                    break
                yield ": keepalive\n\n"
                continue
            if change is None:
                yield 'event: reset\ndata: {"reason": "the stream fell behind; reconnect"}\n\n'
                break
            if change.seq > last and visible(change, p):
                sent += 1
                yield _event(change)
    finally:
        hub.unsubscribe(sub)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
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
    ``max_events`` / ``max_seconds`` end the stream early (for scripts and tests)."""
    pool: AsyncConnectionPool[AsyncConn] = request.app.state.pool
    hub: Hub = request.app.state.hub
    async with pool.connection() as db:  # held only to identify the caller, not for the stream
        p = await resolve(db, credentials)
        require(p, Action.READ_WORK_ORDERS)
        await hub.forget_old(db)
    sub = await hub.subscribe()  # before the answer starts: a failure here is still an error
    return StreamingResponse(
        _events(hub, sub, p, request, max_events, max_seconds, after or last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        background=BackgroundTask(hub.unsubscribe, sub),  # also when the body never started
    )
