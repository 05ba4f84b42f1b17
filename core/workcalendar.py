"""Shared: the working-time calendar behind work-order deadlines and SLA elapsed time.

Time limits in a responsibility list come in three units (docs/domain.md §5): calendar minutes
(safety events), working hours (工作时) and working days (工作日). A working day follows the State
Council's annual holiday notice, including the weekend days it turns into working days (调休): a
schedule loaded as data for the year (:mod:`core.holiday_schedule`) first, else the
``chinese-calendar`` package where it covers the year, else Monday to Friday with a loud warning.
A county adds its own days off (``holidays``) and extra working days (``workdays``) on top.

Working time is measured on the local wall clock of the calendar's time zone, inside ``periods``
on working days. Everything here is pure except :func:`load`, which reads one YAML file.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from core.errors import ConfigError
from core.holiday_schedule import (
    LOAD_HINT,
    NO_SCHEDULES,
    ScheduleWarning,
    StatutorySchedules,
    missing_schedule_warnings,
)

log = logging.getLogger("shouwang.calendar")


class Unit(StrEnum):
    """The unit of a time limit, as written in the responsibility list."""

    CALENDAR_MINUTES = "calendar_minutes"
    WORKING_HOURS = "working_hours"
    WORKING_DAYS = "working_days"


Source = Literal["schedule", "library", "weekdays", "not used"]
UNITS: tuple[str, ...] = tuple(Unit)

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_PERIODS: tuple[tuple[time, time], ...] = ((time(9), time(12)), (time(13), time(18)))

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_KEYS = ("timezone", "periods", "holidays", "workdays", "use_statutory")


def _statutory_lookup() -> Callable[[date], bool] | None:
    try:
        module = importlib.import_module("chinese_calendar")
    except ImportError:
        return None
    is_workday: Callable[[date], bool] = module.is_workday
    return is_workday


_statutory_is_workday = _statutory_lookup()


@functools.lru_cache(maxsize=8192)
def _statutory_day(d: date) -> bool | None:
    """The State Council's answer for ``d``, or None when chinese-calendar cannot give one."""
    if _statutory_is_workday is None:
        return None
    try:
        return bool(_statutory_is_workday(d))
    except NotImplementedError:  # no notice for this year in the installed chinese-calendar
        return None


@functools.lru_cache(maxsize=256)
def _warn_weekdays(year: int) -> None:
    """Once per year and process: deadlines in ``year`` fall back to Monday to Friday."""
    log.warning(
        "NO HOLIDAY SCHEDULE FOR %d: working days are taken as Monday to Friday, so statutory"
        " holidays count as working days and 调休 Saturdays do not; %s",
        year,
        LOAD_HINT,
    )


def _since_midnight(t: time) -> timedelta:
    return timedelta(hours=t.hour, minutes=t.minute, seconds=t.second, microseconds=t.microsecond)


def _periods_problem(periods: tuple[tuple[time, time], ...]) -> str | None:
    """Why ``periods`` cannot be used, or None when they can."""
    if not periods:
        return (
            "at least one working period is needed, e.g. [['09:00', '12:00'], ['13:00', '18:00']]"
        )
    previous_end: time | None = None
    for start, end in periods:
        if start.tzinfo is not None or end.tzinfo is not None:
            return "period times are local wall-clock times; give them without a time zone"
        if start >= end:
            return f"period {start:%H:%M}-{end:%H:%M} must end after it starts, within one day"
        if previous_end is not None and start < previous_end:
            return f"period starting {start:%H:%M} overlaps the previous one; list periods in order without overlap"
        previous_end = end
    return None


def _check_value(value: float, unit: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a time limit must be a finite number >= 0, got {value!r}")
    if unit == "working_days" and not float(value).is_integer():
        raise ValueError(
            f"working_days takes a whole number of days, got {value!r}; use working_hours for fractions"
        )


def _check_aware(name: str, moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name} {moment.isoformat()} has no time zone; attach one, e.g. "
            "datetime(..., tzinfo=ZoneInfo('Asia/Shanghai'))"
        )


