"""Analytics: the latency benchmark. Under the demo county's nominal load (every device
reporting on its interval, through the simulator), devices raise faults; the figure is the time
from the device publishing to its alarm and work order being committed, p50 and p99.

Runs against the configured stack with the demo county seeded (``shouwang seed``): it starts
ingest, analytics (wall clock) and the simulator itself, and stops them after.
"""

from __future__ import annotations

import time

from rich.console import Console

from bench.latency import Latency, summarise
from bench.nominal_load import device_secrets, elevators_without_open, platform, raise_faults
from core.db import connect
from core.settings import Settings


def main(
    s: Settings, *, triggers: int = 200, interval_s: float = 0.2, warmup_s: float = 20.0
) -> Latency:
    console = Console()
    secrets = device_secrets(s)
    with connect(s.database_url, autocommit=True) as conn:
        (n_devices,) = conn.execute("SELECT count(*) FROM devices WHERE active").fetchone() or (0,)
        elevators = elevators_without_open(conn, "EL.ALARM_BUTTON", triggers)
    if len(elevators) < triggers:
        raise SystemExit(
            f"need {triggers} elevators without an open alarm-button alarm, have {len(elevators)}"
        )
    with platform([["ingest"], ["analytics"], ["simulate", "--speed", "1"]]):
        console.print(
            f"nominal load: {n_devices} devices on their reporting interval; warming up {warmup_s:.0f} s"
        )
        time.sleep(warmup_s)
        sent = raise_faults(s, secrets, elevators, "90", interval_s)
        time.sleep(3.0)
        with connect(s.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT d.uid, extract(epoch FROM greatest(a.committed_at, w.committed_at))"
                " FROM alarms a JOIN devices d ON d.id = a.device_id JOIN work_orders w ON w.alarm_id = a.id"
                " WHERE a.event_code = 'EL.ALARM_BUTTON' AND d.uid = ANY(%s) AND a.opened_at >= to_timestamp(%s)",
                (list(sent), min(sent.values()) - 1),
            ).fetchall()
            (load,) = conn.execute(
                "SELECT count(*) / 30.0 FROM readings WHERE ts > now() - interval '30 seconds'"
            ).fetchone() or (0,)
            (heard,) = conn.execute(
                "SELECT count(*) FROM device_presence WHERE last_seen > now() - interval '30 seconds'"
            ).fetchone() or (0,)
    if len(rows) < len(sent):
        console.print(
            f"[red]{len(sent) - len(rows)} of {len(sent)} faults produced no alarm and work order[/]"
        )
    if not rows:
        raise SystemExit("no alarms were committed")
    result = summarise([(float(t) - sent[u]) * 1000 for u, t in rows])
    console.print(
        f"load during the run: {float(load):,.0f} readings/s from {heard} devices heard in the last 30 s"
    )
    console.print(
        f"publish → alarm + work order committed, {result.samples} faults under {n_devices} devices' load: "
        + result.figures()
    )
    return result
