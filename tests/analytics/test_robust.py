"""The robust per-column detector, the relation detector on its deviations, threshold calibration
and the labelled-recording generator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from analytics.episodes import EpisodeTracker
from analytics.relations import RelationDetector
from analytics.robust import RobustDetector, RobustParams, calibrate_threshold, is_state
from simulators.recordings import loop_run, scada_series

Array = np.ndarray[Any, np.dtype[np.float64]]


def warming(n: int, seed: int = 0) -> tuple[Array, Array]:
    """1 s rows of a sensor warming by 8 units over ~25 min, noise 0.05."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    return t, (25 + 8 * (1 - np.exp(-t / 1500)) + rng.normal(0, 0.05, n))[:, None]


def test_slow_warming_after_a_short_calibration_is_not_a_fault() -> None:
    t, x = warming(3600)
    det = RobustDetector(["temp"])
    det.fit(t[:420], x[:420])
    det.arm(8.0)
    scores, z = det.score(t[420:], x[420:])
    assert np.nanmax(scores) < 8.0  # the first minutes after calibration are the steepest
    assert np.nanmax(np.abs(z)) < 8.0


def test_a_step_fault_is_not_absorbed_while_it_lasts_and_ends_with_it() -> None:
    t, x = warming(2400, seed=1)
    x[1200:1320, 0] += 0.5  # 10 sigma for two minutes
    det = RobustDetector(["temp"])
    det.fit(t[:420], x[:420])
    det.arm(8.0)
    scores, _ = det.score(t[420:], x[420:])
    inside = scores[1200 - 420 + 5 : 1320 - 420]
    assert np.all(inside > 8.0)  # held for the whole fault
    assert np.nanmax(scores[1320 - 420 + 20 :]) < 8.0  # and over soon after it


def test_scores_do_not_depend_on_how_rows_are_split_into_calls() -> None:
    t, x = warming(1500, seed=2)
    a, b = RobustDetector(["temp"]), RobustDetector(["temp"])
    a.fit(t[:400], x[:400])
    b.fit(t[:400], x[:400])
    whole, _ = a.score(t[400:], x[400:])
    parts = [b.score(t[i : i + 97], x[i : i + 97])[0] for i in range(400, 1500, 97)]
    np.testing.assert_allclose(np.concatenate(parts), whole)


def test_irregular_rows_gaps_nan_and_hostile_values() -> None:
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.uniform(0.5, 1.5, 2000))
    t[1000:] += 600.0  # a ten-minute gap
    x = (5 + rng.normal(0, 0.1, 2000))[:, None]
    det = RobustDetector(["p"])
    det.fit(t[:500], x[:500])
    det.arm(8.0)
    y = x[500:].copy()
    y[10, 0], y[11, 0], y[12, 0] = np.nan, np.inf, 1e308
    tt = t[500:].copy()
    tt[20] = tt[19] - 5  # out of order
    scores, _ = det.score(tt, y)
    assert np.isnan(scores[10]) and np.isnan(scores[11]) and np.isnan(scores[20])
    assert scores[12] > 100.0
    assert np.nanmax(scores[200:]) < 8.0  # the gap itself is no fault


def test_daily_profile_only_with_several_days_and_states_left_out() -> None:
    rec = scada_series(0, days=10, calibrate_days=8, faults=0)
    names = list(rec.columns)
    x = np.column_stack([rec.columns[c] for c in names])
    det = RobustDetector(names)
    det.fit(rec.ts, x)
    assert det.seasonal
    assert [n for n, a in zip(names, det.active, strict=True) if not a] == [
        "pump1_on",
        "pump2_on",
        "flow1_ls",
        "flow2_ls",
    ]
    short = RobustDetector(names)
    short.fit(rec.ts[:48], x[:48])
    assert not short.seasonal
    assert is_state(np.array([0.0, 1.0, 1.0, 0.0])) and not is_state(np.linspace(0, 1, 50))


def test_relation_contributions_name_the_sensor_and_its_direction() -> None:
    rec = loop_run(0, duration_s=1200, calibrate_s=600, faults=0)
    names = list(rec.columns)
    x = np.column_stack([rec.columns[c] for c in names])
    det = RobustDetector(names)
    det.fit(rec.ts[:500], x[:500])
    rel = RelationDetector(det)
    rel.fit(rec.ts[:500], x[:500])
    y = x[500:].copy()
    y[300:, names.index("current_a")] += 0.3  # current up at unchanged flow and pressure
    _, z = det.score(rec.ts[500:], y)
    scores, contrib = rel.score(z, y)
    assert rel.model is not None
    assert np.nanmedian(scores[:250]) < rel.model.threshold < np.nanmin(scores[305:340])
    top = np.nanargmax(np.abs(contrib[320]))
    assert names[top] == "current_a" and contrib[320, top] > 0


def test_threshold_is_the_smallest_meeting_the_target_with_margin() -> None:
    t = np.arange(0, 10 * 86400, 60.0)
    s = np.full(len(t), 1.0)
    peaks = [5.0, 9.0, 12.0, 20.0]
    for i, p in enumerate(peaks):
        s[1000 + 3000 * i] = p
    one = calibrate_threshold(t, s, rate_per_day=0.25, hold_s=600, margin=1.0, floor=2.0)
    # 10 days x 0.25 = 2.5 episodes allowed: the two highest peaks may open, so just above 9
    assert 9.0 <= one.threshold < 9.1 and one.episodes == 2
    low = calibrate_threshold(t, s, rate_per_day=10.0, hold_s=600, margin=1.2, floor=3.0)
    assert low.threshold == pytest.approx(3.6)  # the floor, with the margin
    tr = EpisodeTracker(one.threshold, hold_s=600)
    assert sum(e.end is None for e in tr.update(t, s)) <= 2.5
    with pytest.raises(ValueError, match="positive"):
        calibrate_threshold(t, s, rate_per_day=0.0)


def test_bad_calibration_is_refused() -> None:
    det = RobustDetector(["a", "b"])
    t = np.arange(50.0)
    x = np.column_stack([np.ones(50), np.full(50, np.nan)])
    with pytest.raises(ValueError, match=r"columns \['b'\] hold fewer than 10"):
        det.fit(t, x)
    with pytest.raises(ValueError, match="too few"):
        det.fit(t[:5], x[:5])
    with pytest.raises(ValueError, match="fit the detector"):
        det.score(t, x)
    with pytest.raises(ValueError, match="tau_s"):
        RobustParams(tau_s=-1.0)


def test_recordings_are_seeded_and_labelled_after_calibration() -> None:
    a, b = loop_run(4), loop_run(4)
    np.testing.assert_array_equal(a.ts, b.ts)
    assert a.labels == b.labels and len(a.labels) == 4
    assert all(a.calibrate_until < lab.start < lab.end for lab in a.labels)
    assert np.all(np.diff(a.ts) > 0) and np.diff(a.ts).max() >= 10  # jitter, drops, gaps
    s = scada_series(1)
    assert {lab.kind for lab in s.labels} == {"sensor_offset", "pump_failure", "level_manipulation"}
    assert all(s.calibrate_until < lab.start <= lab.end for lab in s.labels)
