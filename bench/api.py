"""API: the HTTP load benchmark (``shouwang bench api``).

Starts the API with uvicorn on a free loopback port in a subprocess (or uses ``--url``), puts the
demo county's data in place (``bench.api_data``), issues a firm-admin token and runs concurrent
clients against two endpoints, one after the other, each for a bounded time or number of
requests (after an uncounted warm-up): the latest state of every device in one of the firm's
communities, and the firm's open alarms. Prints requests/s, p50 and p99 per endpoint and whether
p99 is under the target. The clients run in this process, on uvloop, each on a keep-alive
connection of its own (:class:`HttpClient`), so they take little of the CPU the server needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import uvloop
from fastapi import FastAPI
from rich.console import Console

from api.app import create_app, tune_gc
from bench.api_data import prepare, remove
from bench.latency import percentiles
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
    return Figures(endpoint, len(lat), errors, seconds, *percentiles(lat))


def app_from_env() -> FastAPI:
    """The uvicorn factory the benchmark's server process runs (settings from the environment)."""
    app = create_app(load_settings())
    tune_gc()
    return app


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
            "bench.api:app_from_env",
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
    server falling behind is not hidden). The first ``warmup`` seconds of each endpoint's load
    are not counted: every pooled connection of every worker prepares its statements (psycopg
    does so on a statement's fifth run) and the plans settle."""

    clients: int = 50
    seconds: float = 20.0
    max_requests: int | None = None
    interval: float = 0.0
    warmup: float = 2.0

    def describe(self) -> str:
        pace = f", each every {self.interval:g} s" if self.interval > 0 else ", back to back"
        cap = f" or {self.max_requests} requests" if self.max_requests else ""
        warm = f" after {self.warmup:g} s not counted" if self.warmup > 0 else ""
        return f"{self.clients} clients{pace}, {self.seconds:g} s{cap} per endpoint{warm}"


class HttpClient:
    """One keep-alive HTTP/1.1 connection sending GETs, as lean as a load generator should be:
    httpx costs about as much CPU per request as the server's work on a small answer, and the
    client shares the machine with the server. Plain ``http://`` only; answers must carry
    ``Content-Length`` (the API's always do)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        u = httpx.URL(url)
        if u.scheme != "http" or not u.host:
            raise SystemExit(f"the benchmark speaks plain http://host:port only, not {url}")
        self.host, self.port = u.host, u.port or 80
        self._prefix = u.raw_path.rstrip(b"/").decode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"Host: {self.host}:{self.port}\r\n{extra}\r\n".encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        """Status and body of ``GET path``; reconnects after a closed or broken connection."""
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        try:
            writer.write(f"GET {self._prefix}{path} HTTP/1.1\r\n".encode() + self._head)
            head = await reader.readuntil(b"\r\n\r\n")
            status, length, close = _parse_head(head)
            body = await reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            await self.close()
            raise
        if close:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server closes the connection (pure)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, close = -1, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"connection":
            close = value.strip().lower() == b"close"
        elif key == b"transfer-encoding":
            raise ValueError("chunked answers are not supported by the benchmark client")
    if length < 0:
        raise ValueError("an answer without Content-Length")
    return status, length, close


async def phase(
    url: str, headers: dict[str, str], endpoint: str, paths: Sequence[str], load: Load
) -> Figures:
    """Run ``load`` over ``paths`` (client i starts at path i and steps by the client count),
    each client on a keep-alive connection of its own, after ``load.warmup`` seconds of the same
    load that are not counted."""
    latencies: list[float] = []
    errors = 0
    issued = 0
    clients = [HttpClient(url, headers) for _ in range(load.clients)]

    async def loop(i: int, start: float, seconds: float, record: bool) -> None:
        nonlocal errors, issued
        client = clients[i]
        k = i
        due = start + load.interval * i / load.clients
        deadline = start + seconds
        while time.perf_counter() < deadline and (
            not record or load.max_requests is None or issued < load.max_requests
        ):
            if load.interval > 0:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                t, due = due, due + load.interval
            else:
                t = time.perf_counter()
            try:
                status, _ = await client.get(paths[k % len(paths)])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
            took = time.perf_counter() - t
            k += load.clients
            if not record:
                continue
            issued += 1
            if status == 200:
                latencies.append(took)
            else:
                errors += 1

    async def run(seconds: float, record: bool) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(loop(i, start, seconds, record) for i in range(load.clients)))
        return start

    try:
        for c in clients:  # connect before the clock starts
            await c.get(paths[0])
        if load.warmup > 0:
            await run(load.warmup, record=False)
        start = await run(load.seconds, record=True)
    finally:
        for c in clients:
            await c.close()
    return summarise(endpoint, latencies, errors, time.perf_counter() - start)


async def run_load(url: str, token: str, community_ids: Sequence[int], load: Load) -> list[Figures]:
    headers = {"Authorization": f"Bearer {token}"}
    latest = [LATEST.format(id=c) for c in community_ids]
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        for path in (*latest[:1], OPEN_ALARMS):  # check the answers; warm up plans and caches
            r = await client.get(path)
            if r.status_code != 200:
                raise SystemExit(f"GET {path} answered {r.status_code}: {r.text[:300]}")
            r.json()
    return [
        await phase(url, headers, "latest device state", latest, load),
        await phase(url, headers, "open alarms", [OPEN_ALARMS], load),
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
        with (
            _server_or(url, s, workers) as base,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            figures = runner.run(run_load(base, target.token, target.community_ids, load))
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
