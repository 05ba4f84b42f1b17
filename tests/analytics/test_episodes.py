"""Alarm episodes: opening, confirming, holding, gaps, finish, state, and the rules as properties."""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.episodes import Episode, EpisodeTracker, contributions


def arr(*x: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.asarray(x, dtype=np.float64)


def test_one_row_opens_and_hold_closes_at_last_row_above() -> None:
    tr = EpisodeTracker(2.0, hold_s=10.0)
    out = tr.update(arr(0, 1, 2, 3, 4, 12, 13), arr(0, 3, 1, 5, 0, 0, 0))
    assert [e.end for e in out] == [None, 3.0]
    assert out[0].start == out[1].start == 1.0
    assert out[1].peak == pytest.approx(2.5) and out[1].peak_at == 3.0
    assert tr.open is None


def test_no_quiet_period_a_second_fault_opens_right_after_the_first_closes() -> None:
    tr = EpisodeTracker(1.0, hold_s=5.0)
    ts = np.arange(0, 40, 1.0)
    s = np.zeros_like(ts)
    s[2:4] = 3.0
    s[15:17] = 4.0
    out = tr.update(ts, s)
    assert [(e.start, e.end) for e in out] == [(2.0, None), (2.0, 3.0), (15.0, None), (15.0, 16.0)]


def test_confirm_needs_scores_above_for_confirm_seconds() -> None:
    tr = EpisodeTracker(1.0, confirm_s=3.0, hold_s=5.0)
    assert tr.update(arr(0, 1, 2, 3, 4), arr(2, 2, 0, 2, 2)) == []  # run broken at 2
    out = tr.update(arr(5, 6), arr(2, 2))
    assert len(out) == 1 and out[0].start == 3.0 and out[0].end is None


def test_release_level_keeps_an_episode_open_while_scores_hover() -> None:
    tr = EpisodeTracker(2.0, hold_s=3.0, release=1.0)
    out = tr.update(np.arange(10.0), arr(3, 1.5, 1.5, 1.5, 1.5, 0, 0, 0, 0, 0))
    assert out[-1].end == 4.0


def test_nan_scores_are_no_evidence_but_time_passes() -> None:
    tr = EpisodeTracker(1.0, hold_s=5.0)
    out = tr.update(arr(0, 1, 2, 3, 10), arr(2, np.nan, np.nan, np.nan, np.nan))
    assert [e.end for e in out] == [None, 0.0]


def test_data_gap_longer_than_max_gap_closes_at_the_last_row() -> None:
    tr = EpisodeTracker(1.0, hold_s=3600.0, max_gap_s=120.0)
    out = tr.update(arr(0, 60, 1000, 1060), arr(2, 2, 2, 2))
    assert [(e.start, e.end) for e in out] == [(0.0, None), (0.0, 60.0), (1000.0, None)]


def test_hourly_rows_with_the_same_settings_in_seconds() -> None:
    tr = EpisodeTracker(1.0, confirm_s=3600.0, hold_s=3 * 3600.0)
    ts = (np.arange(48) * 3600.0).astype(np.float64)
    s = np.zeros(48)
    s[10:14] = 5.0
    out = tr.update(ts, s)
    assert [(e.start, e.end) for e in out] == [(36000.0, None), (36000.0, 13 * 3600.0)]


def test_out_of_order_and_nonfinite_times_are_dropped() -> None:
    tr = EpisodeTracker(1.0, hold_s=5.0)
    out = tr.update(arr(0, 5, 3, np.nan, 6), arr(0, 0, 9, 9, 0))
    assert out == []


def test_finish_closes_open_episode_marked_open_at_end() -> None:
    tr = EpisodeTracker(1.0, hold_s=100.0)
    tr.update(arr(0, 1, 2), arr(0, 2, 2))
    ep = tr.finish(50.0)
    assert ep == Episode(1.0, 2.0, 2.0, 1.0, (), True)
    assert tr.open is None and tr.finish(60.0) is None


def test_contributions_at_peak_signed_largest_first_at_most_five() -> None:
    cols = [f"c{i}" for i in range(7)]
    tr = EpisodeTracker(1.0, hold_s=10.0, columns=cols)
    z = np.zeros((3, 7))
    z[1] = [0.1, -6, 2, np.nan, 3, -1, 0.5]
    z[2] = [9, 9, 9, 9, 9, 9, 9]
    tr.update(arr(0, 1, 2), arr(0, 5, 2), z)
    ep = tr.finish(3.0)
    assert ep is not None
    assert ep.contributions == (("c1", -6.0), ("c4", 3.0), ("c2", 2.0), ("c5", -1.0), ("c6", 0.5))
    assert contributions(cols, None) == ()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"threshold": math.nan},
        {"threshold": 1.0, "hold_s": 0.0},
        {"threshold": 1.0, "confirm_s": -1.0},
        {"threshold": 1.0, "release": 2.0},
        {"threshold": 1.0, "max_gap_s": 0.0},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        EpisodeTracker(**kwargs)


