"""Shared: a read-only snapshot of the registry, as ingest and analytics need it in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.db import Conn


@dataclass(frozen=True, slots=True)
class MetricSpec:
    id: int
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class DeviceRef:
    id: int
    uid: str
    device_class: str
    community_id: int
    gateway_id: int | None
    report_interval_s: int


@dataclass(slots=True)
class Registry:
    devices: dict[str, DeviceRef] = field(default_factory=dict)
    gateways: dict[str, int] = field(default_factory=dict)
    # device class -> metric name -> spec
    metrics: dict[str, dict[str, MetricSpec]] = field(default_factory=dict)
    # device class -> event codes
    event_codes: dict[str, frozenset[str]] = field(default_factory=dict)


def load_registry(conn: Conn) -> Registry:
    reg = Registry()
    for did, uid, cls, cid, gid, interval in conn.execute(
        "SELECT id, uid, device_class, community_id, gateway_id, report_interval_s"
        " FROM devices WHERE active"
    ):
        reg.devices[str(uid)] = DeviceRef(
            int(did), str(uid), str(cls), int(cid), gid, int(interval)
        )
    for gid, uid in conn.execute("SELECT id, uid FROM gateways"):
        reg.gateways[str(uid)] = int(gid)
    for mid, cls, name, lo, hi in conn.execute(
        "SELECT id, device_class, name, lo, hi FROM metrics"
    ):
        reg.metrics.setdefault(str(cls), {})[str(name)] = MetricSpec(int(mid), float(lo), float(hi))
    codes: dict[str, set[str]] = {}
    for cls, code in conn.execute("SELECT device_class, code FROM event_codes"):
        codes.setdefault(str(cls), set()).add(str(code))
    reg.event_codes = {k: frozenset(v) for k, v in codes.items()}
    return reg
