"""Normal behaviour looks like the real thing, and stays inside the catalogue's ranges."""

from __future__ import annotations

import random

import pytest

from core.catalogue import DeviceClass, metrics_by_class
from simulators.behaviour import Elevator, PumpRoom, behaviour_for, hour_of_day
from simulators.county import demo_county

T0 = 1795651200  # 2026-11-26 08:00 in Asia/Shanghai


@pytest.mark.parametrize("cls", list(DeviceClass))
def test_every_reading_is_in_the_catalogue_and_in_range(cls: DeviceClass) -> None:
    specs = metrics_by_class()[cls]
    b = behaviour_for(cls.value, {"floors": 26, "rated_speed": 1.75}, random.Random(1))
    for i in range(2000):
        for name, v in b.sample(T0 + i * 10).items():
            assert name in specs, name
            assert specs[name].lo <= v <= specs[name].hi, (name, v)


def test_elevator_trips_follow_the_time_of_day() -> None:
    e = Elevator(random.Random(3), floors=18, rated_speed=1.0)
    moving_by_hour: dict[int, int] = {}
    for i in range(8640 * 2):  # two days at 10 s
        t = T0 + i * 10
        if e.sample(t)["car_status"] == 1.0:
            h = int(hour_of_day(t))
            moving_by_hour[h] = moving_by_hour.get(h, 0) + 1
    night = sum(moving_by_hour.get(h, 0) for h in (1, 2, 3, 4))
    morning = sum(moving_by_hour.get(h, 0) for h in (7, 8))
    assert morning > 5 * max(night, 1)
    assert e.trip_count > 0


def test_pump_room_tank_cycles_between_its_refill_levels() -> None:
    p = PumpRoom(random.Random(2))
    levels = [p.sample(T0 + i * 10)["tank_level"] for i in range(8640)]
    assert min(levels) > 1.9 and max(levels) < 3.6
    assert max(levels) - min(levels) > 1.0, "the float valve refills the tank over a day"


def test_demo_county_has_the_size_the_readme_promises() -> None:
    c = demo_county()
    assert len(c.communities) == 20
    assert 1800 <= len(c.devices()) <= 2200
    assert len({d.uid for d in c.devices()}) == len(c.devices())
    assert demo_county() == c, "the same seed gives the same county"