def test_mismatched_inputs_are_refused() -> None:
    tr = EpisodeTracker(1.0, columns=["a", "b"])
    with pytest.raises(ValueError, match="differ in length"):
        tr.update(arr(0, 1), arr(0))
    with pytest.raises(ValueError, match="one column per name"):
        tr.update(arr(0, 1), arr(0, 1), np.zeros((2, 3)))


def test_infinite_scores_stay_json_able() -> None:
    tr = EpisodeTracker(1.0)
    tr.update(arr(0, 1), arr(np.inf, -np.inf))
    json.dumps(tr.to_state(), allow_nan=False)
    assert tr.open is not None and math.isfinite(tr.open.peak)


# ---- properties ---------------------------------------------------------------------------------


def reference(
    tr: EpisodeTracker, ts: list[float], scores: list[float]
) -> list[tuple[float, float | None, float, float]]:
    """The rules row by row, the slow obvious way (no contributions)."""
    out: list[tuple[float, float | None, float, float]] = []
    last_ts, last_above = -math.inf, -math.inf
    cand: list[float] | None = None
    ep: list[float] | None = None  # start, peak, peak_at
    for t, raw in zip(ts, scores, strict=True):
        if not math.isfinite(t) or t < last_ts:
            continue
        s = min(max(raw, -1e300), 1e300) if not math.isnan(raw) else raw
        gap = tr.max_gap_s is not None and t - last_ts > tr.max_gap_s
        if ep is not None:
            if t - last_above >= tr.hold_s or gap:
                out.append((ep[0], last_above, ep[1] / tr.threshold, ep[2]))
                ep = None
            else:
                if s > tr.release:
                    last_above = t
                if s > ep[1]:
                    ep[1], ep[2] = s, t
                last_ts = t
                continue
        if gap:
            cand = None
        last_ts = t
        if math.isnan(s):
            continue
        if s <= tr.threshold:
            cand = None
            continue
        if cand is None:
            cand = [t, s, t]
        elif s > cand[1]:
            cand[1], cand[2] = s, t
        if t - cand[0] >= tr.confirm_s:
            ep, cand, last_above = cand, None, t
            out.append((ep[0], None, ep[1] / tr.threshold, ep[2]))
    return out


rows = st.lists(
    st.tuples(
        st.floats(0.0, 30.0),  # time step
        st.one_of(st.floats(-2.0, 6.0), st.just(math.nan), st.just(math.inf)),
    ),
    max_size=80,
)
trackers = st.builds(
    lambda thr, confirm, hold, rel, gap: EpisodeTracker(
        thr, confirm_s=confirm, hold_s=hold, release=thr * rel, max_gap_s=gap
    ),
    st.floats(0.5, 3.0),
    st.sampled_from([0.0, 5.0, 20.0]),
    st.sampled_from([1.0, 10.0, 60.0]),
    st.sampled_from([1.0, 0.5]),
    st.sampled_from([None, 25.0]),
)


def times(steps: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    ts = list(np.cumsum([d for d, _ in steps])) if steps else []
    return [float(t) for t in ts], [s for _, s in steps]


def key(e: Episode) -> tuple[float, float | None, float, float]:
    return (e.start, e.end, e.peak, e.peak_at)


@settings(max_examples=150, deadline=None)
@given(trackers, rows, st.integers(0, 80))
def test_episodes_always_close_never_overlap_and_match_the_reference(
    tr: EpisodeTracker, steps: list[tuple[float, float]], cut: int
) -> None:
    ts, sc = times(steps)
    state = tr.to_state()
    whole = tr.update(np.asarray(ts), np.asarray(sc))
    assert [key(e) for e in whole] == reference(tr, ts, sc)

    # Split anywhere, with the state saved and restored in between: identical output.
    b = EpisodeTracker.from_state(state)
    first = b.update(np.asarray(ts[:cut]), np.asarray(sc[:cut]))
    b = EpisodeTracker.from_state(json.loads(json.dumps(b.to_state(), allow_nan=False)))
    assert first + b.update(np.asarray(ts[cut:]), np.asarray(sc[cut:])) == whole
    assert b.to_state() == tr.to_state()

    closed = [e for e in whole if e.end is not None]
    for e in closed:
        assert e.end is not None and e.start <= e.peak_at <= e.end
        assert e.peak >= 1.0
    for a, c in itertools.pairwise(closed):
        assert a.end is not None and a.end < c.start

    # hold_s of normal rows closes whatever is open
    end = ts[-1] if ts else 0.0
    calm = (end + np.arange(1, 4) * tr.hold_s).astype(np.float64)
    tail = tr.update(calm, np.zeros(3))
    assert tr.open is None and all(e.end is not None for e in tail)
    # and finish() leaves nothing open
    tr2 = EpisodeTracker.from_state(state)
    tr2.update(np.asarray(ts), np.asarray(sc))
    last = tr2.finish(end)
    assert tr2.open is None
    if last is not None:
        assert last.open_at_end and last.end is not None and last.start <= last.peak_at <= last.end
