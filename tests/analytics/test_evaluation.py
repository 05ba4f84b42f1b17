"""Scoring alarms against labelled faults: hand-worked examples for every metric, the edges the
module docstring defines, and properties that hold for any input."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from datetime import UTC

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.evaluation import (
    Scorecard,
    Window,
    evaluate,
    read_alarms,
    read_labels,
    read_row_times,
)
from analytics.timeparse import zone
from core.errors import ConfigError

DAY = 86_400.0
W = Window


# --- hand-worked -----------------------------------------------------------------------------


def _three_faults(deadline_s: float | None = None) -> Scorecard:
    labels = [W(1000, 2000), W(5000, 5600), W(9000, 9100)]
    alarms = [W(9200, 9300), W(1100, 1300), W(4950, 5000), W(7000, 7000)]  # any order
    return evaluate(alarms, labels, span=W(0, DAY), early_s=60, deadline_s=deadline_s)


def test_events_false_alarms_and_time_weighted_scores_by_hand() -> None:
    card = _three_faults()
    # detection windows [940, 2000], [4940, 5600], [8940, 9100]; alarm starts 1100, 4950, 7000,
    # 9200: the first two are found (delays 100 and -50, early), the third is not.
    assert (card.faults, card.found) == (3, 2)
    assert card.recall == pytest.approx(2 / 3)
    assert card.missed == (W(9000, 9100),)
    assert card.delays_s == (100.0, -50.0)
    assert card.median_delay_s == pytest.approx(25.0)
    assert card.p90_delay_s == pytest.approx(-50 + 0.9 * 150)
    # 7000 and 9200 touch no widened window [s - 60, e]
    assert (card.alarms, card.false_alarms) == (4, 2)
    normal_s = DAY - 1000 - 600 - 100
    assert card.normal_days == pytest.approx(normal_s / DAY)
    assert card.false_alarms_per_day == pytest.approx(2 / (normal_s / DAY))
    # time-weighted: alarms 200 + 50 + 0 + 100 s, labels 1700 s, both 200 s (4950-5000 only
    # touches 5000)
    assert card.pointwise == "time"
    assert (card.tp, card.fp, card.fn) == pytest.approx((200, 150, 1500))
    assert card.tn == pytest.approx(DAY - 1850)
    assert card.point_precision == pytest.approx(200 / 350)
    assert card.point_recall == pytest.approx(200 / 1700)
    assert card.point_f1 == pytest.approx(400 / 2050)
    assert card.point_alarms == 1
    # BATADAL: ratios 100/1000, 0 (early counts as 0), 1 (missed)
    assert card.s_ttd == pytest.approx(1 - 1.1 / 3)
    tnr = (DAY - 1850) / (DAY - 1850 + 150)
    assert card.s_cm == pytest.approx((200 / 1700 + tnr) / 2)
    assert card.s == pytest.approx(0.5 * (1 - 1.1 / 3) + 0.5 * (200 / 1700 + tnr) / 2)


def test_a_deadline_finds_a_late_alarm_and_widens_the_fault_for_false_alarms() -> None:
    card = _three_faults(deadline_s=300)
    # windows [940, 1300], [4940, 5300], [8940, 9300]: 9200 finds the third fault 200 s in,
    # after its 100 s end, so it counts 1 in S_TTD; widened [8940, 9400] holds it.
    assert card.found == 3 and card.missed == ()
    assert card.delays_s == (100.0, -50.0, 200.0)
    assert card.false_alarms == 1
    assert card.s_ttd == pytest.approx(1 - (0.1 + 0 + 1) / 3)
    assert card.deadline_s == 300.0


def test_a_deadline_shorter_than_the_fault_misses_a_later_alarm() -> None:
    card = evaluate([W(1500, 1600)], [W(1000, 2000)], span=W(0, DAY), deadline_s=300)
    assert card.found == 0 and card.false_alarms == 0  # late, not false: it overlaps the fault
    assert card.s_ttd == 0.0


def test_per_row_scores_by_hand() -> None:
    rows = np.arange(0.0, 10_001.0, 100.0)  # 101 rows
    labels = [W(1000, 2000)]  # rows 1000..2000: 11
    # rows 1500..2500 (11); a point alarm between rows flags the row before it: 3050 -> 3000
    # (normal), 1234 -> 1200 (in the fault)
    alarms = [W(1500, 2500), W(3050, 3050), W(1234, 1234)]
    card = evaluate(alarms, labels, span=W(0, 10_000), rows=rows)
    assert card.pointwise == "rows"
    assert (card.tp, card.fp, card.fn, card.tn) == (7, 6, 4, 84)
    assert card.point_precision == pytest.approx(7 / 13)
    assert card.point_recall == pytest.approx(7 / 11)
    assert card.point_f1 == pytest.approx(14 / 24)
    assert card.s_cm == pytest.approx((7 / 11 + 84 / 90) / 2)
    # the event scores do not depend on rows: 1234 finds the fault 234 s in
    assert card.delays_s == (234.0,)


def test_rows_outside_the_span_and_unsorted_rows() -> None:
    rows = np.array([300.0, -50.0, 100.0, 200.0, 5000.0, 0.0])
    card = evaluate([W(100, 100)], [W(100, 200)], span=W(0, 300), rows=rows)
    # rows 0, 100, 200, 300 count; 100 and 200 are faulty, 100 alarmed
    assert (card.tp, card.fp, card.fn, card.tn) == (1, 0, 1, 2)


def test_no_point_adjust_a_fault_caught_late_scores_only_its_alarmed_rows() -> None:
    rows = np.arange(0.0, 101.0)
    card = evaluate([W(99, 100)], [W(0, 100)], span=W(0, 100), rows=rows)
    assert card.found == 1
    assert card.point_recall == pytest.approx(2 / 101)


def test_an_alarm_overlapping_two_labels_finds_each_whose_window_holds_its_start() -> None:
    labels = [W(100, 200), W(150, 300)]
    card = evaluate([W(160, 400)], labels, span=W(0, 1000))
    assert card.found == 2 and card.delays_s == (60.0, 10.0)
    assert card.false_alarms == 0
    # time-weighted: the fault union [100, 300] and alarm [160, 400] share 140 s
    assert (card.tp, card.fp, card.fn) == pytest.approx((140, 100, 60))


def test_an_alarm_already_on_before_a_fault_neither_finds_it_nor_is_false() -> None:
    card = evaluate([W(50, 250)], [W(100, 200)], span=W(0, 1000), early_s=20)
    assert card.found == 0 and card.false_alarms == 0
    assert card.missed == (W(100, 200),)


def test_each_fault_takes_its_earliest_alarm() -> None:
    card = evaluate([W(400, 400), W(150, 150), W(120, 130)], [W(100, 500)], span=W(0, 1000))
    assert card.delays_s == (20.0,)
    assert card.s_ttd == pytest.approx(1 - 20 / 400)


def test_the_span_clips_labels_and_drops_what_lies_outside() -> None:
    labels = [W(500, 1500), W(6000, 7000)]
    alarms = [W(1200, 1300), W(8000, 8000), W(900, 1100)]
    card = evaluate(alarms, labels, span=W(1000, 5000))
    # [500, 1500] is scored as [1000, 1500]: 1200 finds it 200 s in; [900, 1100] started before
    # the fault and is neither found nor false
    assert card.faults == 1 and card.labels_outside_span == 1
    assert card.alarms == 2 and card.alarms_outside_span == 1
    assert card.delays_s == (200.0,)
    assert card.normal_days == pytest.approx((4000 - 500) / DAY)
    assert card.missed == ()


def test_a_label_outside_the_span_still_explains_an_alarm() -> None:
    card = evaluate([W(950, 960)], [W(1100, 1200)], span=W(0, 1000), early_s=200)
    assert card.faults == 0 and card.labels_outside_span == 1
    assert card.false_alarms == 0


def test_no_labels_and_no_alarms_give_none_not_nan() -> None:
    card = evaluate([], [], span=W(0, 2 * DAY))
    assert (card.faults, card.found, card.alarms, card.false_alarms) == (0, 0, 0, 0)
    assert card.normal_days == 2.0 and card.false_alarms_per_day == 0.0
    assert card.recall is None and card.median_delay_s is None and card.p90_delay_s is None
    assert card.point_precision is None and card.point_recall is None and card.point_f1 is None
    assert card.s_ttd is None and card.s_cm is None and card.s is None


def test_no_alarms_find_nothing() -> None:
    card = evaluate([], [W(100, 200)], span=W(0, 1000))
    assert card.recall == 0.0 and card.point_f1 == 0.0 and card.point_precision is None
    assert card.s_ttd == 0.0 and card.s_cm == 0.5 and card.s == 0.25


def test_labels_covering_the_whole_span_leave_no_normal_time() -> None:
    card = evaluate([W(10, 20)], [W(0, 100)], span=W(0, 100))
    assert card.normal_days == 0.0 and card.false_alarms_per_day is None
    assert card.s_cm is None  # no negatives, so no TNR


def test_zero_length_windows() -> None:
    at_once = evaluate([W(500, 500)], [W(500, 500)], span=W(0, 1000))
    assert at_once.found == 1 and at_once.delays_s == (0.0,) and at_once.s_ttd == 1.0
    missed = evaluate([W(510, 510)], [W(500, 500)], span=W(0, 1000))
    assert missed.found == 0 and missed.false_alarms == 1
    late = evaluate([W(510, 510)], [W(500, 500)], span=W(0, 1000), deadline_s=60)
    assert late.found == 1 and late.s_ttd == 0.0  # after its moment: counts 1
    # a zero-length span: nothing normal, nothing weighted
    empty = evaluate([W(5, 5)], [W(5, 5)], span=W(5, 5))
    assert empty.found == 1 and empty.false_alarms_per_day is None and empty.s_cm is None


def test_overlapping_labels_each_count_and_normal_time_uses_their_union() -> None:
    card = evaluate([], [W(0, 600), W(300, 900), W(300, 900)], span=W(0, DAY))
    assert card.faults == 3
    assert card.normal_days == pytest.approx((DAY - 900) / DAY)


@pytest.mark.parametrize(
    ("build", "what"),
    [
        (lambda: W(math.nan, 1.0), "finite"),
        (lambda: W(0.0, math.inf), "finite"),
        (lambda: W(2.0, 1.0), "before it starts"),
        (lambda: evaluate([], [], span=W(0, 1), early_s=-1), "early_s"),
        (lambda: evaluate([], [], span=W(0, 1), deadline_s=math.nan), "deadline_s"),
        (lambda: evaluate([], [], span=W(0, 1), rows=np.array([0.5, math.nan])), "finite"),
        (lambda: evaluate([], [], span=W(0, 1), rows=np.zeros((2, 2))), "one-dimensional"),
    ],
)
def test_bad_input_raises_a_config_error_saying_what(
    build: Callable[[], object], what: str
) -> None:
    with pytest.raises(ConfigError, match=what):
        build()


def test_the_scorecard_is_json_able_with_times_rendered_as_asked() -> None:
    d = _three_faults().to_dict(lambda t: f"t{t:g}")
    assert d["span"] == {"start": "t0", "end": "t86400", "name": ""}
    assert d["missed"] == [{"start": "t9000", "end": "t9100", "name": ""}]
    assert d["delays_s"] == [100.0, -50.0] and d["recall"] == pytest.approx(2 / 3)


# --- properties ------------------------------------------------------------------------------

SPAN = W(0, 10_000)


@st.composite
def windows(draw: st.DrawFn, *, min_length: int = 0, max_size: int = 8) -> list[Window]:
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        start = draw(st.integers(-500, 10_500))
        out.append(W(start, start + draw(st.integers(min_length, 2000))))
    return out


@settings(max_examples=200, deadline=None)
@given(
    windows(),
    windows(),
    st.integers(0, 600),
    st.one_of(st.none(), st.integers(0, 3000)),
    st.booleans(),
)
def test_every_score_is_a_share_and_counts_add_up(
    alarms: list[Window], labels: list[Window], early: int, deadline: int | None, per_row: bool
) -> None:
    rows = np.arange(0.0, 10_001.0, 50.0) if per_row else None
    card = evaluate(alarms, labels, span=SPAN, rows=rows, early_s=early, deadline_s=deadline)
    for share in (card.recall, card.point_precision, card.point_recall, card.point_f1):
        assert share is None or 0.0 <= share <= 1.0
    for score in (card.s_ttd, card.s_cm, card.s):
        assert score is None or 0.0 <= score <= 1.0 + 1e-12
    assert card.found + len(card.missed) == card.faults
    assert card.faults + card.labels_outside_span == len(labels)
    assert card.alarms + card.alarms_outside_span == len(alarms)
    assert 0 <= card.false_alarms <= card.alarms
    assert all(d >= -early for d in card.delays_s)
    total = 201 if per_row else SPAN.end - SPAN.start
    assert card.tp + card.fp + card.fn + card.tn == pytest.approx(total)
    assert min(card.tp, card.fp, card.fn, card.tn) >= 0


@settings(max_examples=100, deadline=None)
@given(windows(), windows(), st.randoms(use_true_random=False))
def test_the_order_of_alarms_and_labels_does_not_matter(
    alarms: list[Window], labels: list[Window], rnd: random.Random
) -> None:
    shuffled_a, shuffled_l = list(alarms), list(labels)
    rnd.shuffle(shuffled_a)
    rnd.shuffle(shuffled_l)
    assert evaluate(alarms, labels, span=SPAN, early_s=30) == evaluate(
        shuffled_a, shuffled_l, span=SPAN, early_s=30
    )


@st.composite
def faults_inside(draw: st.DrawFn) -> list[Window]:
    """Labels of at least 1 s with integer ends strictly inside the span (some normal time)."""
    out = []
    for _ in range(draw(st.integers(1, 6))):
        start = draw(st.integers(1, 8000))
        out.append(W(start, start + draw(st.integers(1, 1500))))
    return out


@settings(max_examples=150, deadline=None)
@given(faults_inside(), st.booleans())
def test_alarms_that_are_the_labels_score_perfectly(labels: list[Window], per_row: bool) -> None:
    rows = np.arange(0.0, 10_001.0) if per_row else None
    card = evaluate(labels, labels, span=SPAN, rows=rows)
    assert card.recall == 1.0 and card.false_alarms == 0 and card.false_alarms_per_day == 0.0
    assert card.point_precision == 1.0 and card.point_recall == 1.0 and card.point_f1 == 1.0
    assert card.median_delay_s == 0.0
    assert card.s_ttd == 1.0 and card.s_cm == 1.0 and card.s == 1.0


@settings(max_examples=150, deadline=None)
@given(faults_inside(), st.integers(1, 3000))
def test_shifting_alarms_later_lowers_s_ttd(labels: list[Window], shift: int) -> None:
    late = [W(w.start + shift, w.end + shift) for w in labels]
    card = evaluate(late, labels, span=W(0, 20_000))
    assert card.s_ttd is not None and card.s_ttd < 1.0
    assert card.s is not None and card.s < 1.0


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 8000), st.integers(1, 2000), st.integers(0, 2500), st.integers(0, 2500))
def test_for_one_fault_a_later_alarm_never_scores_better(
    start: int, length: int, shift: int, more: int
) -> None:
    label = W(start, start + length)

    def s_ttd(delay: int) -> float:
        card = evaluate([W(start + delay, start + delay)], [label], span=W(0, 20_000))
        assert card.s_ttd is not None
        return card.s_ttd

    assert s_ttd(shift + more) <= s_ttd(shift)


# --- reading ---------------------------------------------------------------------------------

SHANGHAI = zone("Asia/Shanghai")
T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z


def test_reads_an_episode_file_as_replay_writes_it() -> None:
    text = (
        "start,end,event,columns,peak,direction,contributions,open_at_end\n"
        "2026-03-01T08:00:00+08:00,2026-03-01T08:10:00+08:00,multivariate_anomaly,a|b,3.2,up,"
        "a:+3.2|b:-1.1,false\n"
        "\n"
        "2026-03-01T09:00:00+08:00,,level_shift,a,2,up,a:+2.0,true\n"
    )
    got = read_alarms(io.StringIO(text), "episodes.csv", fmt=None, tz=SHANGHAI)
    assert got == [W(T0, T0 + 600), W(T0 + 3600, T0 + 3600)]


def test_reads_a_firms_export_with_only_a_time_column() -> None:
    text = "\ufeffTime;Device;Message\n2026/03/01 08:00;pump 2;pressure low\n"
    got = read_alarms(io.StringIO(text), "export.csv", fmt="%Y/%m/%d %H:%M", tz=SHANGHAI, sep=";")
    assert got == [W(T0, T0)]
    utc = read_alarms(io.StringIO(text), "export.csv", fmt="%Y/%m/%d %H:%M", tz=UTC, sep=";")
    assert utc == [W(T0 + 8 * 3600, T0 + 8 * 3600)]


def test_reads_labels_with_their_names() -> None:
    text = "Start,End,Description\n1772323200,1772326800,seal leak\n"
    (got,) = read_labels(io.StringIO(text), "labels.csv", fmt="epoch", tz=SHANGHAI)
    assert got == W(T0, T0 + 3600) and got.name == "seal leak"


def test_reads_the_row_times_of_a_data_file() -> None:
    text = "id,ts,v\n1,2026-03-01 08:00,1\n2,2026-03-01 08:01,2\n"
    got = read_row_times(io.StringIO(text), "d.csv", time_column="ts", fmt=None, tz=SHANGHAI)
    assert got.tolist() == [T0, T0 + 60]
    first = read_row_times(io.StringIO("t\n0\n"), "d.csv", time_column=None, fmt="epoch", tz=UTC)
    assert first.tolist() == [0.0]


def _alarms(text: str) -> object:
    return read_alarms(io.StringIO(text), "d.csv", fmt=None, tz=UTC)


def _labels(text: str) -> object:
    return read_labels(io.StringIO(text), "d.csv", fmt=None, tz=UTC)


def _rows(text: str, column: str | None = None) -> object:
    return read_row_times(io.StringIO(text), "d.csv", time_column=column, fmt="epoch", tz=UTC)


@pytest.mark.parametrize(
    ("read", "text", "message"),
    [
        (_alarms, "", "d.csv: the file is empty; a header row is expected"),
        (_alarms, "when,what\n", "d.csv: no column 'start' or 'time' in the header"),
        (_labels, "start\n", "d.csv: no column 'end' in the header"),
        (_alarms, "start,end\n2026-03-01,2026-02-01\n", "d.csv:2: ends before it starts"),
        (_labels, "start,end\n2026-03-01,\n", "d.csv:2: the label has no end"),
        (_labels, "x,start,end\n1\n", "d.csv:2: has 1 field(s); the header has 3"),
        (_alarms, "start\nyesterday\n", "d.csv:2: cannot read the time 'yesterday' as ISO 8601"),
        (_rows, "t\n0\nnan\n", "d.csv:3: the time 'nan' is not a finite epoch time"),
        (_rows, "t\n1e300\n", "d.csv:2: the time '1e300' is not a finite epoch time"),
        (lambda t: _rows(t, "time"), "t\n0\n", "d.csv: no column 'time' in the header"),
        (
            lambda n: _alarms("start\n" + "9" * int(n) + "\n"),
            "1000000",
            "d.csv:2: is not valid CSV",
        ),
    ],
)
def test_bad_files_name_the_file_line_and_what_to_fix(
    read: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as e:
        read(text)
    assert str(e.value).startswith(message)
