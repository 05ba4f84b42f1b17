"""Yearly holiday schedules as data: the format, its errors, deadlines from a loaded schedule, the
missing-schedule warning and the Monday-to-Friday fallback."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.holiday_schedule import (
    ScheduleError,
    StatutorySchedules,
    YearSchedule,
    missing_schedule_warnings,
    parse_schedule,
    read_schedule,
)
from core.workcalendar import WorkCalendar

SH = ZoneInfo("Asia/Shanghai")
EXAMPLE_2027 = Path(__file__).parent / "data" / "holidays-2027-example.yaml"


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=SH)


@pytest.fixture(scope="module")
def schedule_2027() -> YearSchedule:
    return read_schedule(EXAMPLE_2027)[1]


@pytest.fixture(scope="module")
def cal_2027(schedule_2027: YearSchedule) -> WorkCalendar:
    return WorkCalendar().with_schedules(StatutorySchedules((schedule_2027,)))


# --- the format ------------------------------------------------------------------------------


def test_a_schedule_lists_days_off_and_working_weekend_days(schedule_2027: YearSchedule) -> None:
    assert schedule_2027.year == 2027
    assert schedule_2027.notice.title.startswith("EXAMPLE")
    assert len(schedule_2027.holidays) == 7
    assert date(2027, 2, 10) in schedule_2027.days_off
    assert date(2027, 6, 9) in schedule_2027.days_off, "a holiday without 'to' is one day"
    assert len(schedule_2027.days_off) == 3 + 9 + 3 + 5 + 1 + 1 + 7
    assert schedule_2027.working_weekend_days == {
        date(2027, 2, 20),
        date(2027, 4, 25),
        date(2027, 5, 8),
        date(2027, 9, 26),
        date(2027, 10, 9),
    }


def test_the_digest_follows_content_not_layout(schedule_2027: YearSchedule) -> None:
    text = EXAMPLE_2027.read_text(encoding="utf-8")
    relaid = parse_schedule("# a comment\n" + text.replace("{name: 元旦", "{ name: 元旦"), "x")
    assert relaid.digest == schedule_2027.digest
    changed = parse_schedule(text.replace("2027-06-09", "2027-06-10"), "x")
    assert changed.digest != schedule_2027.digest


BAD = """\
year: 2027
notice:
  number: 国办发明电〔2026〕1号
holidays:
  - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
  - {name: 春节, from: 2027-02-14, to: 2027-02-06}
  - {name: 清明节, from: 2027-04-03, to: 2027-04-05}
  - {name: 补假, from: 2027-04-05}
  - {name: 远方, from: 2028-06-01}
  - {name: 中秋节, from: 2027-09-15, til: 2027-09-16}
workdays:
  - {date: 2027-02-17, for: 春节}
  - {date: 2027-04-04, for: 清明节}
  - {date: 2027-05-08}
  - {date: 2027-05-08}
  - {date: 2027-13-01}
