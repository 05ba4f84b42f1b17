"""Simulators: normal behaviour of each device class, as pure functions of simulated time.

Each model owns its random generator (seeded per device) and is advanced with ``sample(t)`` at
non-decreasing simulated times ``t`` (Unix seconds); it returns the readings a real device of
that class would report at ``t``. Daily shapes follow local time (UTC+8). The classes that follow
residential demand take it from ``load`` (default :func:`demand`; ``simulators.nuisance`` gives
one that changes from day to day).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from core.catalogue import DeviceClass

CST = 8 * 3600  # Asia/Shanghai offset; no daylight saving


def hour_of_day(t: float) -> float:
    return ((t + CST) % 86400) / 3600.0


def demand(t: float) -> float:
    """Relative residential demand 0..1 by time of day: morning and evening peaks, quiet night."""
    h = hour_of_day(t)
    morning = math.exp(-((h - 7.5) ** 2) / 1.5)
    evening = math.exp(-((h - 19.0) ** 2) / 3.0)
    day = 0.35 if 9 <= h <= 17 else 0.0
    night = 0.015
    return min(1.0, night + day + 0.9 * morning + 0.85 * evening)


class Behaviour(Protocol):
    def sample(self, t: float) -> dict[str, float]: ...


@dataclass(slots=True)
class Elevator:
    """Trips between floors arrive as a Poisson process shaped by ``demand``."""

    rng: random.Random
    floors: int
    rated_speed: float
    floor_height: float = 3.0
    floor: int = 1
    trip_count: float = 0.0
    run_hours: float = 0.0
    # current trip: (start, end of motion, end of door cycle, from floor, to floor)
    trip: tuple[float, float, float, int, int] | None = None
    last_t: float | None = None
    load: Callable[[float], float] = demand

    def __post_init__(self) -> None:
        self.trip_count = float(self.rng.randrange(10_000, 400_000))
        self.run_hours = self.trip_count * 25 / 3600

    def _next_trip(self, start: float) -> tuple[float, float, float, int, int]:
        target = self.floor
        while target == self.floor:
            target = (
                1
                if self.floor != 1 and self.rng.random() < 0.5
                else self.rng.randint(1, self.floors)
            )
        travel = abs(target - self.floor) * self.floor_height / self.rated_speed + 3.0
        return start, start + travel, start + travel + 8.0, self.floor, target

    def _advance(self, t: float) -> None:
        last = self.last_t if self.last_t is not None else t
        while True:
            if self.trip is not None:
                _, moving_end, door_end, _, to = self.trip
                if t < door_end:
                    break
                self.run_hours += (moving_end - self.trip[0]) / 3600
                self.floor, self.trip_count, self.trip = to, self.trip_count + 1, None
                last = door_end
            rate = 1 / 20.0 * self.load(last)  # trips per second at peak ~ one per 20 s
            wait = self.rng.expovariate(rate)
            if last + wait > t:
                break
            self.trip = self._next_trip(last + wait)
            last = self.trip[0]
        self.last_t = t

    def sample(self, t: float) -> dict[str, float]:
        self._advance(t)
        moving = door_open = False
        floor, direction, speed = float(self.floor), 0.0, 0.0
        if self.trip is not None:
            start, moving_end, _door_end, frm, to = self.trip
            if t < moving_end:
                moving = True
                frac = min(1.0, max(0.0, (t - start) / (moving_end - start)))
                floor = float(round(frm + (to - frm) * frac))
                direction = 1.0 if to > frm else 2.0
                speed = self.rated_speed * (0.6 if frac < 0.1 or frac > 0.9 else 1.0)
                speed *= 1 + self.rng.gauss(0, 0.01)
            else:
                floor, door_open = float(to), True
        in_zone = 0.0 if moving and self.rng.random() < 0.7 else 1.0
        return {
            "service_mode": 1.0,
            "car_status": 1.0 if moving else 0.0,
            "direction": direction,
            "door_zone": in_zone,
            "floor": floor,
            "door_state": 1.0 if door_open else 0.0,
            "passenger_present": 1.0 if moving or door_open else 0.0,
            "power": 1.0,
            "up_limit": 0.0,
            "down_limit": 0.0,
            "run_hours": round(self.run_hours, 3),
            "trip_count": self.trip_count,
            "speed": round(max(0.0, speed), 3),
            "vibration": round(abs(self.rng.gauss(0.9 if moving else 0.05, 0.05)), 3),
            "machine_room_temp": round(
                24 + 5 * math.sin((hour_of_day(t) - 9) / 24 * 2 * math.pi) + self.rng.gauss(0, 0.2),
                2,
            ),
        }


@dataclass(slots=True)
class FireWater:
    rng: random.Random
    sprinkler: float = 0.45
    hydrant: float = 0.40
    level: float = 3.2

    def sample(self, t: float) -> dict[str, float]:
        g = self.rng.gauss
        return {
            "sprinkler_pressure": round(self.sprinkler + g(0, 0.004), 4),
            "hydrant_pressure": round(self.hydrant + g(0, 0.004), 4),
            "tank_level": round(self.level + g(0, 0.01), 3),
            "tank_static_pressure": round(0.12 + g(0, 0.002), 4),
        }


@dataclass(slots=True)
class ElectricalFire:
    rng: random.Random
    base_leak: float = field(default=0.0)
    load: Callable[[float], float] = demand

    def __post_init__(self) -> None:
        self.base_leak = self.rng.uniform(80, 150)

    def sample(self, t: float) -> dict[str, float]:
        load = self.load(t)
        return {
            "residual_current": round(self.base_leak + 50 * load + self.rng.gauss(0, 3), 1),
            "cable_temp": round(22 + 18 * load + self.rng.gauss(0, 0.3), 2),
        }


@dataclass(slots=True)
class FirePanel:
    rng: random.Random

    def sample(self, t: float) -> dict[str, float]:
        return {
            "main_power": 1.0,
            "backup_power": 1.0,
            "active_fire": 0.0,
            "active_fault": 0.0,
            "disabled_points": 2.0,
        }


@dataclass(slots=True)
class PumpRoom:
    """A domestic tank refilled through a float valve and drained by a variable-speed pump set."""

    rng: random.Random
    tank_area_m2: float = 40.0
    refill_on_m: float = 2.0
    refill_off_m: float = 3.5
    level: float = 3.0
    refilling: bool = False
    energy: float = 0.0
    last_t: float | None = None
    load: Callable[[float], float] = demand

    def sample(self, t: float) -> dict[str, float]:
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        flow = 8 + 60 * self.load(t) + self.rng.gauss(0, 1.0)  # m³/h
        inflow = 90.0 if self.refilling else 0.0
        self.level += (inflow - flow) * dt / 3600 / self.tank_area_m2
        if self.level <= self.refill_on_m:
            self.refilling = True
        elif self.level >= self.refill_off_m:
            self.refilling = False
        two_pumps = flow > 50
        current1 = 12 + 0.35 * min(flow, 50)
        current2 = 12 + 0.35 * (flow - 50) if two_pumps else 0.0
        power_kw = 0.38 * 1.732 * (current1 + current2) * 0.85
        self.energy += power_kw * dt / 3600
        g = self.rng.gauss
        dip = 0.03 * self.load(t)
        return {
            "tank_level": round(self.level, 3),
            "inlet_pressure": round(0.22 + g(0, 0.003), 4),
            "zone_low_pressure": round(0.30 - dip + g(0, 0.003), 4),
            "zone_mid_pressure": round(0.45 - dip + g(0, 0.003), 4),
            "zone_high_pressure": round(0.60 - dip + g(0, 0.004), 4),
            "pump1_run": 1.0,
            "pump1_fault": 0.0,
            "pump1_current": round(current1 + g(0, 0.2), 2),
            "pump2_run": 1.0 if two_pumps else 0.0,
            "pump2_fault": 0.0,
            "pump2_current": round(max(0.0, current2 + (g(0, 0.2) if two_pumps else 0.0)), 2),
            "flood": 0.0,
            "room_temp": round(
                18 + 4 * math.sin((hour_of_day(t) - 9) / 24 * 2 * math.pi) + g(0, 0.2), 2
            ),
            "room_humidity": round(min(100.0, max(0.0, 65 + g(0, 1.0))), 1),
            "voltage": round(380 + g(0, 2.0), 1),
            "energy": round(self.energy, 3),
            "flow": round(max(0.0, flow), 2),
        }


@dataclass(slots=True)
class WaterQuality:
    rng: random.Random
    load: Callable[[float], float] = demand

    def sample(self, t: float) -> dict[str, float]:
        g = self.rng.gauss
        return {
            "residual_chlorine": round(0.45 - 0.1 * self.load(t) + g(0, 0.01), 3),
            "turbidity": round(abs(0.25 + g(0, 0.03)), 3),
            "ph": round(7.3 + g(0, 0.03), 3),
            "water_temp": round(15 + g(0, 0.1), 2),
        }


def behaviour_for(
    device_class: str,
    attributes: dict[str, float],
    rng: random.Random,
    load: Callable[[float], float] = demand,
) -> Behaviour:
    match DeviceClass(device_class):
        case DeviceClass.ELEVATOR:
            return Elevator(
                rng,
                int(attributes.get("floors", 18)),
                float(attributes.get("rated_speed", 1.0)),
                load=load,
            )
        case DeviceClass.FIRE_WATER:
            return FireWater(rng)
        case DeviceClass.ELECTRICAL_FIRE:
            return ElectricalFire(rng, load=load)
        case DeviceClass.FIRE_PANEL:
            return FirePanel(rng)
        case DeviceClass.PUMP_ROOM:
            return PumpRoom(
                rng,
                float(attributes.get("tank_area_m2", 40.0)),
                float(attributes.get("refill_on_m", 2.0)),
                float(attributes.get("refill_off_m", 3.5)),
                load=load,
            )
        case DeviceClass.WATER_QUALITY:
            return WaterQuality(rng, load=load)
