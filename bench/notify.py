"""Analytics: the notification latency benchmark. Under the demo county's nominal load, elevators
report trapped passengers (P0); the figure is the time from the device publishing to a local
webhook receiver (ours, on loopback) holding the notification, p50 and p99.

Starts ingest, analytics, a dispatcher and the simulator itself; puts a benchmark duty person on
shift for every community, and removes it afterwards.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rich.console import Console

from bench.latency import Latency, summarise
from bench.nominal_load import device_secrets, elevators_without_open, platform, raise_faults
from core.db import Conn, connect
from core.settings import Settings

BENCH_PERSON = "BENCH 值班"


def _receiver(received: dict[str, float]) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if body.get("kind") == "alarm_opened" and body.get("code") == "EL.TRAPPED":
                received.setdefault(str(body.get("device")), time.time())
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, port


def _duty_person(conn: Conn, url: str) -> int:
    (person,) = conn.execute(
        "INSERT INTO people (name, role) VALUES (%s, 'duty_staff') RETURNING id", (BENCH_PERSON,)
    ).fetchone() or (0,)
    conn.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES (%s, 'webhook', %s, 'bench')",
        (person, url),
    )
    now = datetime.now(UTC)
    conn.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " SELECT id, 'duty_staff', %s, %s, %s FROM communities",
        (person, now - timedelta(minutes=5), now + timedelta(hours=1)),
    )
    return int(person)


def _remove_person(conn: Conn, person: int) -> None:
    conn.execute("DELETE FROM deliveries WHERE person_id = %s", (person,))
    conn.execute("DELETE FROM duty_shifts WHERE person_id = %s", (person,))
    conn.execute("DELETE FROM contact_channels WHERE person_id = %s", (person,))
    conn.execute("DELETE FROM people WHERE id = %s", (person,))


def main(
    s: Settings, *, triggers: int = 100, interval_s: float = 0.3, warmup_s: float = 20.0
) -> Latency:
    console = Console()
    secrets = device_secrets(s)
    received: dict[str, float] = {}
    server, port = _receiver(received)
    with connect(s.database_url, autocommit=True) as conn:
        elevators = elevators_without_open(conn, "EL.TRAPPED", triggers)
        person = _duty_person(conn, f"http://127.0.0.1:{port}/hook")
    commands = [
        ["ingest"],
        ["analytics"],
        ["dispatch", "--name", "bench-dispatcher"],
        ["simulate", "--speed", "1"],
    ]
    try:
        # The benchmark's receiver is plain http on loopback.
        local = {
            "SHOUWANG_NOTIFY_ALLOW_HTTP": "true",
            "SHOUWANG_NOTIFY_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        }
        with platform(commands, local):
            console.print(f"nominal load from the simulator; warming up {warmup_s:.0f} s")
            time.sleep(warmup_s)
            sent = raise_faults(s, secrets, elevators, "11", interval_s)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(received) < len(sent):
                time.sleep(0.1)
    finally:
        server.shutdown()
        server.server_close()
        with connect(s.database_url, autocommit=True) as conn:
            _remove_person(conn, person)
    if not received:
        raise SystemExit("no notification arrived")
    result = summarise([(received[u] - sent[u]) * 1000 for u in sent if u in received])
    console.print(
        f"publish → P0 webhook received, {result.samples} of {len(sent)} faults: "
        + result.figures()
    )
    return result
