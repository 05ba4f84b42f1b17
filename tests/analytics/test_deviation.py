"""The robust detector in the running platform: its state survives JSON exactly, and a
``baseline`` filing calibrates on the metric's first two days, then flags a pump overloaded (half
again its current) while staying quiet through the simulator's nuisances (warming, noise bursts, demand
changes, dropped reports)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from analytics.deviation import Deviation, DeviationSettings
from analytics.learned import Learned, LearnedRule
from analytics.robust import RobustDetector
from simulators.behaviour import PumpRoom
from simulators.nuisance import Nuisance

T0 = 1795651200.0  # 2026-11-26 08:00 in Asia/Shanghai
STEP = 60.0
DAY = 86400.0


def pump_room(days: float, seed: int) -> list[tuple[float, dict[str, float]]]:
    """A pump room with the simulator's nuisances, one report a minute, lost reports left out."""
    nuisance = Nuisance(random.Random(f"{seed}:nuisance"))
    p = PumpRoom(random.Random(seed), load=nuisance.demand)
    out = []
    for i in range(int(days * DAY / STEP)):
        t = T0 + i * STEP
        v = p.sample(t)
        if not nuisance.skip(t):
            out.append((t, nuisance.apply(t, v)))
    return out


def json_round(state: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = json.loads(json.dumps(state, allow_nan=False))
    return out


def test_robust_detector_state_continues_exactly_through_json() -> None:
    rows = pump_room(1.5, seed=4)
    cols = ["pump1_current", "zone_mid_pressure", "room_temp", "flow"]
    ts = np.array([t for t, _ in rows])
    x = np.array([[v[c] for c in cols] for _, v in rows])
    x[900:960, 0] += 5.0  # a fault while frozen: the state holds frozen columns too
    whole = RobustDetector(cols)
    whole.fit(ts[:600], x[:600])
    whole.arm(6.0)
    split = RobustDetector(cols)
    split.fit(ts[:600], x[:600])
    split.arm(6.0)
    with pytest.raises(ValueError, match="fit the detector"):
        RobustDetector(cols).to_state()
    expected, expected_z = whole.score(ts[600:], x[600:])
    got, got_z = [], []
    for lo in range(600, len(ts), 173):
        s, z = split.score(ts[lo : lo + 173], x[lo : lo + 173])
        got.append(s)
        got_z.append(z)
        split = RobustDetector.from_state(json_round(split.to_state()))
    np.testing.assert_array_equal(np.concatenate(got), expected)
    np.testing.assert_array_equal(np.concatenate(got_z), expected_z)
    assert np.nanmax(expected[300:360]) > 6.0, "the fault scores"


def test_a_deviation_calibrates_first_then_judges_and_its_state_survives_json() -> None:
    rows = pump_room(4, seed=5)
    settings = DeviationSettings(z=6.0, confirm_s=1800.0)  # PR.BASELINE's for_seconds
    d = Deviation("pump1_current", settings)
    fault = (T0 + 3 * DAY + 5 * 3600, T0 + 3 * DAY + 8 * 3600)  # overloaded: 15 A more
    out: list[tuple[float, bool | None]] = []
    for i, (t, v) in enumerate(rows):
        value = v["pump1_current"] + (15.0 if fault[0] <= t < fault[1] else 0.0)
        out.append((t, d.update(t, value)))
        if i % 997 == 0:
            d = Deviation.from_state(json_round(d.to_state()))
    calibrating = [t for t, a in out if a is None]
    assert calibrating[-1] - T0 == pytest.approx(2 * DAY, abs=2 * STEP), "two days calibrate"
    assert d.threshold is not None and d.threshold >= 6.0
    on = [t for t, a in out if a]
    assert on, "an overloaded pump is flagged"
    assert fault[0] + 1800 <= on[0] <= fault[0] + 2400, "once it lasted for_seconds"
    false = [t for t in on if not fault[0] <= t <= fault[1] + settings.hold_s + STEP]
    assert not false, f"alarms outside the fault: {false[:5]}"


def test_a_baseline_filing_is_judged_by_the_robust_detector() -> None:
    rows = pump_room(3, seed=5)
    learned = Learned(
        {
            "pump_room": [
                LearnedRule("PR.BASELINE", "baseline", "pump1_current", z=6.0, for_seconds=1800.0)
            ]
        }
    )
    fault_at = T0 + 2.25 * DAY  # 14:00
    seen: list[tuple[float, bool]] = []
    for t, v in rows:
        sample = dict(v, pump1_current=v["pump1_current"] + 15.0) if t >= fault_at else v
        seen += [(t, o.active) for o in learned.on_sample(3, "pump_room", t, sample)]
        learned.on_sample(3, "pump_room", t, {"flow": 1.0})  # without the metric: nothing
    assert seen and seen[0][0] - T0 >= 2 * DAY, "nothing is said while calibrating"
    first = next(t for t, a in seen if a)
    assert fault_at + 1800 <= first <= fault_at + 2400
    assert not any(a for t, a in seen if t < fault_at)
    learned.forget(3)
    assert not learned.deviations
