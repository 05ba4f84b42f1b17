"""API: the FastAPI application. ``create_app(settings)`` builds it; ``shouwang api`` serves it.

Nothing connects at import time: the lifespan opens the connection pools (an async one for the
routes, a small synchronous one for the platform's shared synchronous functions) and the
stream's listener, and closes them on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from api import errors, limits
from api.deps import TokenCache
from api.metrics import RequestMetrics, keep_alive
from api.routes import (
    alarms,
    audit,
    buildings,
    calendar,
    communities,
    credentials,
    deliveries,
    device_import,
    devices,
    firms,
    gateways,
    maintenance,
    people,
    platform,
    regions,
    responsibility,
    roster_patterns,
    shifts,
    stream,
    telemetry,
    units,
    work_orders,
)
from api.stream import Hub
from core.metrics import Heartbeat
from core.settings import Settings

DESCRIPTION = """\
The platform's HTTP API: the registry, site gateways (state and remote configuration), telemetry, alarms, work orders, the responsibility list,
the duty roster, the notification log, the platform's own alarms, the audit log and a live
stream of changes.

Every call needs `Authorization: Bearer <token>` (tokens come from `shouwang api token issue`).
Each token has a role and a scope; anything outside the scope answers 404, as if it did not
exist. Errors are always `{"error": {"code", "message", "fields"}}`. Lists take `limit` and
`cursor` and answer `{"items", "next"}`. See docs/api.md.
"""


def tune_gc() -> None:
    """For a server process, once its modules are loaded: keep what exists now (modules, the
    app, its models; over 100,000 objects) out of the cycle collector, and collect less often.
    A full collection otherwise walks all of it a few times a second under load, about 50 ms
    each time with every request waiting: the slowest percentile of a busy API."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def create_app(settings: Settings, heartbeat: Heartbeat | None = None) -> FastAPI:
    """The app for ``settings``; ``heartbeat``: the stage's on its metrics endpoint
    (``core.metrics.serve``; ``api.metrics`` records every request and beats while it runs)."""
    beat = Heartbeat("api") if heartbeat is None else heartbeat

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=max(1, settings.api_pool_size),
            kwargs={"autocommit": True, "application_name": "shouwang-api"},
            open=False,
            name="api",
        )
        sync_pool: ConnectionPool[Any] = ConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=4,
            kwargs={"application_name": "shouwang-api-sync"},
            open=False,
            name="api-sync",
        )
        await pool.open(wait=True, timeout=10)
        try:
            sync_pool.open(wait=True, timeout=10)
            app.state.pool = pool
            app.state.sync_pool = sync_pool
            app.state.hub = Hub(
                settings.database_url, settings.api_stream_max, settings.api_stream_max_per_token
            )
            app.state.settings = settings
            app.state.token_cache = TokenCache(settings.api_token_cache_s)
            alive = asyncio.create_task(keep_alive(beat, [pool, sync_pool]), name="heartbeat")
            try:
                yield
            finally:
                alive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await alive
                await app.state.hub.close()
                sync_pool.close()
        finally:
            await pool.close()

    servers = [{"url": settings.api_public_url}] if settings.api_public_url else None
    app = FastAPI(
        title="shouwang API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        servers=servers,
    )
    errors.install(app)
    limits.install(app, settings)
    # Outermost of the middlewares: it sees every answer, the body limit's refusals included.
    app.add_middleware(RequestMetrics, heartbeat=beat)

    for module in (
        regions,
        firms,
        units,
        communities,
        buildings,
        device_import,
        devices,
        credentials,
        gateways,
        telemetry,
        alarms,
        work_orders,
        maintenance,
        responsibility,
        calendar,
        people,
        shifts,
        roster_patterns,
        deliveries,
        platform,
        audit,
        stream,
    ):
        app.include_router(module.router, prefix="/v1")
    # Written alongside: public disclosure, reports and acknowledgement links; their paths carry
    # their own /v1 prefix.
    from api.routes import ack, exports, public, reports  # noqa: PLC0415

    app.include_router(reports.router)
    # Spreadsheet exports of work orders, alarms and the report (docs/api.md, "Exports").
    app.include_router(exports.router, prefix="/v1")
    app.include_router(public.router)
    app.include_router(ack.router)
    # The duty pages (docs/pages.md): HTML for people on phones, signed in by cookie.
    from api.pages import duty, signin  # noqa: PLC0415

    app.include_router(signin.router)
    app.include_router(duty.router)
    from api.pages import console  # noqa: PLC0415 - the firm console (docs/pages.md)

    app.include_router(console.router)
    # The community notice board (docs/pages.md): public pages, and the firm's routes setting it.
    from api.pages import board  # noqa: PLC0415
    from api.routes import notice_board  # noqa: PLC0415

    app.include_router(board.router)
    app.include_router(notice_board.router, prefix="/v1")
    # Residents' complaints from the notice board, and the firm's page for each (docs/pages.md).
    from api.pages import complaints  # noqa: PLC0415

    app.include_router(complaints.router)
    return app
