"""Analytics: the harness of the latency benchmarks. Runs platform processes beside the
simulator at nominal load, raises faults from devices' own MQTT connections, and summarises
latencies."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from core.settings import Settings
from core.wire import Channel, device_topic, encode_event
from shouwang.launch import command
from simulators.fleet import Fleet


@contextmanager
def platform(commands: Sequence[Sequence[str]]) -> Iterator[None]:
    """Run ``shouwang`` subcommands (with this environment) for the duration of the block."""
    procs = [
        subprocess.Popen(
            command(*args),
            env=dict(os.environ),
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


@dataclass(frozen=True, slots=True)
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def summarise(latencies_ms: Sequence[float]) -> Latency:
    lat = sorted(latencies_ms)
    # inclusive: a percentile of what was measured, never beyond the largest sample
    p99 = statistics.quantiles(lat, n=100, method="inclusive")[98] if len(lat) > 1 else lat[0]
    return Latency(len(lat), statistics.median(lat), p99, lat[-1])
