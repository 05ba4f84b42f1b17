"""Analytics: the harness of the latency benchmarks. Runs platform processes beside the
simulator at nominal load and raises faults from devices' own MQTT connections, on elevators
that can raise them anew (their latencies are summarised by ``bench.latency``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic, encode_event
from shouwang.launch import command
from simulators.fleet import Fleet


def device_secrets(s: Settings) -> dict[str, str]:
    """The demo county's device credentials, as ``shouwang seed`` wrote them."""
    secrets: dict[str, str] = json.loads((s.state_dir / "device-secrets.json").read_text())
    return secrets


def elevators_without_open(conn: Conn, event_code: str, limit: int) -> list[str]:
    """Up to ``limit`` active elevators (by id) without an open ``event_code`` alarm: each one's
    fault opens a new alarm."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT d.uid FROM devices d WHERE d.device_class = 'elevator' AND d.active AND NOT EXISTS"
            " (SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.state <> 'cleared'"
            " AND a.event_code = %s) ORDER BY d.id LIMIT %s",
            (event_code, limit),
        ).fetchall()
    ]


@contextmanager
def platform(
    commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Run ``shouwang`` subcommands (with this environment, and ``env``) for the duration of
    the block."""
    procs = [
        subprocess.Popen(
            command(*args),
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for args in commands
    ]
    try:
        yield
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(30)


def raise_faults(
    s: Settings, secrets: dict[str, str], uids: Sequence[str], code: str, interval_s: float
) -> dict[str, float]:
    """Each device reports event ``code`` over a second connection of its own (its own client
    id, beside the simulator's), ``interval_s`` apart; returns when each was published."""
    fleet = Fleet(s.mqtt_host, s.mqtt_port, client_prefix="bench")
    sent: dict[str, float] = {}
    try:
        for uid in uids:
            fleet.add(uid, secrets[uid])
        fleet.wait_connected()
        for uid in uids:
            sent[uid] = time.time()
            fleet.publish(
                uid, device_topic(uid, Channel.EVENT), encode_event(int(sent[uid] * 1000), code)
            )
            deadline = time.monotonic() + interval_s
            while time.monotonic() < deadline:
                fleet.pump(0.01)
        fleet.drain()
    finally:
        fleet.close()
    return sent
