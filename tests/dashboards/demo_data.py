"""Test helper: demo telemetry for the last hours, written the way the platform writes it.

Readings come from the simulator's behaviour models sampled on a time grid, with the standard
fault scenarios injected (``simulators.faults``); they are stored through ingest's write path
(``ingest.store.write_batch``). The analytics rule engine and alarm lifecycle run in-process over
the same samples for the devices that carry a fault (the others behave normally and raise
nothing) and analytics' store writes the alarms and work orders. Duty staff then answer: work
orders get response and arrival times, and some are completed, a few of them late. The platform
had its own trouble too (``lifecycle.platform``): a feed silence that is over, a stage restarted
and acknowledged, a device's detector set aside and still open.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from analytics.conditions import DeviceView
from analytics.engine import Engine, compile_rules
from analytics.store import apply, load_devices, load_open_alarms, record_breaches
from core.catalogue import METRICS
from core.db import Conn
from core.severity import Severity
from core.workcalendar import WorkCalendar
from ingest.rows import Batch
from ingest.store import write_batch
from lifecycle.alarms import Lifecycle, Transition, policy_of
from lifecycle.platform import PlatformKind, acknowledge, clear_alarm, raise_alarm
from responsibility.loader import ResponsibilityList
from simulators.faults import Fault, apply_values, plan_faults, scenarios
from simulators.run import build_devices


@dataclass(frozen=True, slots=True)
class Summary:
    devices: int
    readings: int
    events: int
    alarms: int
    work_orders: int
    seconds: float


def _policy(lst: ResponsibilityList) -> Any:
    return lambda _device, code: policy_of(lst.entries.get(code), WorkCalendar().hours_per_day)


def _faults(
    lst: ResponsibilityList,
    by_class: dict[str, list[str]],
    start: float,
    now: float,
    rounds: int,
) -> list[Fault]:
    """``rounds`` of the scenario set spread over the window, each fault run its course, and
    one late round still going on at the end."""
    scenario_set = scenarios(list(lst.entries.values()))
    spacing = (now - start - 2400) / len(scenario_set)
    out: list[Fault] = []
    for r in range(rounds):
        at = start + 600 + r * spacing / rounds
        out += plan_faults(scenario_set, by_class, start=at, spacing_s=spacing, seed=1 + r)
    return out + plan_faults(scenario_set, by_class, start=now - 1500, spacing_s=45, seed=0)


def backfill(
    conn: Conn,
    lst: ResponsibilityList,
    *,
    now: float,
    span_s: float,
    step_s: float,
    fault_rounds: int = 1,
    seed: int = 5,
    flush_rounds: int = 20,
) -> Summary:
    """Write ``span_s`` seconds of demo data up to ``now``, every device sampled each
    ``step_s`` seconds, with ``fault_rounds`` rounds of the fault scenarios."""
    t0 = time.monotonic()
    rows = conn.execute(
        "SELECT d.id, d.uid, d.device_class, d.report_interval_s, g.uid, d.attributes"
        " FROM devices d LEFT JOIN gateways g ON g.id = d.gateway_id WHERE d.active ORDER BY d.id"
    ).fetchall()
    ids = {str(r[1]): int(r[0]) for r in rows}
    sims = build_devices([(str(u), str(c), int(i), g, dict(a)) for _, u, c, i, g, a in rows], seed)
    metric_id = {(m.device_class.value, m.name): m.id for m in METRICS}
    start = now - span_s
    by_class: dict[str, list[str]] = {}
    for d in sims:
        by_class.setdefault(d.device_class, []).append(d.uid)
    faults = _faults(lst, by_class, start, now, fault_rounds)
    faults_of: dict[str, list[Fault]] = {}
    for f in faults:
        faults_of.setdefault(f.device_uid, []).append(f)

    engine = Engine(compile_rules(lst.entries.values()))
    devices = load_devices(conn)
    for uid in faults_of:
        info = devices[ids[uid]]
        engine.add_device(
            DeviceView(
                info.id,
                info.device_class,
                float(info.report_interval_s),
                float(info.attributes.get("rated_speed", 1.0)),
            )
        )
    lifecycle = Lifecycle(_policy(lst))
    for alarm in load_open_alarms(conn):
        lifecycle.open[(alarm.device_id, alarm.code)] = alarm
    transitions: list[Transition] = []
    rng = random.Random(seed)
    jitter = {d.uid: rng.uniform(0, min(step_s, d.interval_s) / 2) for d in sims}

    batch, readings, events = Batch(), 0, 0
    rounds = int(span_s // step_s) + 1
    for k in range(rounds):
        # the last round ends at now: every device has just been heard from
        t_round = now - (rounds - 1 - k) * step_s
        for d in sims:
            t = t_round - jitter[d.uid]
            dev_id = ids[d.uid]
            values = d.behaviour.sample(t)
            silent = False
            for f in faults_of.get(d.uid, ()):
                for edge, active in ((f.start, True), (f.end, False)):
                    if t - step_s < edge <= t:
                        ts_ms = int(edge * 1000)
                        for code in f.events:
                            batch.events.append((ts_ms, dev_id, code, active, {}))
                            transitions += _observe(
                                lifecycle, engine.on_event(dev_id, edge, code, active)
                            )
                        if f.transport == "offline":
                            batch.statuses.append((ts_ms, dev_id, not active, "demo outage"))
                if f.active(t):
                    values = apply_values(f, t, values, rng)
                    silent = silent or f.transport == "offline"
            if silent:
                continue
            ts_ms = int(t * 1000)
            for name, v in values.items():
                batch.ts_ms.append(ts_ms)
                batch.device.append(dev_id)
                batch.metric.append(metric_id[(d.device_class, name)])
                batch.value.append(float(v))
            if d.uid in faults_of:
                transitions += _observe(lifecycle, engine.on_sample(dev_id, t, values))
        transitions += _observe(lifecycle, engine.on_tick(t_round))  # silence: offline
        transitions += lifecycle.tick(t_round)  # hold times, severity raises
        if (k + 1) % flush_rounds == 0 or k == rounds - 1:
            readings += len(batch)
            events += len(batch.events)
            write_batch(conn, batch)
            batch = Batch()

    apply(
        conn,
        transitions,
        entry_of=lambda _d, code: lst.entries.get(code),
        devices=devices,
        calendar=WorkCalendar(),
        list_version=str(lst.version),
    )
    _people_answer(conn, start, now, random.Random(seed))
    _platform_trouble(conn, start, now, next(iter(faults_of), "none"))
    record_breaches(conn, now)
    conn.execute("ANALYZE")
    alarms = sum(1 for t in transitions if t.kind == "open")
    orders = conn.execute(
        "SELECT count(*) FROM work_orders WHERE opened_at >= %s",
        (datetime.fromtimestamp(start, UTC),),
    ).fetchone()
    return Summary(
        len(sims), readings, events, alarms, int(orders[0]) if orders else 0, time.monotonic() - t0
    )


def _observe(lifecycle: Lifecycle, observations: Iterable[Any]) -> list[Transition]:
    out: list[Transition] = []
    for obs in observations:
        out += lifecycle.observe(obs)
    return out


def _people_answer(conn: Conn, start: float, now: float, rng: random.Random) -> None:
    """Duty staff and maintenance units answer the work orders opened in the window. An order the
    device's recovery closed was answered and reached while it lasted (a lift's passengers are
    released when the unit arrives); an open one is answered within minutes and reached within
    the hour, some late, and about half of those are completed since."""
    end = datetime.fromtimestamp(now, UTC)
    orders = conn.execute(
        "SELECT id, opened_at, coalesce(closed_at, %s), closed_at IS NULL FROM work_orders"
        " WHERE opened_at >= %s AND status <> 'false_alarm' ORDER BY id",
        (end, datetime.fromtimestamp(start, UTC)),
    ).fetchall()
    with conn.transaction():
        for wo_id, opened, until, still_open in orders:
            if still_open:
                responded = opened + timedelta(minutes=rng.uniform(0.3, 4.0))
                on_site = opened + timedelta(minutes=rng.uniform(2.0, 40.0))
            else:
                responded = opened + (until - opened) * rng.uniform(0.05, 0.35)
                on_site = opened + (until - opened) * rng.uniform(0.4, 0.95)
            steps = [("responded", responded), ("on_site", on_site)]
            done = on_site + timedelta(minutes=rng.uniform(5.0, 60.0))
            if still_open and rng.random() < 0.5:
                steps.append(("completed", done))
            previous = "occurred"
            for status, at in steps:
                if at >= until:
                    break
                column = {"responded": "responded_at", "on_site": "on_site_at"}.get(status)
                if column is not None:
                    conn.execute(
                        f"UPDATE work_orders SET {column} = %s,"
                        " status = CASE WHEN closed_at IS NULL THEN %s ELSE status END"
                        " WHERE id = %s",
                        (at, status, wo_id),
                    )
                else:
                    conn.execute(
                        "UPDATE work_orders SET status = 'completed', closed_at = %s,"
                        " closed_reason = 'completed' WHERE id = %s",
                        (at, wo_id),
                    )
                conn.execute(
                    "INSERT INTO work_order_transitions (work_order_id, at, actor, from_status,"
                    " to_status, note) VALUES (%s, %s, 'demo', %s, %s, 'demo data')",
                    (wo_id, at, previous, status),
                )
                previous = status


def _platform_trouble(conn: Conn, start: float, now: float, device_uid: str) -> None:
    """The platform's own alarms over the window, as analytics and the main job raise them."""

    def at(s: float) -> datetime:
        return datetime.fromtimestamp(s, UTC)

    raise_alarm(conn, PlatformKind.FEED_SILENT, severity=Severity.P1, at=at(start + 900))
    clear_alarm(conn, PlatformKind.FEED_SILENT, reason="feed_resumed", at=at(start + 1500))
    restarted = raise_alarm(
        conn, PlatformKind.STAGE_RESTARTED, "notify", severity=Severity.P2, at=at(now - 3600)
    )
    acknowledge(conn, restarted.id, "县信息中心 demo", at(now - 3300))
    raise_alarm(
        conn,
        PlatformKind.DETECTOR_QUARANTINED,
        device_uid,
        severity=Severity.P3,
        at=at(now - 1200),
        detail={"error": "ValueError: demo"},
    )
