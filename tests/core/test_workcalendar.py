"""The working-time calendar: deadlines and elapsed time in calendar minutes, working hours and days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError
from core.workcalendar import WorkCalendar, from_mapping, load

SH = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar()
WEEKDAYS_ONLY = WorkCalendar(use_statutory=False)


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


def needs_statutory(d: date) -> None:
    if not CAL.statutory_covered(d):
        pytest.skip(
            f"chinese-calendar is not installed or has no State Council notice for {d.year}; "
            "install an up-to-date chinese-calendar to run this check"
        )


# --- working days --------------------------------------------------------------------------


def test_weekends_are_off_and_weekdays_work() -> None:
    assert WEEKDAYS_ONLY.is_working_day(date(2026, 3, 13))  # Friday
    assert not WEEKDAYS_ONLY.is_working_day(date(2026, 3, 14))  # Saturday
    assert not WEEKDAYS_ONLY.is_working_day(date(2026, 3, 15))  # Sunday


def test_local_holiday_wins_over_workday_and_statutory() -> None:
    cal = WorkCalendar(
        holidays=frozenset({date(2026, 5, 9)}), workdays=frozenset({date(2026, 5, 9)})
    )
    assert not cal.is_working_day(date(2026, 5, 9))


def test_years_without_a_notice_fall_back_to_monday_to_friday() -> None:
    # chinese-calendar starts at 2004; 2003-10-01 is a Wednesday.
    assert not CAL.statutory_covered(date(2003, 10, 1))
    assert CAL.is_working_day(date(2003, 10, 1))
    assert not CAL.is_working_day(date(2003, 10, 4))
    off = WorkCalendar(holidays=frozenset({date(2003, 10, 1)}))
    assert not off.is_working_day(date(2003, 10, 1))


def test_a_datetime_is_refused_where_a_date_is_expected() -> None:
    with pytest.raises(TypeError, match="pass a date"):
        CAL.is_working_day(at(2026, 3, 13, 10))


# --- add: working hours --------------------------------------------------------------------


def test_friday_1700_plus_two_working_hours_is_monday_1000() -> None:
    assert CAL.add(at(2026, 3, 13, 17), 2, "working_hours") == at(2026, 3, 16, 10)


def test_a_local_holiday_on_monday_moves_the_deadline_to_tuesday() -> None:
    cal = WorkCalendar(holidays=frozenset({date(2026, 3, 16)}))
    assert cal.add(at(2026, 3, 13, 17), 2, "working_hours") == at(2026, 3, 17, 10)


def test_a_limit_used_up_at_the_end_of_a_period_ends_there() -> None:
    assert CAL.add(at(2026, 3, 13, 17), 1, "working_hours") == at(2026, 3, 13, 18)
    assert CAL.add(at(2026, 3, 16, 11), 1, "working_hours") == at(2026, 3, 16, 12)
    assert CAL.add(at(2026, 3, 16, 11), 1.5, "working_hours") == at(2026, 3, 16, 13, 30)


def test_a_start_outside_working_time_counts_from_the_next_period() -> None:
    assert CAL.add(at(2026, 3, 16, 7), 1, "working_hours") == at(2026, 3, 16, 10)
    assert CAL.add(at(2026, 3, 16, 12, 30), 1, "working_hours") == at(2026, 3, 16, 14)
    assert CAL.add(at(2026, 3, 14, 15), 1, "working_hours") == at(2026, 3, 16, 10)  # Saturday


def test_national_day_2026_is_skipped() -> None:
    needs_statutory(date(2026, 10, 1))
    # State Council notice for 2026: Oct 1-7 off; Sep 20 (Sun) and Oct 10 (Sat) are working days.
    for day in range(1, 8):
        assert not CAL.is_working_day(date(2026, 10, day))
    assert CAL.is_working_day(date(2026, 10, 8))
    assert CAL.add(at(2026, 9, 30, 17), 2, "working_hours") == at(2026, 10, 8, 10)


def test_without_the_statutory_calendar_national_day_is_an_ordinary_week() -> None:
    assert WEEKDAYS_ONLY.add(at(2026, 9, 30, 17), 2, "working_hours") == at(2026, 10, 1, 10)


def test_a_local_holiday_is_skipped() -> None:
    cal = WorkCalendar(holidays=frozenset({date(2026, 3, 17)}))
    assert cal.add(at(2026, 3, 16, 17), 2, "working_hours") == at(2026, 3, 18, 10)
    assert cal.add(at(2026, 3, 16, 17), 2, "working_days") == at(2026, 3, 19, 18)


def test_a_local_tiaoxiu_saturday_counts() -> None:
    cal = WorkCalendar(use_statutory=False, workdays=frozenset({date(2026, 3, 14)}))
    assert cal.is_working_day(date(2026, 3, 14))
    assert cal.add(at(2026, 3, 13, 17), 2, "working_hours") == at(2026, 3, 14, 10)


def test_a_statutory_tiaoxiu_saturday_counts() -> None:
    needs_statutory(date(2026, 10, 10))
    assert CAL.is_working_day(date(2026, 10, 10))  # Saturday, a working day in lieu of National Day
    assert CAL.add(at(2026, 10, 9, 17), 2, "working_hours") == at(2026, 10, 10, 10)


def test_long_horizons_skip_whole_days() -> None:
    start = at(2026, 3, 16, 9)  # Monday
    # 40 weeks of 40 working hours, no statutory holidays: exactly 280 days later, at 18:00 Friday.
    deadline = WEEKDAYS_ONLY.add(start, 40 * 40, "working_hours")
    assert deadline == at(2026, 3, 16, 18) + timedelta(weeks=39, days=4)
    assert WEEKDAYS_ONLY.elapsed(start, deadline, "working_hours") == 1600


# --- add: working days and calendar minutes ------------------------------------------------


def test_working_days_run_to_the_end_of_the_nth_following_working_day() -> None:
    assert CAL.add(at(2026, 3, 16, 8), 1, "working_days") == at(2026, 3, 17, 18)
    assert CAL.add(at(2026, 3, 16, 10), 1, "working_days") == at(2026, 3, 17, 18)
    assert CAL.add(at(2026, 3, 16, 20), 1, "working_days") == at(2026, 3, 17, 18)
    assert CAL.add(at(2026, 3, 13, 10), 1, "working_days") == at(2026, 3, 16, 18)  # Friday
    assert CAL.add(at(2026, 3, 14, 10), 1, "working_days") == at(2026, 3, 16, 18)  # Saturday
    assert CAL.add(at(2026, 3, 16, 10), 5, "working_days") == at(2026, 3, 23, 18)


def test_working_days_must_be_whole() -> None:
    with pytest.raises(ValueError, match="whole number"):
        CAL.add(at(2026, 3, 16, 10), 1.5, "working_days")
    assert CAL.add(at(2026, 3, 16, 10), 2.0, "working_days") == at(2026, 3, 18, 18)


def test_calendar_minutes_ignore_nights_and_weekends() -> None:
    assert CAL.add(at(2026, 3, 13, 23), 120, "calendar_minutes") == at(2026, 3, 14, 1)
    assert CAL.elapsed(at(2026, 3, 13, 23), at(2026, 3, 14, 1), "calendar_minutes") == 120


def test_results_are_in_the_calendar_time_zone() -> None:
    start = datetime(2026, 3, 13, 9, tzinfo=UTC)  # 17:00 in Shanghai
    deadline = CAL.add(start, 2, "working_hours")
    assert deadline.tzinfo == SH
    assert deadline == at(2026, 3, 16, 10)
    assert CAL.add(start, 30, "calendar_minutes").tzinfo == SH


def test_zero_is_now() -> None:
    start = at(2026, 3, 14, 15)
    for unit in ("calendar_minutes", "working_hours", "working_days"):
        assert CAL.add(start, 0, unit) == start


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_impossible_limits_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="finite number"):
        CAL.add(at(2026, 3, 16, 10), value, "working_hours")


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 3, 16, 10)
    with pytest.raises(ValueError, match="no time zone"):
        CAL.add(naive, 1, "working_hours")
    with pytest.raises(ValueError, match="no time zone"):
        CAL.add(naive, 1, "calendar_minutes")
    with pytest.raises(ValueError, match="no time zone"):
        CAL.elapsed(naive, at(2026, 3, 16, 12), "working_hours")
    with pytest.raises(ValueError, match="no time zone"):
        CAL.elapsed(at(2026, 3, 16, 12), naive, "working_hours")


def test_unknown_units_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown unit"):
        CAL.add(at(2026, 3, 16, 10), 1, "hours")  # type: ignore[arg-type]


# --- elapsed -------------------------------------------------------------------------------


def test_elapsed_counts_only_working_time() -> None:
    assert CAL.elapsed(at(2026, 3, 13, 17), at(2026, 3, 16, 10), "working_hours") == 2
    assert CAL.elapsed(at(2026, 3, 16, 0), at(2026, 3, 17, 0), "working_hours") == 8
    assert CAL.elapsed(at(2026, 3, 16, 0), at(2026, 3, 18, 0), "working_days") == 2
    assert CAL.elapsed(at(2026, 3, 16, 11), at(2026, 3, 16, 14), "working_hours") == 2
    assert CAL.elapsed(at(2026, 3, 14, 0), at(2026, 3, 16, 0), "working_hours") == 0


def test_elapsed_backwards_is_negative() -> None:
    assert CAL.elapsed(at(2026, 3, 16, 10), at(2026, 3, 13, 17), "working_hours") == -2


# --- properties ----------------------------------------------------------------------------

starts = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from([SH, UTC]),
)
hours = st.floats(min_value=0, max_value=2000, allow_nan=False, allow_infinity=False)
calendars = st.sampled_from(
    [
        CAL,
        WEEKDAYS_ONLY,
        WorkCalendar(periods=((time(8, 30), time(11, 45)), (time(14), time(17, 30)))),
        WorkCalendar(tz=ZoneInfo("Asia/Urumqi"), holidays=frozenset({date(2026, 5, 6)})),
    ]
)


@settings(database=None, deadline=None, max_examples=300)
@given(cal=calendars, start=starts, value=hours)
def test_elapsed_measures_what_add_added(cal: WorkCalendar, start: datetime, value: float) -> None:
    deadline = cal.add(start, value, "working_hours")
    assert deadline >= start
    assert cal.elapsed(start, deadline, "working_hours") == pytest.approx(value, abs=1e-6)


@settings(database=None, deadline=None, max_examples=300)
@given(cal=calendars, start=starts, a=hours, b=hours)
def test_add_is_monotonic(cal: WorkCalendar, start: datetime, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert cal.add(start, lo, "working_hours") <= cal.add(start, hi, "working_hours")
    days_lo, days_hi = int(lo) % 400, int(hi) % 400
    days_lo, days_hi = sorted((days_lo, days_hi))
    assert cal.add(start, days_lo, "working_days") <= cal.add(start, days_hi, "working_days")


@settings(database=None, deadline=None)
@given(start=starts, minutes=st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_calendar_minutes_round_trip(start: datetime, minutes: float) -> None:
    deadline = CAL.add(start, minutes, "calendar_minutes")
    assert CAL.elapsed(start, deadline, "calendar_minutes") == pytest.approx(minutes, abs=1e-6)


# --- configuration -------------------------------------------------------------------------

EXAMPLE = """\
timezone: Asia/Shanghai
periods: [["09:00", "12:00"], ["13:00", "18:00"]]
holidays: [2026-05-06]
workdays: ["2026-03-14"]
use_statutory: true
"""


def test_load_reads_the_county_file(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")
    cal = load(path)
    assert cal == WorkCalendar(
        holidays=frozenset({date(2026, 5, 6)}), workdays=frozenset({date(2026, 3, 14)})
    )
    assert cal.hours_per_day == 8
    assert not cal.is_working_day(date(2026, 5, 6))
    assert cal.is_working_day(date(2026, 3, 14))


def test_every_key_is_optional() -> None:
    assert from_mapping({}) == WorkCalendar()


@pytest.mark.parametrize(
    ("mapping", "where", "advice"),
    [
        ({"timezone": "Asia/Beijing"}, "timezone", "IANA name"),
        ({"periods": [["09:00", 780]]}, "periods[0][1]", "quote times"),
        ({"periods": [["9h", "12:00"]]}, "periods[0][0]", "HH:MM"),
        ({"periods": [["09:00", "25:00"]]}, "periods[0][1]", "00:00 to 23:59"),
        ({"periods": [["12:00", "09:00"]]}, "periods", "must end after it starts"),
        ({"periods": [["09:00", "13:00"], ["12:00", "18:00"]]}, "periods", "without overlap"),
        ({"periods": []}, "periods", "at least one"),
        ({"periods": ["09:00-12:00"]}, "periods[0]", r"\[start, end\] pair"),
        ({"holidays": ["2026/05/06"]}, "holidays[0]", "YYYY-MM-DD"),
        ({"holidays": [datetime(2026, 5, 6, 10)]}, "holidays[0]", "YYYY-MM-DD"),
        ({"holidays": "2026-05-06"}, "holidays", "list of dates"),
        ({"holidays": ["2026-05-06"], "workdays": ["2026-05-06"]}, None, "one list"),
        ({"use_statutory": "yes please"}, "use_statutory", "true or false"),
        ({"timezon": "Asia/Shanghai"}, None, "known keys are"),
    ],
)
def test_configuration_errors_say_what_to_fix(
    mapping: dict[str, object], where: str | None, advice: str
) -> None:
    with pytest.raises(ConfigError, match=advice) as raised:
        from_mapping(mapping, where="county.yaml")
    assert raised.value.where == ("county.yaml" if where is None else f"county.yaml: {where}")


def test_unquoted_yaml_times_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("periods: [['09:00', 13:00]]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="quote times") as raised:
        load(path)
    assert raised.value.where == f"{path}: periods[0][1]"


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "calendar.yaml"
    path.write_text("timezone: Asia/Shanghai\nperiods: [[\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML") as raised:
        load(path)
    assert raised.value.where.startswith(f"{path}:")


def test_a_missing_or_empty_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="check the path"):
        load(tmp_path / "absent.yaml")
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load(empty)


def test_invalid_periods_are_refused_in_code_too() -> None:
    with pytest.raises(ValueError, match="overlaps"):
        WorkCalendar(periods=((time(9), time(13)), (time(12), time(18))))
