"""Every streaming detector's update returns, with bounded state, whatever the spacing of the
rows (1 s to days apart) and the pattern of hits: an hourly device, one back from an outage, or a
replay of sparse data must never hang analytics."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.baseline import Baseline, BaselineParams
from analytics.multivariate import Episodes

GAPS = st.lists(
    st.one_of(st.floats(1, 60), st.floats(60, 7200), st.floats(7200, 5 * 86400)),
    min_size=1,
    max_size=120,
)


def test_the_row_that_completes_the_rule_after_a_quiet_gap_returns() -> None:
    # Hourly rows: the row after the last hit both completes the rule and is quiet.
    found = Episodes(1.0).update(np.arange(6) * 3600.0, np.array([0, 2, 2, 2, 0, 0.0]))
    assert [(a.at, a.since) for a in found] == [(3 * 3600.0, 3600.0)]


@settings(max_examples=300, deadline=2000)
@given(
    gaps=GAPS,
    hits=st.lists(st.booleans(), min_size=120, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=6),
    window=st.integers(1, 8),
    data=st.data(),
)
def test_episodes_terminate_with_bounded_state(
    gaps: list[float], hits: list[bool], cuts: list[int], window: int, data: st.DataObject
) -> None:
    min_hits = data.draw(st.integers(1, window))
    ts = np.cumsum(gaps)
    scores = np.where(np.array(hits[: len(ts)]), 2.0, 0.0)
    e = Episodes(1.0, window=window, min_hits=min_hits, quiet_seconds=3600.0)
    bounds = sorted({0, len(ts), *(c for c in cuts if c <= len(ts))})
    opened = 0
    for lo, hi in itertools.pairwise(bounds):
        opened += len(e.update(ts[lo:hi], scores[lo:hi]))
        assert len(e.tail_ts) <= window - 1 and len(e.tail_scores) <= window - 1
    assert opened <= int(np.sum(scores > 1.0))  # each anomaly opens on a hit of its own


@settings(max_examples=100, deadline=5000)
@given(gaps=GAPS, values=st.lists(st.floats(-1e6, 1e6), min_size=120, max_size=120))
def test_the_baseline_terminates_with_bounded_state(gaps: list[float], values: list[float]) -> None:
    b = Baseline(BaselineParams(min_visits=2, min_global_visits=2))
    ts = 1.7e9 + np.cumsum(gaps)
    v = np.array(values[: len(ts)])
    sizes = (b.loc.size, b.visits.size)
    for lo in range(0, len(ts), 7):
        b.update(ts[lo : lo + 7], v[lo : lo + 7])
    assert (b.loc.size, b.visits.size) == sizes
    assert sum(len(p) for p in b.pending) <= len(ts)
