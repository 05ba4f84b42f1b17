"""API: the HTTP load benchmark (``shouwang bench api``).

Starts the API with uvicorn on a free loopback port in a subprocess (or uses ``--url``), puts the
demo county's data in place (``api.bench_data``), issues a firm-admin token and runs concurrent
clients against two endpoints, one after the other, each for a bounded time or number of
requests: the latest state of every device in one of the firm's communities, and the firm's open
alarms. Prints requests/s, p50 and p99 per endpoint and whether p99 is under the target.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from fastapi import FastAPI
from rich.console import Console

from api.app import create_app
from api.bench_data import prepare, remove
from core.db import connect
from core.settings import Settings, load_settings

TARGET_P99_MS = 100.0
# The latest state of every device in one community (one page: a community has about 100), and
# the firm's open alarms (newest first, the first page of 100).
LATEST = "/v1/telemetry/latest?community_id={id}&limit=500"
OPEN_ALARMS = "/v1/alarms?state=active&state=acknowledged&limit=100"


@dataclass(frozen=True, slots=True)
class Figures:
    endpoint: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def meets_target(self) -> bool:
        return self.requests > 0 and self.errors == 0 and self.p99_ms < TARGET_P99_MS


def summarise(endpoint: str, latencies_s: Sequence[float], errors: int, seconds: float) -> Figures:
    """Figures of one phase (pure); percentiles of what was measured, inclusive."""
    lat = sorted(x * 1000 for x in latencies_s)
    if not lat:
        return Figures(endpoint, 0, errors, seconds, float("nan"), float("nan"))
    p99 = statistics.quantiles(lat, n=100, method="inclusive")[98] if len(lat) > 1 else lat[0]
    return Figures(endpoint, len(lat), errors, seconds, statistics.median(lat), p99)


def app_from_env() -> FastAPI:
    """The uvicorn factory the benchmark's server process runs (settings from the environment)."""
    return create_app(load_settings())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(s: Settings, workers: int) -> Iterator[str]:
    """The API in a uvicorn subprocess on a free loopback port, until the block ends."""
    port = free_port()
    env = dict(os.environ)
    env.update({"SHOUWANG_DATABASE_URL": s.database_url, "SHOUWANG_STATE_DIR": str(s.state_dir)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "api.bench:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, timeout=2) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the API server exited with status {proc.returncode}")
            try:
                if client.get("/v1/public/communities?limit=1").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise SystemExit(f"the API server did not answer at {url} within 30 s")


@dataclass(frozen=True, slots=True)
class Load:
    """``clients`` concurrent clients for ``seconds`` (or ``max_requests`` in all) per endpoint,
    each sending its next request as soon as the last is answered, or, with ``interval``, one
    request every ``interval`` seconds (latency then counts from the scheduled time, so a
    server falling behind is not hidden)."""

    clients: int = 50
    seconds: float = 20.0
    max_requests: int | None = None
    interval: float = 0.0

    def describe(self) -> str:
        pace = f", each every {self.interval:g} s" if self.interval > 0 else ", back to back"
        cap = f" or {self.max_requests} requests" if self.max_requests else ""
        return f"{self.clients} clients{pace}, {self.seconds:g} s{cap} per endpoint"


async def phase(
    client: httpx.AsyncClient, endpoint: str, paths: Sequence[str], load: Load
) -> Figures:
    """Run ``load`` over ``paths`` (client i starts at path i and steps by the client count)."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    start = time.perf_counter()
    deadline = start + load.seconds

    async def loop(i: int) -> None:
        nonlocal errors, issued
        k = i
        due = start + load.interval * i / load.clients
        while time.perf_counter() < deadline and (
            load.max_requests is None or issued < load.max_requests
        ):
            issued += 1
            if load.interval > 0:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t, due = due, due + load.interval
            else:
                t = time.perf_counter()
            r = await client.get(paths[k % len(paths)])
            took = time.perf_counter() - t
            if r.status_code == 200:
                latencies.append(took)
            else:
                errors += 1
            k += load.clients

    await asyncio.gather(*(loop(i) for i in range(load.clients)))
    return summarise(endpoint, latencies, errors, time.perf_counter() - start)


async def run_load(url: str, token: str, community_ids: Sequence[int], load: Load) -> list[Figures]:
    limits = httpx.Limits(max_connections=load.clients, max_keepalive_connections=load.clients)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=30
    ) as client:
        latest = [LATEST.format(id=c) for c in community_ids]
        for path in (*latest[:1], OPEN_ALARMS):  # warm up: connections, plans, caches
            r = await client.get(path)
            if r.status_code != 200:
                raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:300]}")
        return [
            await phase(client, "latest device state", latest, load),
            await phase(client, "open alarms", [OPEN_ALARMS], load),
        ]


def main(
    s: Settings,
    load: Load,
    *,
    url: str | None = None,
    workers: int = 1,
    firm: str | None = None,
) -> list[Figures]:
    console = Console()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request would be the load
    with connect(s.database_url, autocommit=True) as conn:
        target, added = prepare(conn, s.state_dir, firm, datetime.now(UTC))
    try:
        console.print(
            f"firm {target.firm}: {len(target.community_ids)} communities, {target.devices} devices,"
            f" {target.open_alarms} open alarms; {load.describe()}; {workers} server worker(s)"
        )
        with _server_or(url, s, workers) as base:
            figures = asyncio.run(run_load(base, target.token, target.community_ids, load))
    finally:
        with connect(s.database_url, autocommit=True) as conn:
            remove(conn, added)
    for f, path in zip(figures, (LATEST, OPEN_ALARMS), strict=True):
        console.print(
            f"{f.endpoint:<20} GET {path:<52} {f.rate:8,.0f} req/s  p50 {f.p50_ms:6.1f} ms"
            f"  p99 {f.p99_ms:6.1f} ms  ({f.requests} ok, {f.errors} errors)"
            f"  p99 < {TARGET_P99_MS:.0f} ms: {'yes' if f.meets_target else 'NO'}"
        )
    return figures


@contextmanager
def _server_or(url: str | None, s: Settings, workers: int) -> Iterator[str]:
    if url is not None:
        yield url.rstrip("/")
        return
    with server(s, workers) as base:
        yield base