@dataclass(frozen=True, slots=True)
class WorkCalendar:
    """A county's working time: periods of the day on working days, in one time zone.

    ``holidays`` are local days off and win over everything; ``workdays`` are local extra working
    days; then, with ``use_statutory``, the loaded holiday ``schedules`` for the year, else
    chinese-calendar where it covers the year; then Monday to Friday (with a warning when the
    statutory calendar was wanted).
    """

    tz: ZoneInfo = SHANGHAI
    periods: tuple[tuple[time, time], ...] = DEFAULT_PERIODS
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    use_statutory: bool = True
    schedules: StatutorySchedules = NO_SCHEDULES

    def __post_init__(self) -> None:
        problem = _periods_problem(self.periods)
        if problem is not None:
            raise ValueError(problem)

    @property
    def hours_per_day(self) -> float:
        return self._day_length().total_seconds() / 3600

    def statutory_covered(self, d: date) -> bool:
        """Whether the statutory calendar decides ``d`` (else Monday to Friday is assumed)."""
        return self._statutory(d) is not None

    def with_schedules(self, schedules: StatutorySchedules) -> WorkCalendar:
        """The same calendar with these loaded holiday schedules."""
        return dataclasses.replace(self, schedules=schedules)

    def source(self, year: int) -> Source:
        """Where the working days of ``year`` come from."""
        if not self.use_statutory:
            return "not used"
        if self.schedules.covers(year):
            return "schedule"
        if _statutory_day(date(year, 7, 1)) is not None:
            return "library"
        return "weekdays"

    def warnings(self, today: date) -> list[ScheduleWarning]:
        """This year's or next year's holiday schedule missing (from 60 days before year end)."""
        if not self.use_statutory:
            return []
        return missing_schedule_warnings(today, lambda y: self.source(y) != "weekdays")

    def is_working_day(self, d: date) -> bool:
        if isinstance(d, datetime):
            raise TypeError("pass a date, e.g. moment.astimezone(calendar.tz).date()")
        if d in self.holidays:
            return False
        if d in self.workdays:
            return True
        statutory = self._statutory(d)
        if statutory is not None:
            return statutory
        if self.use_statutory:
            _warn_weekdays(d.year)
        return d.weekday() < 5

    def add(self, start: datetime, value: float, unit: Unit) -> datetime:
        """The deadline ``value`` units after ``start``, in the calendar's time zone.

        - ``calendar_minutes``: plain elapsed time, nights and holidays included.
        - ``working_hours``: only time inside the periods of working days counts; a start outside
          working time begins counting at the next period. A limit used up exactly at the end of
          a period ends there (Friday 17:00 + 1 h is Friday 18:00, not Monday 09:00).
        - ``working_days``: a whole number N. The deadline is the end of the last period of the
          Nth working day after the start's local date; the start day itself is day 0 and never
          counts, whatever the time of day (Monday 08:00 + 1 working day is Tuesday 18:00; so is
          Monday 20:00 + 1; Saturday + 1 is Monday 18:00).

        A value of 0 returns ``start``. Negative, infinite or NaN values raise ValueError.
        """
        _check_aware("start", start)
        _check_value(value, unit)
        if value == 0:
            return start.astimezone(self.tz)
        if unit == "calendar_minutes":
            return (start.astimezone(UTC) + timedelta(minutes=value)).astimezone(self.tz)
        local = start.astimezone(self.tz).replace(tzinfo=None)
        if unit == "working_hours":
            deadline = self._add_working(local, timedelta(hours=value))
        else:
            deadline = self._add_days(local.date(), int(value))
        return deadline.replace(tzinfo=self.tz)

    def elapsed(self, start: datetime, end: datetime, unit: Unit) -> float:
        """How much of ``unit`` lies between two instants; negative when ``end`` is before ``start``.

        Working days are working hours divided by :attr:`hours_per_day`, so this is not the exact
        inverse of ``add(..., "working_days")``, which always runs to the end of a day.
        """
        _check_aware("start", start)
        _check_aware("end", end)
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
        if unit == "calendar_minutes":
            return (end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() / 60
        a = start.astimezone(self.tz).replace(tzinfo=None)
        b = end.astimezone(self.tz).replace(tzinfo=None)
        worked = self._working_between(a, b) if a <= b else -self._working_between(b, a)
        hours = worked.total_seconds() / 3600
        return hours if unit == "working_hours" else hours / self.hours_per_day

    def _statutory(self, d: date) -> bool | None:
        if not self.use_statutory:
            return None
        loaded = self.schedules.is_working_day(d)
        return loaded if loaded is not None else _statutory_day(d)

    def _day_length(self) -> timedelta:
        return sum((_since_midnight(e) - _since_midnight(s) for s, e in self.periods), _ZERO)

    def _segments(self, d: date) -> Iterable[tuple[datetime, datetime]]:
        for s, e in self.periods:
            yield datetime.combine(d, s), datetime.combine(d, e)

    def _add_working(self, start: datetime, remaining: timedelta) -> datetime:
        """Naive local wall time ``start`` plus ``remaining`` (> 0) working time."""
        day = start.date()
        if self.is_working_day(day):
            for seg_start, seg_end in self._segments(day):
                begin = max(seg_start, start)
                if begin >= seg_end:
                    continue
                if remaining <= seg_end - begin:
                    return begin + remaining
                remaining -= seg_end - begin
        full_day = self._day_length()
        while True:
            day += _ONE_DAY
            if not self.is_working_day(day):
                continue
            if remaining > full_day:
                remaining -= full_day
                continue
            for seg_start, seg_end in self._segments(day):
                if remaining <= seg_end - seg_start:
                    return seg_start + remaining
                remaining -= seg_end - seg_start

    def _add_days(self, start_day: date, days: int) -> datetime:
        day = start_day
        while days > 0:
            day += _ONE_DAY
            if self.is_working_day(day):
                days -= 1
        return datetime.combine(day, self.periods[-1][1])

    def _working_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time between naive local wall times ``a <= b``."""
        total = _ZERO
        full_day = self._day_length()
        day = a.date()
        while day <= b.date():
            if self.is_working_day(day):
                if a.date() < day < b.date():
                    total += full_day
                else:
                    for seg_start, seg_end in self._segments(day):
                        lo, hi = max(seg_start, a), min(seg_end, b)
                        if hi > lo:
                            total += hi - lo
            day += _ONE_DAY
        return total


def _parse_clock(where: str, raw: object) -> time:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raise ConfigError(
            where,
            f"got the number {raw}; quote times as strings, e.g. '13:00' "
            "(unquoted, YAML reads 13:00 as a base-60 number)",
        )
    match = _CLOCK.fullmatch(raw) if isinstance(raw, str) else None
    if match is None:
        raise ConfigError(where, f"got {raw!r}; write a time as 'HH:MM', e.g. '09:00'")
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        raise ConfigError(where, f"{raw!r} is not a time of day; use 00:00 to 23:59")
    return time(hour, minute)


def _parse_periods(where: str, raw: object) -> tuple[tuple[time, time], ...]:
    if not isinstance(raw, list):
        raise ConfigError(where, "give a list of [start, end] pairs, e.g. [['09:00', '12:00']]")
    periods: list[tuple[time, time]] = []
    for i, pair in enumerate(raw):
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(
                f"{where}[{i}]", f"got {pair!r}; give a [start, end] pair, e.g. ['09:00', '12:00']"
            )
        periods.append(
            (_parse_clock(f"{where}[{i}][0]", pair[0]), _parse_clock(f"{where}[{i}][1]", pair[1]))
        )
    problem = _periods_problem(tuple(periods))
    if problem is not None:
        raise ConfigError(where, problem)
    return tuple(periods)


def _parse_dates(where: str, raw: object) -> frozenset[date]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        raise ConfigError(where, "give a list of dates, e.g. [2026-05-06]")
    dates: set[date] = set()
    for i, item in enumerate(raw):
        parsed = _as_date(item)
        if parsed is None:
            raise ConfigError(
                f"{where}[{i}]", f"got {item!r}; write a date as YYYY-MM-DD, e.g. 2026-05-06"
            )
        dates.add(parsed)
    return frozenset(dates)


def _as_date(raw: object) -> date | None:
    if isinstance(raw, datetime):  # YAML reads "2026-05-06 10:00" as a datetime
        return None
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            return None
    return None


def _as_zone(raw: object) -> ZoneInfo | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def from_mapping(d: Mapping[str, Any], where: str = "work calendar") -> WorkCalendar:
    """A calendar from parsed configuration; every key is optional and defaults as in WorkCalendar.

    ``where`` names the source (a file path) in errors.
    """
    unknown = sorted(str(k) for k in d if k not in _KEYS)
    if unknown:
        raise ConfigError(
            where, f"unknown key(s) {', '.join(unknown)}; known keys are {', '.join(_KEYS)}"
        )
    name = d.get("timezone", "Asia/Shanghai")
    tz = _as_zone(name)
    if tz is None:
        raise ConfigError(
            f"{where}: timezone",
            f"{name!r} is not a known time zone; use an IANA name such as Asia/Shanghai",
        )
    periods = (
        _parse_periods(f"{where}: periods", d["periods"]) if "periods" in d else DEFAULT_PERIODS
    )
    holidays = _parse_dates(f"{where}: holidays", d.get("holidays"))
    workdays = _parse_dates(f"{where}: workdays", d.get("workdays"))
    both = sorted(holidays & workdays)
    if both:
        raise ConfigError(
            where,
            f"{', '.join(map(str, both))} listed both as holiday and workday; keep each date in one list",
        )
    use_statutory = d.get("use_statutory", True)
    if not isinstance(use_statutory, bool):
        raise ConfigError(f"{where}: use_statutory", f"got {use_statutory!r}; write true or false")
    return WorkCalendar(tz, periods, holidays, workdays, use_statutory)


def configured(path: Path | None) -> WorkCalendar:
    """The county's calendar file when one is set, else the default calendar."""
    return load(path) if path is not None else WorkCalendar()


def load(path: Path) -> WorkCalendar:
    """The calendar described by a YAML file (see :func:`from_mapping`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(
            str(path), f"cannot read the work calendar ({e.strerror}); check the path"
        ) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(
            where, f"not valid YAML ({getattr(e, 'problem', e)}); fix the syntax"
        ) from e
    if not isinstance(data, dict):
        raise ConfigError(
            str(path),
            "must be a mapping, e.g. 'timezone: Asia/Shanghai' with periods, holidays, workdays",
        )
    return from_mapping(data, where=str(path))
