"""Driving analytics with feed messages as ingest publishes them, without the broker: packed
readings put in the service's buffer, one ``step`` each (the service's own code throughout)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from analytics.__main__ import build
from analytics.service import Analytics
from core.db import Conn
from core.feed import EVENTS_TOPIC, READINGS_TOPIC, pack_events, pack_readings
from core.settings import Settings

# A metric per class that no rule of the shipped list watches for a fault, at a plain value:
# readings that only say "still here".
QUIET: dict[str, tuple[str, float]] = {
    "elevator": ("run_hours", 1000.0),
    "fire_panel": ("disabled_points", 0.0),
    "fire_water": ("tank_level", 3.0),
    "electrical_fire": ("cable_temp", 35.0),
    "pump_room": ("room_humidity", 50.0),
    "water_quality": ("water_temp", 20.0),
}

TABLES = (
    "ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions,"
    " work_order_breaches, escalation_steps, platform_alarms"
)


def clean(db: Conn) -> None:
    db.execute(f"TRUNCATE {TABLES} CASCADE")
    db.execute("TRUNCATE events")


def service(settings: Settings, clock: str = "data", **analytics: Any) -> Analytics:
    """Analytics for the test database; ``analytics``: analytics_* settings without the prefix."""
    update = {f"analytics_{k}": v for k, v in analytics.items()}
    return build(settings.model_copy(update=update), clock=clock)


class Feed:
    """Readings for the test county's devices, as ingest's feed carries them."""

    def __init__(self, db: Conn) -> None:
        self.metric: dict[tuple[str, str], int] = {
            (c, n): int(i) for i, c, n in db.execute("SELECT id, device_class, name FROM metrics")
        }
        rows = db.execute(
            "SELECT id, uid, device_class FROM devices WHERE active ORDER BY id"
        ).fetchall()
        self.uid: dict[int, str] = {int(i): u for i, u, _ in rows}
        self.cls: dict[int, str] = {int(i): c for i, _, c in rows}

    def devices(self, device_class: str | None = None) -> list[int]:
        return [
            d
            for d, c in self.cls.items()
            if c in QUIET and (device_class is None or c == device_class)
        ]

    def readings(
        self,
        t: float,
        devices: Iterable[int],
        values: Mapping[int, Mapping[str, float]] | None = None,
    ) -> bytes:
        """One message: each device's quiet reading at ``t`` (or ``values[device]``)."""
        rows = []
        for d in devices:
            for name, v in (values or {}).get(d, dict([QUIET[self.cls[d]]])).items():
                rows.append((int(t * 1000), d, self.metric[(self.cls[d], name)], v))
        ts = np.array([r[0] for r in rows], dtype=np.int64)
        dev = np.array([r[1] for r in rows], dtype=np.int32)
        met = np.array([r[2] for r in rows], dtype=np.int16)
        val = np.array([r[3] for r in rows], dtype=np.float64)
        return pack_readings(ts, dev, met, val)


def send(svc: Analytics, payload: bytes, topic: str = READINGS_TOPIC) -> None:
    """A feed message into the service's buffer and one step (QoS 0: nothing to acknowledge)."""
    with svc._lock:
        svc._buffer.append((topic, payload, 0, 0))
    svc.step()


def event(svc: Analytics, t: float, device_id: int, code: str, active: bool) -> None:
    send(svc, pack_events([(int(t * 1000), device_id, code, active, {})], []), EVENTS_TOPIC)


def stream(
    svc: Analytics,
    feed: Feed,
    start: float,
    end: float,
    devices: Iterable[int],
    *,
    every: float = 10.0,
    values: Mapping[int, Mapping[str, float]] | None = None,
) -> float:
    """Every device reports every ``every`` s of data time from ``start`` to before ``end``;
    the time after the last message."""
    devices = list(devices)
    t = start
    while t < end:
        send(svc, feed.readings(t, devices, values))
        t += every
    return t


def offline_alarms(db: Conn) -> list[tuple[int, str, float]]:
    """(device, code, opened_at) of every OFFLINE alarm."""
    return [
        (int(d), c, float(o))
        for d, c, o in db.execute(
            "SELECT device_id, event_code, extract(epoch FROM opened_at) FROM alarms"
            " WHERE event_code LIKE '%%.OFFLINE' ORDER BY id"
        )
    ]


def platform(db: Conn, kind: str) -> list[tuple[str, str, int, str | None]]:
    """(subject, state, triggers, cleared_reason) of the platform alarms of ``kind``."""
    return [
        (s, st, int(n), r)
        for s, st, n, r in db.execute(
            "SELECT subject, state, triggers, cleared_reason FROM platform_alarms"
            " WHERE kind = %s ORDER BY id",
            (kind,),
        )
    ]
