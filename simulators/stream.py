"""Simulators: streaming. Loads devices from the registry and their credentials, connects each,
and streams until the duration ends or Ctrl-C. Named devices can be made to go silent from a
simulated time on (``silence``): a device that really went offline, for drills. The demo injects
a fault every ``fault_every_s`` among ``fault_devices`` (``simulators.demo``). ``field_sites``
serves some devices another way (the demo's Modbus servers and site gateways,
``shouwang/demo_sites.py``): they get their share of the faults and no fleet connection."""

from __future__ import annotations

import csv
import json
import logging
import math
import signal
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from core.db import connect
from core.errors import ConfigError
from core.settings import Settings
from simulators.demo import fault_schedule
from simulators.faults import Fault, scenarios
from simulators.fleet import Fleet
from simulators.run import SimClock, SimDevice, build_devices, run

log = logging.getLogger("shouwang.simulate")


def load_rows(
    database_url: str, communities: list[str], limit: int | None
) -> list[tuple[str, str, int, str | None, dict[str, Any]]]:
    with connect(database_url) as conn:
        rows = conn.execute(
            "SELECT d.uid, d.device_class, d.report_interval_s, g.uid, d.attributes"
            " FROM devices d JOIN communities c ON c.id = d.community_id"
            " LEFT JOIN gateways g ON g.id = d.gateway_id"
            " WHERE d.active AND (cardinality(%s::text[]) = 0 OR c.code = ANY(%s::text[]))"
            " ORDER BY d.id LIMIT %s",
            (communities, communities, limit),
        ).fetchall()
    return [(str(u), str(c), int(i), g, dict(a)) for u, c, i, g, a in rows]


def silence(devices: list[SimDevice], uids: list[str], at: float) -> list[Fault]:
    """The devices ``uids`` publish nothing from simulated time ``at`` on (they stay connected:
    a terminal whose sensor side died), as ``device_offline`` faults that never end."""
    known = {d.uid for d in devices}
    unknown = sorted(set(uids) - known)
    if unknown:
        raise ConfigError(
            "--silence",
            f"{', '.join(unknown)}: not among the simulated devices (check --community)",
        )
    return [Fault("device_offline", u, at, math.inf, None, transport="offline") for u in uids]


def demo_faults(
    devices: list[SimDevice], among: set[str] | None, every_s: float, start: float, until: float
) -> list[Fault]:
    """The demo's faults (``simulators.demo``) on the devices ``among`` (None: any), for up to
    a week of simulated time; none when ``every_s`` is 0."""
    if every_s <= 0:
        return []
    by_class: dict[str, list[str]] = {}
    for d in devices:
        if among is None or d.uid in among:
            by_class.setdefault(d.device_class, []).append(d.uid)
    planned = fault_schedule(
        scenarios([]),
        by_class,
        start=start,
        every_s=every_s,
        span_s=min(until - start, 7 * 86400.0),
        first_after_s=min(60.0, every_s),
    )
    log.info("injecting a fault every %.0f s (%d planned)", every_s, len(planned))
    return planned


def connect_fleet(
    s: Settings, devices: list[SimDevice], secrets: dict[str, str], secrets_file: Path
) -> tuple[Fleet, list[SimDevice]]:
    """A fleet with a connection for every direct device and gateway of ``devices``, and the
    devices whose connection (or gateway's) the broker accepted."""
    fleet = Fleet(s.mqtt_host, s.mqtt_port)
    gateways = {d.gateway for d in devices if d.gateway}
    for uid in sorted({d.uid for d in devices if d.gateway is None} | gateways):
        if uid not in secrets:
            raise ConfigError(
                str(secrets_file), f"no credential for {uid!r}; run 'shouwang broker issue {uid}'"
            )
        fleet.add(uid, secrets[uid], is_gateway=uid in gateways)
    refused = fleet.wait_connected()
    if refused:
        log.warning(
            "the broker refused %d connections (%s); simulating the rest",
            len(refused),
            ", ".join(refused[:5]),
        )
        gone = set(refused)
        devices = [d for d in devices if d.uid not in gone and d.gateway not in gone]
    return fleet, devices


