"""Simulators: the scheduler. Samples every device on its reporting interval in simulated time
and publishes through the fleet: direct devices on their own topics, gateway devices in batches.

Simulated time runs ``speed`` times faster than the wall clock (``speed=0`` means as fast as the
broker acknowledges). A fast-forwarded run starts in the past so that it never reports from the
future.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.wire import Channel, device_topic, encode_batch, encode_sample, gateway_topic
from simulators.behaviour import Behaviour, behaviour_for
from simulators.fleet import Fleet

Recorder = Callable[[str, int, dict[str, float]], None]


@dataclass(slots=True)
class SimDevice:
    uid: str
    device_class: str
    interval_s: float
    gateway: str | None
    behaviour: Behaviour


@dataclass(slots=True)
class RunStats:
    samples: int = 0
    readings: int = 0
    messages: int = 0
    sim_start: float = 0.0
    sim_end: float = 0.0
    wall_seconds: float = 0.0


@dataclass(slots=True)
class SimClock:
    start: float
    speed: float  # 0 = as fast as possible
    wall0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return (
            self.start + (time.monotonic() - self.wall0) * self.speed
            if self.speed
            else float("inf")
        )

    def wall_until(self, t: float) -> float:
        return 0.0 if not self.speed else max(0.0, (t - self.now()) / self.speed)


def build_devices(
    rows: Iterable[tuple[str, str, int, str | None, dict[str, float]]], seed: int
) -> list[SimDevice]:
    """Devices from registry rows (uid, class, interval, gateway uid, attributes)."""
    out = []
    for uid, cls, interval, gw, attrs in rows:
        rng = random.Random(f"{seed}:{uid}")
        out.append(SimDevice(uid, cls, float(interval), gw, behaviour_for(cls, attrs, rng)))
    return out


def run(
    fleet: Fleet,
    devices: list[SimDevice],
    clock: SimClock,
    *,
    until: float,
    gateway_flush_s: float = 5.0,
    max_outstanding: int = 20_000,
    stop: Callable[[], bool] = lambda: False,
    record: Recorder | None = None,
) -> RunStats:
    """Publish from ``clock.start`` until simulated time ``until`` (or ``stop()``)."""
    rng = random.Random(0)
    stats = RunStats(sim_start=clock.start)
    wall0 = time.monotonic()
    heap = [(clock.start + rng.uniform(0, d.interval_s), i) for i, d in enumerate(devices)]
    heapq.heapify(heap)
    pending: dict[str, list[tuple[str, int, dict[str, float]]]] = {}
    gw_next_flush = clock.start + gateway_flush_s
    while heap and not stop():
        t, i = heap[0]
        if t > until:
            break
        if clock.speed:
            wait = clock.wall_until(t)
            if wait > 0:
                fleet.pump(min(wait, 0.05))
                continue
        elif fleet.outstanding() > max_outstanding:
            fleet.pump(0.01)
            continue
        heapq.heapreplace(heap, (t + devices[i].interval_s, i))
        dev = devices[i]
        values = dev.behaviour.sample(t)
        ts_ms = int(t * 1000)
        stats.samples += 1
        stats.readings += len(values)
        if record is not None:
            record(dev.uid, ts_ms, values)
        if dev.gateway is None:
            fleet.publish(
                dev.uid, device_topic(dev.uid, Channel.TELEMETRY), encode_sample(ts_ms, values)
            )
            stats.messages += 1
        else:
            pending.setdefault(dev.gateway, []).append((dev.uid, ts_ms, values))
        if t >= gw_next_flush:
            stats.messages += _flush_gateways(fleet, pending)
            gw_next_flush = t + gateway_flush_s
        stats.sim_end = t
        if stats.samples % 256 == 0:
            fleet.pump(0)
    stats.messages += _flush_gateways(fleet, pending)
    stats.wall_seconds = time.monotonic() - wall0
    return stats


def _flush_gateways(
    fleet: Fleet, pending: dict[str, list[tuple[str, int, dict[str, float]]]]
) -> int:
    n = 0
    for gw, samples in pending.items():
        if samples:
            fleet.publish(gw, gateway_topic(gw, Channel.BATCH), encode_batch(samples))
            n += 1
    pending.clear()
    return n
