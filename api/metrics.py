"""API: its metrics (module-level, in the process's default registry), the middleware that
records every request, and the task that keeps the heartbeat and the pool figures.

- ``shouwang_api_requests_total{route,method,status}``: requests answered, by the matched
  route's path template (``/v1/devices/{uid}``: never the raw path, so the label's values stay
  as few as the routes), ``unmatched`` for a path no route takes (or one refused before
  routing, such as a body over the limit); the method, ``OTHER`` for one HTTP does not define.
- ``shouwang_api_request_seconds{route}``: the time from the request's arrival until its answer
  is sent (for the live stream, until it ends).
- ``shouwang_db_pool_connections{stage,state}``: the API's connection pools, summed (the async
  one of the routes and the small synchronous one): ``size`` (connections open),
  ``available`` (idle in the pool), ``waiting`` (requests waiting for a connection); read every
  :data:`BEAT_EVERY_S`.

The heartbeat (``core/metrics.py``) beats from a task on the server's event loop every
:data:`BEAT_EVERY_S` (a loop blocked by a request is a stuck API), says ``progressed`` with each
request answered and ``pending`` with the requests in flight; a live stream stops counting as
in flight once it has started (it is open for hours by design).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any, Final

from fastapi.routing import APIRoute
from prometheus_client import Counter, Gauge, Histogram
from psycopg_pool.base import BasePool
from starlette.routing import Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import Heartbeat

REQUESTS = Counter(
    "shouwang_api_requests",
    "requests answered, by route template (unmatched: no route), method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "shouwang_api_request_seconds",
    "time to answer a request, by route template",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
POOL = Gauge(
    "shouwang_db_pool_connections",
    "database pool connections: size (open), available (idle), waiting (requests waiting)",
    ["stage", "state"],
)

UNMATCHED: Final = "unmatched"
METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
BEAT_EVERY_S: Final = 1.0
STREAM_TYPE: Final = b"text/event-stream"


def route_label(scope: Scope) -> str:
    """The full path template of the route the router matched for this request (prefixes of
    included routers in it), or ``unmatched`` (pure).

    FastAPI keeps included routers as they are (it does not copy their routes with the prefix):
    ``scope["route"]`` is the route as its router declared it (``/devices/{uid}``), and the full
    template is in FastAPI's own part of the scope, the route context it selected
    (``/v1/devices/{uid}``). tests/api/test_metrics.py holds this to the full template, so a
    FastAPI that moves it fails there."""
    own = scope.get("fastapi")
    if isinstance(own, dict):
        context = own.get("effective_route_context")
        template = getattr(context, "path_format", None)
        if isinstance(template, str) and template:
            return template
        included = own.get("included_router")
        prefix = getattr(getattr(included, "include_context", None), "prefix", "")
    else:
        prefix = ""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not isinstance(template, str) or not template:
        return _plain_route(scope)
    return f"{prefix if isinstance(prefix, str) else ''}{template}"


def _plain_route(scope: Scope) -> str:
    """The template of a plain Starlette route or mount of the app (the OpenAPI document, the
    docs, static files), which leaves no route in the scope; else ``unmatched``."""
    app = scope.get("app")
    for r in getattr(getattr(app, "router", None), "routes", ()):
        if isinstance(r, (Route, Mount)) and not isinstance(r, APIRoute):
            match, _child = r.matches(scope)
            if match == Match.FULL:
                return r.path_format if isinstance(r, Route) else f"{r.path_format}/{{path}}"
    return UNMATCHED


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def _streams(message: Message) -> bool:
    """Whether a response's start says it is a live stream (server-sent events)."""
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-type" and value.split(b";")[0].strip() == STREAM_TYPE:
            return True
    return False


class RequestMetrics:
    """A pure ASGI middleware (it adds no task and no copy of the body): the route, method,
    status and time of every HTTP request, and the requests in flight."""

    def __init__(self, app: ASGIApp, heartbeat: Heartbeat) -> None:
        self.app = app
        self.heartbeat = heartbeat
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # no answer started: the server answers 500
        counted = True  # in flight; a live stream stops counting once it has started

        async def sending(message: Message) -> None:
            nonlocal status, counted
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if counted and _streams(message):
                    counted = False
                    self._leave()
            await send(message)

        self.in_flight += 1
        self.heartbeat.pending(self.in_flight)
        try:
            await self.app(scope, receive, sending)
        finally:
            if counted:
                self._leave()
            route = route_label(scope)
            REQUESTS.labels(route, method_label(str(scope.get("method", ""))), str(status)).inc()
            REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
            self.heartbeat.progressed(1)

    def _leave(self) -> None:
        self.in_flight -= 1
        self.heartbeat.pending(self.in_flight)


def pool_figures(pools: Iterable[BasePool]) -> dict[str, int]:
    """The pools' connections, summed: size, available, waiting."""
    out = {"size": 0, "available": 0, "waiting": 0}
    for pool in pools:
        stats = pool.get_stats()
        out["size"] += stats.get("pool_size", 0)
        out["available"] += stats.get("pool_available", 0)
        out["waiting"] += stats.get("requests_waiting", 0)
    return out


def show_pools(pools: Iterable[BasePool], stage: str = "api") -> None:
    for state, n in pool_figures(pools).items():
        POOL.labels(stage, state).set(n)


async def keep_alive(heartbeat: Heartbeat, pools: list[Any], every_s: float = BEAT_EVERY_S) -> None:
    """Until cancelled: beat (the event loop turns) and show the pools' figures."""
    while True:
        heartbeat.beat()
        show_pools(pools)
        await asyncio.sleep(every_s)