extra: 1
"""


def test_an_invalid_schedule_is_refused_with_every_problem_and_its_line() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(BAD, "holidays-2027.yaml")
    found = {(p.line, p.path): p.message for p in caught.value.errors}
    assert all(p.file == "holidays-2027.yaml" for p in caught.value.errors)
    assert "'title' is missing" in found[(2, "notice.title")]
    assert "is before 2027-02-14" in found[(6, "holidays[1].to")]
    assert "overlaps 清明节 on line 7" in found[(8, "holidays[3]")]
    assert "outside this schedule's year" in found[(9, "holidays[4].from")]
    assert "unknown key 'til'" in found[(10, "holidays[5].til")]
    assert "is a Wednesday, a working day already" in found[(12, "workdays[0].date")]
    assert "also a day off (清明节)" in found[(13, "workdays[1].date")]
    assert "listed twice" in found[(15, "workdays[3].date")]
    assert "write a date as YYYY-MM-DD" in found[(16, "workdays[4].date")]
    assert "unknown key 'extra'" in found[(17, "extra")]
    assert len(found) == 10
    assert str(caught.value).splitlines()[0].startswith("holidays-2027.yaml:2: notice.title:")


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("year: 2027\nyear: 2028\n", 2, "appears twice"),
        ("year: [2027\n", 2, "YAML syntax"),
        ("- 2027\n", 1, "expected a mapping"),
        ("year: '2027'\nnotice: n\nholidays: [{name: a, from: 2027-01-01}]\n", 1, "as a number"),
        ("year: 2027\nnotice: n\nholidays: []\n", 3, "list the days off"),
        ("year: 2027\nholidays: [{name: a, from: 2027-01-01}]\n", 1, "name the source"),
        ("", 1, "expected a mapping"),
    ],
)
def test_each_kind_of_mistake_says_what_to_fix(text: str, line: int, expected: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(text, "s.yaml")
    assert any(p.line == line and expected in p.message for p in caught.value.errors), str(
        caught.value
    )


def test_a_notice_may_name_days_at_the_edge_of_the_neighbouring_year() -> None:
    text = "year: 2027\nnotice: example\nholidays:\n  - {name: 元旦, from: 2026-12-31, to: 2027-01-01}\n"
    s = StatutorySchedules((parse_schedule(text, "s.yaml"),))
    assert s.is_working_day(date(2026, 12, 31)) is False
    assert s.is_working_day(date(2026, 12, 30)) is None, "2026 itself is not covered"
    assert s.is_working_day(date(2027, 3, 1)) is True
    assert s.is_working_day(date(2027, 3, 6)) is False, "an unlisted Saturday stays off"


# --- deadlines from a loaded schedule ---------------------------------------------------------


def test_working_days_across_the_2027_spring_festival(cal_2027: WorkCalendar) -> None:
    weekdays = WorkCalendar()
    opened = at(2027, 2, 5, 17)  # the Friday before the festival
    # Response 2 working hours, arrival 4, resolution 2 working days (EL.DOOR_FAULT's limits).
    assert cal_2027.add(opened, 2, "working_hours") == at(2027, 2, 15, 10)
    assert cal_2027.add(opened, 4, "working_hours") == at(2027, 2, 15, 12)
    assert cal_2027.add(opened, 2, "working_days") == at(2027, 2, 16, 18)
    # Without the schedule the festival's weekdays would count.
    assert weekdays.add(opened, 2, "working_hours") == at(2027, 2, 8, 10)
    assert weekdays.add(opened, 2, "working_days") == at(2027, 2, 9, 18)
    assert cal_2027.elapsed(opened, at(2027, 2, 15, 10), "working_hours") == 2.0


def test_an_adjusted_working_saturday_counts(cal_2027: WorkCalendar) -> None:
    opened = at(2027, 2, 19, 17)  # Friday; Saturday 20 February is a working day
    assert cal_2027.is_working_day(date(2027, 2, 20))
    assert not cal_2027.is_working_day(date(2027, 2, 21))
    assert cal_2027.add(opened, 2, "working_hours") == at(2027, 2, 20, 10)
    assert cal_2027.add(opened, 2, "working_days") == at(2027, 2, 22, 18)


def test_local_days_off_still_win_over_a_loaded_schedule(schedule_2027: YearSchedule) -> None:
    local = WorkCalendar(holidays=frozenset({date(2027, 2, 20)}), workdays=frozenset())
    cal = local.with_schedules(StatutorySchedules((schedule_2027,)))
    assert not cal.is_working_day(date(2027, 2, 20))
    assert cal.add(at(2027, 2, 19, 17), 2, "working_hours") == at(2027, 2, 22, 10)


def test_a_loaded_schedule_wins_over_the_library() -> None:
    # chinese-calendar knows 2026-01-01 as a holiday; a (corrected) loaded schedule decides.
    library = WorkCalendar()
    assert library.source(2026) == "library"
    assert not library.is_working_day(date(2026, 1, 1))
    text = "year: 2026\nnotice: corrected\nholidays: [{name: x, from: 2026-01-02}]\n"
    cal = library.with_schedules(StatutorySchedules((parse_schedule(text, "s"),)))
    assert cal.source(2026) == "schedule"
    assert cal.is_working_day(date(2026, 1, 1))
    assert not cal.is_working_day(date(2026, 1, 2))


def test_without_any_schedule_monday_to_friday_is_used_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cal = WorkCalendar()
    assert cal.source(2031) == "weekdays"
    with caplog.at_level(logging.WARNING, logger="shouwang.calendar"):
        assert cal.is_working_day(date(2031, 2, 3))
        assert cal.is_working_day(date(2031, 2, 4))
    loud = [r for r in caplog.records if "NO HOLIDAY SCHEDULE FOR 2031" in r.getMessage()]
    assert len(loud) == 1, "once per year, not once per day"
    assert "shouwang calendar load" in loud[0].getMessage()
    assert WorkCalendar(use_statutory=False).source(2031) == "not used"


# --- the missing-schedule warning --------------------------------------------------------------


def test_the_warning_for_next_year_starts_60_days_before_the_year_ends() -> None:
    def only_2026(year: int) -> bool:
        return year == 2026

    assert missing_schedule_warnings(date(2026, 10, 31), only_2026) == []
    (first,) = missing_schedule_warnings(date(2026, 11, 1), only_2026)
    assert first.year == 2027 and "starts in 61 day(s)" in str(first)
    (late,) = missing_schedule_warnings(date(2026, 12, 31), only_2026)
    assert "starts in 1 day(s)" in str(late)
    (now,) = missing_schedule_warnings(date(2027, 1, 5), only_2026)
    assert now.year == 2027 and "Monday to Friday" in str(now)
    assert missing_schedule_warnings(date(2026, 11, 15), lambda y: y in (2026, 2027)) == []


def test_the_calendar_warns_in_november_until_the_2027_schedule_is_loaded(
    schedule_2027: YearSchedule,
) -> None:
    cal = WorkCalendar()  # chinese-calendar covers 2026 and not 2027
    assert cal.warnings(date(2026, 10, 15)) == []
    (warning,) = cal.warnings(date(2026, 11, 30))
    assert warning.short == "2027 holiday schedule missing"
    assert (
        cal.with_schedules(StatutorySchedules((schedule_2027,))).warnings(date(2026, 11, 30)) == []
    )
    assert WorkCalendar(use_statutory=False).warnings(date(2026, 11, 30)) == []
