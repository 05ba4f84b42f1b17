"""Simulators: injected faults, each with its ground truth (pure).

A ``Fault`` changes what one device reports during [start, end): values forced, device events
raised and cleared, or the transport misbehaving (silent, duplicated, out of order, noisy).
The ground truth says which list entry (event code) and responsible party the platform should
file; transport faults that must *not* raise an alarm say so with ``expect=None``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Fault:
    scenario: str
    device_uid: str
    start: float
    end: float
    expect: str | None  # list event code the platform should file, or None
    party: str | None = None  # responsible party expected on the work order
    values: dict[str, float] = field(default_factory=dict)  # forced during the fault
    drift_per_hour: dict[str, float] = field(default_factory=dict)  # added, growing with time
    events: tuple[str, ...] = ()  # device event codes raised at start, cleared at end
    transport: str | None = None  # offline | duplicate | out_of_order | noisy
    severity: str | None = None  # expected severity (P0 for the delay target)

    def active(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True, slots=True)
class Scenario:
    """Which fault kinds exist, what they force, and what they should produce."""

    name: str
    device_class: str
    expect: str | None
    party: str | None
    severity: str | None
    values: dict[str, float] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    drift_per_hour: dict[str, float] = field(default_factory=dict)
    transport: str | None = None
    duration_s: float = 300.0


def scenarios(codes: dict[str, str]) -> list[Scenario]:
    """The standard scenario set; ``codes`` maps scenario names to the list's event codes."""
    c = codes.get
    el, fw, pr, wq, fp = "elevator", "fire_water", "pump_room", "water_quality", "fire_panel"
    emu, fmu, wat, duty = (
        "elevator_maintenance_unit",
        "fire_maintenance_unit",
        "water_utility",
        "firm_duty_room",
    )
    stopped = {"car_status": 0.0, "speed": 0.0, "direction": 0.0}
    return [
        Scenario(
            "trapped_passengers",
            el,
            c("trapped_passengers"),
            emu,
            "P0",
            {**stopped, "door_zone": 0.0, "door_state": 0.0, "passenger_present": 1.0},
            ("93",),
        ),
        Scenario(
            "door_open_while_moving",
            el,
            c("door_open_while_moving"),
            emu,
            "P0",
            {"car_status": 1.0, "door_state": 1.0, "speed": 0.5},
            ("05",),
        ),
        Scenario("overrun", el, c("overrun"), emu, "P0", {**stopped, "up_limit": 1.0}, ("09",)),
        Scenario(
            "main_power_loss",
            el,
            c("main_power_loss"),
            emu,
            None,
            {**stopped, "power": 0.0},
            ("41",),
        ),
        Scenario("alarm_button", el, c("alarm_button"), emu, None, {}, ("90",)),
        Scenario("fire_alarm", fp, c("fire_alarm"), duty, "P0", {"active_fire": 1.0}, ("FIRE",)),
        Scenario(
            "sprinkler_pressure_drop",
            fw,
            c("sprinkler_pressure_drop"),
            fmu,
            None,
            {"sprinkler_pressure": 0.03},
        ),
        Scenario("fire_tank_low", fw, c("fire_tank_low"), fmu, None, {"tank_level": 0.4}),
        Scenario(
            "pump_failure",
            pr,
            c("pump_failure"),
            wat,
            None,
            {"pump1_fault": 1.0, "pump1_current": 0.0},
        ),
        Scenario("tank_overflow", pr, c("tank_overflow"), wat, None, {"tank_level": 4.8}),
        Scenario("tank_empty", pr, c("tank_empty"), wat, None, {"tank_level": 0.2}),
        Scenario("chlorine_drop", wq, c("chlorine_drop"), wat, None, {"residual_chlorine": 0.02}),
        Scenario("turbidity_spike", wq, c("turbidity_spike"), wat, None, {"turbidity": 3.5}),
        Scenario("pump_room_flood", pr, c("pump_room_flood"), wat, None, {"flood": 1.0}),
        Scenario(
            "stuck_sensor",
            fw,
            c("stuck_sensor"),
            fmu,
            None,
            {"hydrant_pressure": 0.4123},
            duration_s=900.0,
        ),
        Scenario(
            "slow_drift",
            pr,
            c("slow_drift"),
            wat,
            None,
            drift_per_hour={"zone_low_pressure": -0.3},
            duration_s=3600.0,
        ),
        Scenario(
            "device_offline",
            fw,
            c("device_offline"),
            fmu,
            None,
            transport="offline",
            duration_s=600.0,
        ),
        Scenario("noisy", wq, None, None, None, transport="noisy", duration_s=900.0),
        Scenario("duplicated", el, None, None, None, transport="duplicate", duration_s=600.0),
        Scenario("out_of_order", fw, None, None, None, transport="out_of_order", duration_s=600.0),
    ]


def plan_faults(
    scenario_set: list[Scenario],
    devices_by_class: dict[str, list[str]],
    *,
    start: float,
    spacing_s: float,
    seed: int = 1,
) -> list[Fault]:
    """One fault per scenario, each on its own device, started ``spacing_s`` apart after ``start``."""
    rng = random.Random(seed)
    used: set[str] = set()
    out = []
    for i, sc in enumerate(scenario_set):
        candidates = [u for u in devices_by_class.get(sc.device_class, []) if u not in used]
        if not candidates:
            raise ValueError(f"no free {sc.device_class} device for scenario {sc.name!r}")
        uid = rng.choice(candidates)
        used.add(uid)
        t0 = start + i * spacing_s + rng.uniform(0, 5)
        out.append(
            Fault(
                sc.name,
                uid,
                t0,
                t0 + sc.duration_s,
                sc.expect,
                sc.party,
                dict(sc.values),
                dict(sc.drift_per_hour),
                sc.events,
                sc.transport,
                sc.severity,
            )
        )
    return out


def apply_values(
    fault: Fault, t: float, values: dict[str, float], rng: random.Random
) -> dict[str, float]:
    """The values a faulty device reports at ``t``."""
    out = dict(values)
    out.update(fault.values)
    for k, per_hour in fault.drift_per_hour.items():
        if k in out:
            out[k] = max(0.0, out[k] + per_hour * (t - fault.start) / 3600)
    if fault.transport == "noisy":
        out = {
            k: (v + rng.gauss(0, abs(v) * 0.002) if k in ("turbidity", "water_temp") else v)
            for k, v in out.items()
        }
    return out
