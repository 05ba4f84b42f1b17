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

from core.wire import (
    Channel,
    device_topic,
    encode_batch,
    encode_event,
    encode_sample,
    gateway_topic,
)
from simulators.behaviour import Behaviour, behaviour_for
from simulators.faults import Fault, apply_values
from simulators.fleet import Fleet
from simulators.nuisance import Nuisance, NuisanceParams

Recorder = Callable[[str, int, dict[str, float]], None]


@dataclass(slots=True)
class SimDevice:
    uid: str
    device_class: str
    interval_s: float
    gateway: str | None
    behaviour: Behaviour
    nuisance: Nuisance | None = None  # what it does that is not a fault (simulators.nuisance)


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
    rows: Iterable[tuple[str, str, int, str | None, dict[str, float]]],
    seed: int,
    *,
    nuisance: NuisanceParams | None = None,
) -> list[SimDevice]:
    """Devices from registry rows (uid, class, interval, gateway uid, attributes); with
    ``nuisance``, each warms, has noise bursts, follows a demand that changes from day to day and
    loses reports now and then (``simulators.nuisance``)."""
    out = []
    for uid, cls, interval, gw, attrs in rows:
        rng = random.Random(f"{seed}:{uid}")
        if nuisance is None:
            out.append(SimDevice(uid, cls, float(interval), gw, behaviour_for(cls, attrs, rng)))
            continue
        n = Nuisance(random.Random(f"{seed}:{uid}:nuisance"), nuisance)
        behaviour = behaviour_for(cls, attrs, rng, load=n.demand)
        out.append(SimDevice(uid, cls, float(interval), gw, behaviour, n))
    return out


def run(  # noqa: PLR0915 (one scheduling loop, read top to bottom)
    fleet: Fleet,
    devices: list[SimDevice],
    clock: SimClock,
    *,
    until: float,
    gateway_flush_s: float = 5.0,
    max_outstanding: int = 20_000,
    stop: Callable[[], bool] = lambda: False,
    record: Recorder | None = None,
    faults: list[Fault] | None = None,
) -> RunStats:
    """Publish from ``clock.start`` until simulated time ``until`` (or ``stop()``).

    A fault's device also reports at the fault's start and end, as terminals report on change;
    those reports are never lost to a device's nuisances, its regular ones may be.
    """
    rng = random.Random(0)
    stats = RunStats(sim_start=clock.start)
    wall0 = time.monotonic()
    index = {d.uid: i for i, d in enumerate(devices)}
    faults_of: dict[int, list[Fault]] = {}
    # (t, device index, extra): extra reports (fault onsets) do not reschedule the device
    heap: list[tuple[float, int, bool]] = [
        (clock.start + rng.uniform(0, d.interval_s), i, False) for i, d in enumerate(devices)
    ]
    for f in faults or []:
        i = index[f.device_uid]
        faults_of.setdefault(i, []).append(f)
        heap += [(f.start, i, True), (f.end, i, True)]
    heapq.heapify(heap)
    pending: dict[str, list[tuple[str, int, dict[str, float]]]] = {}
    held_back: dict[int, tuple[str, bytes]] = {}
    gw_next_flush = clock.start + gateway_flush_s
    while heap and not stop():
        t, i, extra = heap[0]
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
        if extra:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (t + devices[i].interval_s, i, False))
        dev = devices[i]
        values = dev.behaviour.sample(t)
        if dev.nuisance is not None:
            if not extra and dev.nuisance.skip(t):
                continue
            values = dev.nuisance.apply(t, values)
        ts_ms = int(t * 1000)
        transport = None
        for f in faults_of.get(i, ()):
            if f.active(t):
                values = apply_values(f, t, values, rng)
                transport = f.transport or transport
            if extra and f.events and t in (f.start, f.end):
                for code in f.events:
                    _publish_event(fleet, dev, ts_ms, code, active=t == f.start)
        if transport == "offline":
            continue
        stats.samples += 1
        stats.readings += len(values)
        if record is not None:
            record(dev.uid, ts_ms, values)
        if dev.gateway is None:
            msg = (device_topic(dev.uid, Channel.TELEMETRY), encode_sample(ts_ms, values))
            if transport == "out_of_order" and i not in held_back:
                held_back[i] = msg  # sent after the next one
                continue
            for topic, payload in [msg, held_back.pop(i)] if i in held_back else [msg]:
                fleet.publish(dev.uid, topic, payload)
                stats.messages += 1
                if transport == "duplicate":
                    fleet.publish(dev.uid, topic, payload)
                    stats.messages += 1
        else:
            pending.setdefault(dev.gateway, []).append((dev.uid, ts_ms, values))
        if t >= gw_next_flush:
            stats.messages += _flush_gateways(fleet, pending)
            gw_next_flush = t + gateway_flush_s
        stats.sim_end = t
        if stats.samples % 256 == 0:
            fleet.pump(0)
    for i, (topic, payload) in held_back.items():
        fleet.publish(devices[i].uid, topic, payload)
    stats.messages += _flush_gateways(fleet, pending)
    stats.wall_seconds = time.monotonic() - wall0
    return stats


def _publish_event(fleet: Fleet, dev: SimDevice, ts_ms: int, code: str, *, active: bool) -> None:
    if dev.gateway is None:
        fleet.publish(
            dev.uid, device_topic(dev.uid, Channel.EVENT), encode_event(ts_ms, code, active=active)
        )
    else:
        fleet.publish(
            dev.gateway,
            gateway_topic(dev.gateway, Channel.BATCH),
            encode_batch([], [(dev.uid, ts_ms, code, active)]),
        )


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
