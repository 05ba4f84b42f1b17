"""Simulators: injected faults, each with its ground truth (pure).

A ``Fault`` changes what one device reports during [start, end): values forced, device events
raised and cleared, or the transport misbehaving (silent, duplicated, out of order, noisy).
The ground truth says which list entry (event code) and responsible party the platform should
file; transport faults that must *not* raise an alarm say so with ``expect=None``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


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
    offset: dict[str, float] = field(default_factory=dict)  # added during the fault

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
    offset: dict[str, float] = field(default_factory=dict)

    def fault(self, device_uid: str, start: float, end: float) -> Fault:
        """This scenario on one device from ``start`` to ``end``."""
        return Fault(
            self.name,
            device_uid,
            start,
            end,
            self.expect,
            self.party,
            dict(self.values),
            dict(self.drift_per_hour),
            self.events,
            self.transport,
            self.severity,
            dict(self.offset),
        )


STUCK_SAMPLES = 360  # the shipped list's stuck filings: this many equal values in a row


def scenarios(
    entries: list[Any], *, interval_s: float = 10.0, learned: bool = False
) -> list[Scenario]:
    """The standard scenario set, with the event code and responsible party the list in force
    says each should be filed under. Devices report every ``interval_s`` (a stuck sensor lasts
    long enough for the list's stuck filings to see it). With ``learned``, two faults only the
    learned detectors see: a worn pump drawing 4 A more at the same flow, for the class model
    (``multivariate``), and an overloaded pump drawing 15 A more (a seizing bearing), for the
    device's own baseline (``baseline``); both need the detectors calibrated (a model trained, two
    days of data)."""
    codes = scenario_codes(entries)
    by_code = {str(e.code): e for e in entries}

    def sc(
        name: str,
        cls: str,
        severity: str | None,
        values: dict[str, float] | None = None,
        events: tuple[str, ...] = (),
        duration_s: float = 300.0,
        **kw: Any,
    ) -> Scenario:
        code = codes.get(name)
        party = None if code is None else str(by_code[code].responsible)
        return Scenario(
            name, cls, code, party, severity, values or {}, events, duration_s=duration_s, **kw
        )

    el, fw, pr, wq, fp = "elevator", "fire_water", "pump_room", "water_quality", "fire_panel"
    stopped = {"car_status": 0.0, "speed": 0.0, "direction": 0.0}
    trapped = {**stopped, "door_zone": 0.0, "door_state": 0.0, "passenger_present": 1.0}
    stuck_s = STUCK_SAMPLES * interval_s + 600.0
    learned_set = [
        sc("pump_wear", pr, None, offset={"pump1_current": 4.0}, duration_s=3 * 3600.0),
        sc("pump_overload", pr, None, offset={"pump1_current": 15.0}, duration_s=3 * 3600.0),
    ]
    return [
        sc("trapped_passengers", el, "P0", trapped, ("93",)),
        sc(
            "door_open_while_moving",
            el,
            "P0",
            {"car_status": 1.0, "door_state": 1.0, "speed": 0.5},
            ("05",),
        ),
        sc("overrun", el, "P0", {**stopped, "up_limit": 1.0}, ("09",)),
        sc("main_power_loss", el, None, {**stopped, "power": 0.0}, ("41",)),
        sc("alarm_button", el, None, {}, ("90",)),
        sc("fire_alarm", fp, "P0", {"active_fire": 1.0}, ("FIRE",)),
        sc("sprinkler_pressure_drop", fw, None, {"sprinkler_pressure": 0.03}, duration_s=900.0),
        sc("fire_tank_low", fw, None, {"tank_level": 0.4}, duration_s=1200.0),
        sc("pump_failure", pr, None, {"pump1_fault": 1.0, "pump1_current": 0.0}),
        sc("tank_overflow", pr, None, {"tank_level": 4.8}, duration_s=900.0),
        sc("tank_empty", pr, None, {"tank_level": 0.2}, duration_s=900.0),
        sc("chlorine_drop", wq, None, {"residual_chlorine": 0.02}, duration_s=1200.0),
        sc("turbidity_spike", wq, None, {"turbidity": 3.5}, duration_s=1200.0),
        sc("pump_room_flood", pr, None, {"flood": 1.0}),
        sc("stuck_sensor", fw, None, {"hydrant_pressure": 0.4123}, duration_s=stuck_s),
        sc("slow_drift", pr, None, drift_per_hour={"zone_low_pressure": -0.3}, duration_s=3600.0),
        sc("device_offline", fw, None, transport="offline", duration_s=600.0),
        sc("noisy", wq, None, transport="noisy", duration_s=900.0),
        sc("duplicated", el, None, transport="duplicate", duration_s=600.0),
        sc("out_of_order", fw, None, transport="out_of_order", duration_s=600.0),
        *(learned_set if learned else []),
    ]


def plan_faults(
    scenario_set: list[Scenario],
    devices_by_class: dict[str, list[str]],
    *,
    start: float,
    spacing_s: float,
    gap_s: float = 1200.0,
    seed: int = 1,
) -> list[Fault]:
    """One fault per scenario, started ``spacing_s`` apart after ``start``. A device carries
    at most one fault at a time, and ``gap_s`` of normal behaviour separates two on it."""
    rng = random.Random(seed)
    free_at: dict[str, float] = {}
    out = []
    for i, sc in enumerate(scenario_set):
        candidates = devices_by_class.get(sc.device_class, [])
        if not candidates:
            raise ValueError(f"no {sc.device_class} device for scenario {sc.name!r}")
        t0 = start + i * spacing_s + rng.uniform(0, 5)
        uid = min(candidates, key=lambda u: (free_at.get(u, 0.0), rng.random()))
        t0 = max(t0, free_at.get(uid, 0.0))
        free_at[uid] = t0 + sc.duration_s + gap_s
        out.append(sc.fault(uid, t0, t0 + sc.duration_s))
    return out


def apply_values(
    fault: Fault, t: float, values: dict[str, float], rng: random.Random
) -> dict[str, float]:
    """The values a faulty device reports at ``t``."""
    out = dict(values)
    out.update(fault.values)
    for k, d in fault.offset.items():
        if k in out:
            out[k] = max(0.0, out[k] + d)
    for k, per_hour in fault.drift_per_hour.items():
        if k in out:
            out[k] = max(0.0, out[k] + per_hour * (t - fault.start) / 3600)
    if fault.transport == "noisy":
        out = {
            k: (v + rng.gauss(0, abs(v) * 0.002) if k in ("turbidity", "water_temp") else v)
            for k, v in out.items()
        }
    return out


# Which list entry each scenario should file, found by what the entry's filing condition
# watches, so that renaming an entry does not break the scenarios.
_MATCH: dict[str, tuple[str, str, str, str | None]] = {
    # scenario: (device class, detector, event code or metric, direction)
    "trapped_passengers": ("elevator", "event_code", "93", None),
    "door_open_while_moving": ("elevator", "event_code", "05", None),
    "overrun": ("elevator", "event_code", "09", None),
    "main_power_loss": ("elevator", "event_code", "41", None),
    "alarm_button": ("elevator", "event_code", "90", None),
    "fire_alarm": ("fire_panel", "event_code", "FIRE", None),
    "sprinkler_pressure_drop": ("fire_water", "threshold", "sprinkler_pressure", "below"),
    "fire_tank_low": ("fire_water", "threshold", "tank_level", "below"),
    "pump_failure": ("pump_room", "state", "pump1_fault", None),
    "tank_overflow": ("pump_room", "threshold", "tank_level", "above"),
    "tank_empty": ("pump_room", "threshold", "tank_level", "below"),
    "chlorine_drop": ("water_quality", "threshold", "residual_chlorine", "below"),
    "turbidity_spike": ("water_quality", "threshold", "turbidity", "above"),
    "pump_room_flood": ("pump_room", "state", "flood", None),
    "stuck_sensor": ("fire_water", "stuck", "hydrant_pressure", None),
    "slow_drift": ("pump_room", "threshold", "zone_low_pressure", "below"),
    "device_offline": ("fire_water", "offline", "", None),
    "pump_wear": ("pump_room", "multivariate", "", None),
    "pump_overload": ("pump_room", "baseline", "pump1_current", None),
}


def scenario_codes(entries: list[object]) -> dict[str, str]:
    """Scenario name -> the code of the list entry whose filing watches what the fault breaks."""
    out: dict[str, str] = {}
    for scenario, (cls, detector, what, direction) in _MATCH.items():
        for e in entries:
            if str(getattr(e, "device_class", "")) != cls:
                continue
            for f in getattr(e, "filing", ()):
                p = f.model_dump()
                if p.get("detector") != detector:
                    continue
                if (
                    (detector == "event_code" and what in p.get("codes", ()))
                    or (
                        detector in ("threshold", "state", "stuck", "baseline")
                        and p.get("metric") == what
                        and (direction is None or p.get(direction) is not None)
                    )
                    or detector in ("offline", "multivariate")
                ):
                    out.setdefault(scenario, str(getattr(e, "code", "")))
    return out
