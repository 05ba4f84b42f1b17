"""API: the duty pages under load (``shouwang bench pages``).

Puts the demo county's data in place as ``shouwang bench api`` does (``bench.api_data``), adds
``clients`` duty officers of the firm, each with a signed-in page session of their own, starts
the API (or uses ``--url``) and has each officer load, back to back on a keep-alive connection of
their own, the home page (``/duty``: my open work orders, who is on duty) and then an open
alarm's page (``/duty/alarms/ID``: SLA, readings chart, history), after an uncounted warm-up.
Prints requests/s, p50 and p99 per page and whether p99 is under the target; takes away
everything it added.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import uvloop
from rich.console import Console

from api.pages.sessions import open_session
from api.pages.web import SESSION_COOKIE
from bench.api import TARGET_P99_MS, Figures, HttpClient, Load, _server_or, summarise
from bench.api_data import prepare, remove
from core.db import Conn, connect
from core.settings import Settings

NAME = "shouwang bench pages"


@dataclass(frozen=True, slots=True)
class Officers:
    person_ids: list[int]
    cookies: list[str]


def add_officers(conn: Conn, firm: str, n: int, community_ids: Sequence[int]) -> Officers:
    """``n`` duty officers of the firm, on shift now in its communities, each signed in."""
    now = datetime.now(UTC)
    ids, cookies = [], []
    with conn.transaction():
        for i in range(n):
            row = conn.execute(
                "INSERT INTO people (name, role, firm_id) SELECT %s, 'duty_staff', id FROM firms"
                " WHERE code = %s RETURNING id",
                (f"{NAME} {i}", firm),
            ).fetchone()
            assert row is not None
            pid = int(row[0])
            community = community_ids[i % len(community_ids)]
            conn.execute(
                "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
                " VALUES (%s, 'duty_staff', %s, %s, %s)",
                (community, pid, now - timedelta(hours=1), now + timedelta(hours=2)),
            )
            ids.append(pid)
            cookies.append(
                open_session(conn, pid, client="bench", expires_at=now + timedelta(hours=2))
            )
    return Officers(ids, cookies)


def remove_officers(conn: Conn, officers: Officers) -> None:
    with conn.transaction():
        for table in ("page_sessions", "duty_shifts"):
            conn.execute(
                f"DELETE FROM {table} WHERE person_id = ANY(%s)",  # noqa: S608 (fixed names)
                (officers.person_ids,),
            )
        conn.execute("DELETE FROM people WHERE id = ANY(%s)", (officers.person_ids,))


async def phase(
    url: str, cookies: Sequence[str], name: str, paths: Sequence[str], load: Load
) -> Figures:
    """Each officer on a keep-alive connection of their own, back to back, after an uncounted
    warm-up; officer i starts at path i and steps by the number of officers."""
    clients = [HttpClient(url, {"Cookie": f"{SESSION_COOKIE}={c}"}) for c in cookies]
    latencies: list[float] = []
    errors = 0

    async def loop(i: int, seconds: float, record: bool) -> None:
        nonlocal errors
        deadline = time.perf_counter() + seconds
        k = i
        while time.perf_counter() < deadline and (
            not record or load.max_requests is None or len(latencies) + errors < load.max_requests
        ):
            t = time.perf_counter()
            try:
                status, _ = await clients[i].get(paths[k % len(paths)])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
            k += len(clients)
            if record:
                if status == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1

    try:
        for c in clients:
            await c.get(paths[0])
        await asyncio.gather(*(loop(i, load.warmup, False) for i in range(len(clients))))
        start = time.perf_counter()
        await asyncio.gather(*(loop(i, load.seconds, True) for i in range(len(clients))))
    finally:
        for c in clients:
            await c.close()
    return summarise(name, latencies, errors, time.perf_counter() - start)


def main(
    s: Settings, load: Load, *, url: str | None = None, workers: int = 1, firm: str | None = None
) -> list[Figures]:
    console = Console()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with connect(s.database_url, autocommit=True) as conn:
        target, added = prepare(conn, s.state_dir, firm, datetime.now(UTC))
        officers = add_officers(conn, target.firm, load.clients, target.community_ids)
        alarms = [
            f"/duty/alarms/{r[0]}"
            for r in conn.execute(
                "SELECT a.id FROM alarms a JOIN devices d ON d.id = a.device_id"
                " WHERE d.community_id = ANY(%s) AND a.state <> 'cleared' ORDER BY a.id LIMIT 500",
                (target.community_ids,),
            ).fetchall()
        ]
    try:
        console.print(
            f"firm {target.firm}: {len(target.community_ids)} communities,"
            f" {target.open_alarms} open alarms; {len(officers.cookies)} signed-in officers,"
            f" back to back, {load.seconds:g} s per page; {workers} server worker(s)"
        )
        if not alarms:
            raise SystemExit("the firm has no open alarm to show")
        with (
            _server_or(url, s, workers) as base,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            figures = [
                runner.run(phase(base, officers.cookies, "home /duty", ["/duty"], load)),
                runner.run(phase(base, officers.cookies, "alarm page", alarms, load)),
            ]
    finally:
        with connect(s.database_url, autocommit=True) as conn:
            remove_officers(conn, officers)
            remove(conn, added)
    for f in figures:
        console.print(
            f"{f.endpoint:<12} {f.rate:8,.0f} req/s  p50 {f.p50_ms:6.1f} ms"
            f"  p99 {f.p99_ms:6.1f} ms  ({f.requests} ok, {f.errors} errors)"
            f"  p99 < {TARGET_P99_MS:.0f} ms: {'yes' if f.meets_target else 'NO'}"
        )
    return figures
