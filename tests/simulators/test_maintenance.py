"""The demo county's maintenance history: the half-monthly rule, costs, and a few overdue lifts."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from core.catalogue import DeviceClass
from simulators.county import demo_county
from simulators.maintenance import ELEVATOR_SERVICE_DAYS, contracted_units, maintenance_history

NOW = datetime(2026, 11, 27, 3, tzinfo=UTC)


def test_elevators_are_serviced_every_15_days_with_a_cost() -> None:
    county = demo_county()
    visits = maintenance_history(county, NOW)
    assert visits and all(v.performed_at <= NOW for v in visits)
    routine: dict[str, list[datetime]] = defaultdict(list)
    for v in visits:
        if v.kind == "routine" and v.device_uid.split("-")[-1].startswith("EL"):
            routine[v.device_uid].append(v.performed_at)
            assert v.cost_cny is not None and v.cost_cny > 0
    elevators = [d.uid for d in county.devices() if d.device_class is DeviceClass.ELEVATOR]
    assert set(routine) == set(elevators)
    overdue = 0
    for times in routine.values():
        times.sort()
        gaps = {b - a for a, b in itertools.pairwise(times)}
        assert gaps == {timedelta(days=ELEVATOR_SERVICE_DAYS)}
        overdue += NOW - times[-1] > timedelta(days=ELEVATOR_SERVICE_DAYS)
    assert 0 < overdue < len(elevators) / 10


def test_history_is_stable_as_time_passes() -> None:
    """Seeding again later (same first day) only adds visits: nothing recorded is contradicted."""
    county = demo_county(communities=2, buildings=3, seed=11)
    earlier = {(v.device_uid, v.kind, v.performed_at) for v in maintenance_history(county, NOW)}
    later = maintenance_history(county, NOW + timedelta(days=3), days=183)
    assert earlier <= {(v.device_uid, v.kind, v.performed_at) for v in later}


def test_every_community_has_its_three_units() -> None:
    county = demo_county(communities=3)
    kinds: dict[str, set[str]] = defaultdict(set)
    for community, kind, _ in contracted_units(county):
        kinds[community].add(kind)
    assert kinds == {c.code: {"elevator", "fire", "water"} for c in county.communities}
