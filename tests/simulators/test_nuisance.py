"""The devices' nuisances: lost reports never add up to the list's offline silence, demand
changes from day to day but not within one, temperatures warm slowly, and noise comes in
bursts."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from simulators.behaviour import CST, PumpRoom, demand
from simulators.nuisance import DAY, Nuisance, NuisanceParams

T0 = 1795651200.0  # 2026-11-26 08:00 in Asia/Shanghai, a Thursday


def test_lost_reports_come_alone_or_in_short_gaps() -> None:
    n = Nuisance(random.Random(1), NuisanceParams(gaps_per_day=24.0, gap_intervals=3))
    lost = [n.skip(T0 + i * 10.0) for i in range(8640 * 3)]
    run = longest = 0
    for x in lost:
        run = run + 1 if x else 0
        longest = max(longest, run)
    assert longest == 3, "at most three reports in a row: six intervals would be offline"
    assert 0.004 < sum(lost) / len(lost) < 0.03
    with pytest.raises(ValueError, match="offline silence"):
        NuisanceParams(gap_intervals=6)


def test_demand_changes_from_day_to_day_and_not_within_a_day() -> None:
    n = Nuisance(random.Random(2))
    days = [T0 + d * DAY for d in range(60)]
    factors = [n.day_factor(t) for t in days]
    assert len({round(f, 6) for f in factors}) > 40
    assert n.day_factor(T0) == n.day_factor(T0 + 3 * 3600) == n.day_factor(T0 + 15 * 3600)
    assert statistics.pstdev(factors) > 0.03
    weekend = [f for t, f in zip(days, factors, strict=True) if ((t + CST) // DAY) % 7 in (2, 3)]
    weekday = [f for t, f in zip(days, factors, strict=True) if ((t + CST) // DAY) % 7 == 0]
    assert statistics.median(weekend) > statistics.median(weekday)
    for t in days:
        assert 0.0 <= n.demand(t + 7 * 3600) <= 1.0
        assert n.demand(t) == pytest.approx(min(1.0, demand(t) * n.day_factor(t)))


def test_temperatures_warm_slowly_and_noise_comes_in_bursts() -> None:
    n = Nuisance(random.Random(3), NuisanceParams(bursts_per_day=6.0))
    rises, jumps = [], []
    for i in range(8640 * 2):
        t = T0 + i * 10.0
        got = n.apply(t, {"room_temp": 20.0, "voltage": 380.0, "pump1_run": 1.0})
        rises.append(got["room_temp"] - 20.0)
        jumps.append(abs(got["voltage"] - 380.0))
        assert got["pump1_run"] == 1.0, "states are left alone"
    p = PumpRoom(random.Random(3), load=n.demand)
    assert p.sample(T0)["flow"] > 0
    day1 = 3.0 * (1 - math.exp(-0.5))  # two days' time constant
    assert statistics.median(rises[:360]) == pytest.approx(0.03, abs=0.02)  # an hour in
    assert statistics.median(rises[8640:9000]) == pytest.approx(day1, abs=0.02)
    assert statistics.median(rises[-360:]) > day1 + 0.5
    noisy = sum(j > 0 for j in jumps)  # the voltage itself is constant here
    assert 30 < noisy < 0.1 * len(jumps), "noise bursts come and go"
