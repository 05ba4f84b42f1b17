"""The time-of-day baseline on simulated pump rooms: shifts and drift found, normal days quiet."""

from __future__ import annotations

import json
import random
from functools import lru_cache

import numpy as np
import pytest

from analytics.baseline import Baseline, BaselineParams, Shift, median
from simulators.behaviour import PumpRoom

T0 = 1_798_732_800  # 2027-01-01 00:00 in UTC+8
DAY = 86400.0
STEP = 60.0
GAUGES = (
    "flow",
    "pump1_current",
    "zone_low_pressure",
    "zone_mid_pressure",
    "zone_high_pressure",
    "inlet_pressure",
    "voltage",
    "room_temp",
)


@lru_cache
def pump_room(days: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A simulated pump room's readings, one sample a minute (read-only arrays)."""
    p = PumpRoom(random.Random(seed))
    ts = T0 + np.arange(int(days * DAY / STEP)) * STEP
    samples = [p.sample(float(t)) for t in ts]
    cols = {k: np.array([s[k] for s in samples]) for k in samples[0]}
    for a in (ts, *cols.values()):
        a.flags.writeable = False
    return ts, cols


def run(ts: np.ndarray, x: np.ndarray, params: BaselineParams | None = None) -> list[Shift]:
    return Baseline(params).update(ts, x).shifts


def test_median_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 91):
        x = rng.normal(size=n)
        assert median(x) == pytest.approx(float(np.median(x)))


@pytest.mark.parametrize("seed", [1, 2])
def test_normal_days_raise_few_alarms(seed: int) -> None:
    ts, cols = pump_room(30, seed)
    shifts = {g: run(ts, cols[g]) for g in GAUGES}
    total = sum(len(s) for s in shifts.values())
    print(f"seed {seed}: {total} shift(s) in {len(GAUGES)} series x 30 days", shifts)
    assert total <= 2, shifts


def test_a_level_shift_is_found_within_the_hour() -> None:
    ts, cols = pump_room(30, 1)
    onset = T0 + 20 * DAY + 10.1 * 3600
    x = cols["pump1_current"] + 1.0 * (ts >= onset)  # 5x the reading noise, 6 % of the day's range
    shifts = run(ts, x)
    assert [(s.kind, s.direction) for s in shifts] == [("level_shift", 1)]
    delay = shifts[0].at - onset
    print(f"pump1_current +1 A: level_shift after {delay / 60:.0f} min, z={shifts[0].z:.1f}")
    assert delay <= 3600
    assert onset - 3600 <= shifts[0].since <= onset


@pytest.mark.parametrize(("rate", "within_days"), [(0.002, 1.5), (0.0005, 6.0)])
def test_a_slow_drift_is_found(rate: float, within_days: float) -> None:
    ts, cols = pump_room(30, 1)
    onset = T0 + 15 * DAY + 3 * 3600
    x = cols["zone_mid_pressure"] - rate * np.clip(ts - onset, 0, None) / DAY
    shifts = run(ts, x)
    assert shifts, "the drift went unnoticed"
    first = shifts[0]
    assert (first.kind, first.direction) == ("baseline_drift", -1)
    delay = (first.at - onset) / DAY
    print(f"zone_mid_pressure -{rate} MPa/day (noise 0.003): drift after {delay:.2f} days")
    assert 0 < delay <= within_days


def test_no_decision_before_the_bucket_has_history_then_the_global_slot_scores() -> None:
    ts, cols = pump_room(8, 1)
    x = cols["flow"] + 30.0 * (ts >= T0 + DAY)  # a huge shift on day 2
    r = Baseline(BaselineParams(min_visits=5)).update(ts, x)
    assert all(s.at >= T0 + 5 * DAY for s in r.shifts), "shifts only once buckets have 5 days"
    first_score = ts[np.isfinite(r.z)][0]
    assert first_score - T0 <= 3 * 3600, "the all-day slot scores after its 8 visits"
    assert np.isnan(r.z[ts < T0 + 2 * 3600]).all()


def test_causal_and_independent_of_how_the_stream_is_cut() -> None:
    ts, cols = pump_room(12, 2)
    x = cols["pump1_current"] + 2.0 * (ts >= T0 + 9.3 * DAY)
    whole = Baseline().update(ts, x)
    past = Baseline().update(ts[:10_000], x[:10_000])
    np.testing.assert_array_equal(past.z, whole.z[:10_000])
    assert past.shifts == [s for s in whole.shifts if s.at <= ts[9_999]]
    b, zs, shifts = Baseline(), [], []
    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(len(ts), 40, replace=False))
    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(ts)], strict=True):
        r = b.update(ts[lo:hi], x[lo:hi])
        zs.append(r.z)
        shifts += r.shifts
    np.testing.assert_array_equal(np.concatenate(zs), whole.z)
    assert shifts == whole.shifts
    assert len(whole.shifts) == 1


def test_state_survives_json_mid_visit() -> None:
    ts, cols = pump_room(12, 2)
    x = cols["flow"] * (1 + 0.15 * (ts >= T0 + 10 * DAY))
    whole = Baseline().update(ts, x)
    b = Baseline()
    b.update(ts[:9_007], x[:9_007])
    b = Baseline.from_state(json.loads(json.dumps(b.to_state(), allow_nan=False)))
    rest = b.update(ts[9_007:], x[9_007:])
    np.testing.assert_array_equal(rest.z, whole.z[9_007:])
    assert rest.shifts == [s for s in whole.shifts if s.at > ts[9_006]]
    assert b.episode == 1


def test_now_closes_a_finished_visit_and_bad_values_are_ignored() -> None:
    ts, cols = pump_room(8, 1)
    x = cols["flow"].copy()
    cut = int(7.5 * DAY / STEP)
    x[cut:] += 20.0
    b = Baseline()
    b.update(ts[: cut + 15], x[: cut + 15])  # one whole 15-minute visit after the shift
    end_of_visit = T0 + 7.5 * DAY + 15 * 60  # buckets are aligned to local midnight
    r = b.update(np.array([np.nan, ts[0]]), np.array([1.0, 1.0]), now=end_of_visit)
    assert np.isnan(r.z).all(), "NaN and out-of-order values are not scored"
    assert [s.kind for s in r.shifts] == ["level_shift"]
