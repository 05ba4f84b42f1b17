"""Simulators: the demo's faults and duty roster. Every few minutes (``SHOUWANG_DEMO_FAULT_EVERY_S``)
a fault starts on a device of the demo firm's communities, so that a newcomer watching the duty
pages sees alarm → work order → notification → acknowledge → arrive → complete within minutes.

``fault_schedule`` is pure: which fault, on which device, when. ``seed_roster`` writes the demo
firm's duty staff and the maintenance staff of the units serving its communities, each on shift
for every one of those communities for the coming days, with a duty-app channel (the
notifications appear on their MQTT topic). It is idempotent: run again, it adds nothing twice
and extends the shifts.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.db import Conn
from simulators.faults import Fault, Scenario

DEMO_SCENARIOS = (
    "trapped_passengers",
    "sprinkler_pressure_drop",
    "pump_failure",
    "chlorine_drop",
)
"""What the demo injects, in turn: a P0 first, so the first fault is the loudest."""

MAX_FAULTS = 10_000


def fault_schedule(
    scenario_set: list[Scenario],
    devices_by_class: dict[str, list[str]],
    *,
    start: float,
    every_s: float,
    span_s: float,
    first_after_s: float = 60.0,
    hold_s: float = 1800.0,
    seed: int = 7,
) -> list[Fault]:
    """The demo's faults over ``span_s`` from ``start``: the first ``first_after_s`` after it,
    then one every ``every_s``, cycling through ``DEMO_SCENARIOS``; each lasts at least
    ``hold_s`` (time to acknowledge, arrive and complete), on a device of its class with no
    other fault then. A scenario with no device of its class is skipped; a device busy with a
    fault is not given another one, and a fault with no free device is skipped."""
    for name, v in (("every_s", every_s), ("span_s", span_s), ("hold_s", hold_s)):
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{name} must be a positive number of seconds, not {v!r}")
    if not math.isfinite(first_after_s) or first_after_s < 0:
        raise ValueError(f"first_after_s must be zero or more seconds, not {first_after_s!r}")
    by_name = {s.name: s for s in scenario_set}
    turn = [
        by_name[n]
        for n in DEMO_SCENARIOS
        if n in by_name and devices_by_class.get(by_name[n].device_class)
    ]
    if not turn:
        return []
    rng = random.Random(seed)
    busy_until: dict[str, float] = {}
    out: list[Fault] = []
    n = min(MAX_FAULTS, int((span_s - first_after_s) // every_s) + 1)
    for i in range(max(0, n)):
        sc = turn[i % len(turn)]
        t0 = start + first_after_s + i * every_s
        free = sorted(
            u for u in devices_by_class[sc.device_class] if busy_until.get(u, -math.inf) <= t0
        )
        if not free:
            continue
        uid = rng.choice(free)
        end = t0 + max(sc.duration_s, hold_s)
        busy_until[uid] = end
        out.append(sc.fault(uid, t0, end))
    return out


def demo_firm(conn: Conn) -> int | None:
    """The demo firm: the first property firm with communities (None: nothing seeded)."""
    row = conn.execute("SELECT min(firm_id) FROM communities WHERE firm_id IS NOT NULL").fetchone()
    return None if row is None or row[0] is None else int(row[0])


def firm_devices(conn: Conn, firm_id: int) -> set[str]:
    """The uids of the firm's active devices: where the demo's faults go."""
    rows = conn.execute(
        "SELECT d.uid FROM devices d JOIN communities c ON c.id = d.community_id"
        " WHERE c.firm_id = %s AND d.active",
        (firm_id,),
    ).fetchall()
    return {str(r[0]) for r in rows}


@dataclass(frozen=True, slots=True)
class DemoPerson:
    person_id: int
    name: str
    role: str  # duty_staff | firm_manager | maintenance_staff
    phone: str  # their demo login's phone number


def seed_roster(conn: Conn, now: datetime, *, days: float = 7.0) -> list[DemoPerson]:
    """The demo firm's duty staff and one maintenance person per unit serving its communities,
    on shift for all of them from ``now`` for ``days``, and its manager (on no shift: the firm
    console's login); returns them, duty staff first. Nothing
    is seeded when there is no firm."""
    firm = demo_firm(conn)
    if firm is None:
        return []
    communities = [
        int(r[0])
        for r in conn.execute(
            "SELECT id FROM communities WHERE firm_id = %s ORDER BY id", (firm,)
        ).fetchall()
    ]
    units = conn.execute(
        "SELECT DISTINCT m.maintenance_unit_id, m.kind FROM community_maintenance_units m"
        " WHERE m.community_id = ANY(%s) ORDER BY 1",
        (communities,),
    ).fetchall()
    people: list[tuple[str, str, int | None, int | None, str, list[int]]] = [
        (f"演示 值班员 {firm}", "duty_staff", firm, None, "13900000001", communities),
        # The firm's manager: the firm console (/console), on no shift.
        (f"演示 经理 {firm}", "firm_manager", firm, None, "13900000002", []),
    ]
    seen: set[int] = set()
    for i, (unit, kind) in enumerate(units):
        if int(unit) in seen:
            continue
        seen.add(int(unit))
        served = [
            int(r[0])
            for r in conn.execute(
                "SELECT community_id FROM community_maintenance_units"
                " WHERE maintenance_unit_id = %s AND community_id = ANY(%s) ORDER BY 1",
                (unit, communities),
            ).fetchall()
        ]
        people.append(
            (
                f"演示 维保员 {kind} {unit}",
                "maintenance_staff",
                None,
                int(unit),
                f"139000001{i + 1:02d}",
                served,
            )
        )
    out: list[DemoPerson] = []
    until = now + timedelta(days=days)
    with conn.transaction():
        for name, role, firm_id, unit_id, phone, served in people:
            row = conn.execute(
                "SELECT id FROM people WHERE name = %s ORDER BY id LIMIT 1", (name,)
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "INSERT INTO people (name, role, firm_id, unit_id) VALUES (%s, %s, %s, %s)"
                    " RETURNING id",
                    (name, role, firm_id, unit_id),
                ).fetchone()
            assert row is not None
            pid = int(row[0])
            conn.execute(
                "INSERT INTO contact_channels (person_id, kind, address) VALUES (%s, 'mqtt', %s)"
                " ON CONFLICT DO NOTHING",
                (pid, f"duty-{pid}"),
            )
            for community in served:
                extended = conn.execute(
                    "UPDATE duty_shifts SET ends_at = greatest(ends_at, %s) WHERE person_id = %s"
                    " AND community_id = %s AND role = %s AND starts_at <= %s AND ends_at > %s"
                    " RETURNING id",
                    (until, pid, community, role, now, now),
                ).fetchall()
                if not extended:
                    conn.execute(
                        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        (community, role, pid, now - timedelta(minutes=5), until),
                    )
            out.append(DemoPerson(pid, name, role, phone))
    return out