class FieldSites(Protocol):
    """Devices served other than through the fleet (at a simulated speed above 0)."""

    def split(self, devices: list[SimDevice]) -> tuple[list[SimDevice], list[SimDevice]]:
        """(the devices it serves, the rest)."""
        ...

    def start(
        self,
        devices: list[SimDevice],
        faults: list[Fault],
        clock: SimClock,
        secrets: dict[str, str],
    ) -> None: ...

    def stop(self) -> None: ...


def start_field(
    sites: FieldSites | None,
    field: list[SimDevice],
    faults: list[Fault],
    clock: SimClock,
    secrets: dict[str, str],
) -> list[Fault]:
    """Start ``sites`` serving ``field`` with their faults; returns the faults of the rest."""
    served = {d.uid for d in field}
    if sites is not None and field:
        sites.start(field, [f for f in faults if f.device_uid in served], clock, secrets)
    return [f for f in faults if f.device_uid not in served]


def main(
    s: Settings,
    *,
    speed: float,
    duration: float | None,
    start_ago: float | None,
    communities: list[str],
    limit: int | None,
    record: Path | None,
    seed: int,
    silent: list[str] | None = None,
    silent_after: float = 0.0,
    stop_event: threading.Event | None = None,
    fault_every_s: float = 0.0,
    fault_devices: set[str] | None = None,
    field_sites: FieldSites | None = None,
) -> None:
    if silent_after < 0 or not math.isfinite(silent_after):
        raise ConfigError("--silence-after", "give simulated seconds, 0 or more")
    secrets_file = s.state_dir / "device-secrets.json"
    if not secrets_file.exists():
        raise ConfigError(str(secrets_file), "no device credentials; run 'shouwang seed' first")
    secrets: dict[str, str] = json.loads(secrets_file.read_text())
    rows = load_rows(s.database_url, communities, limit)
    if not rows:
        raise ConfigError(
            "registry", "no devices to simulate; run 'shouwang seed' or check --community"
        )
    devices = build_devices(rows, seed)
    silence(devices, silent or [], 0.0)  # unknown devices refused before anything connects
    field, devices = field_sites.split(devices) if field_sites and speed > 0 else ([], devices)
    fleet, devices = connect_fleet(s, devices, secrets, secrets_file)
    now = time.time()
    if start_ago is None:
        start_ago = duration if speed != 1.0 and duration else 0.0
    clock = SimClock(start=now - start_ago, speed=speed)
    until = clock.start + duration if duration is not None else float("inf")
    simulated = {d.uid for d in devices + field}  # a device the broker refused is silent anyway
    faults = silence(
        devices + field, [u for u in silent or [] if u in simulated], clock.start + silent_after
    )
    if faults:
        log.info("%s publish nothing after %.0f simulated s", ", ".join(silent or []), silent_after)
    stop = stop_event or threading.Event()
    if stop_event is None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    log.info(
        "simulating %d devices over %d connections, speed %s",
        len(devices),
        len(fleet.links),
        speed or "max",
    )
    planned = faults + demo_faults(
        devices + field, fault_devices, fault_every_s, clock.start, until
    )
    planned = start_field(field_sites, field, planned, clock, secrets)
    writer_file = record.open("a", newline="") if record else None
    try:
        recorder = None
        if writer_file is not None:
            w = csv.writer(writer_file)

            def recorder(uid: str, ts_ms: int, values: dict[str, float]) -> None:
                for k, v in values.items():
                    w.writerow((uid, k, ts_ms, repr(v)))

        stats = run(
            fleet,
            devices,
            clock,
            until=until,
            stop=stop.is_set,
            record=recorder,
            faults=planned,
        )
        fleet.drain()
    finally:
        if writer_file is not None:
            writer_file.close()
        fleet.close()
        if field_sites is not None and field:
            field_sites.stop()
    log.info(
        "published %d readings in %d messages (%.0f simulated s in %.1f wall s)",
        stats.readings,
        stats.messages,
        stats.sim_end - stats.sim_start,
        stats.wall_seconds,
    )
