"""Shared: one year's statutory holiday schedule, as data (pure).

Every autumn the State Council publishes next year's schedule (国务院办公厅关于部分节假日安排的
通知): the days off for each festival and the weekend days that become working days (调休). A
county operator loads it as a YAML file (``shouwang calendar load``, ``POST /v1/calendar/schedules``);
the working calendar (:mod:`core.workcalendar`) prefers a loaded schedule over the
``chinese-calendar`` package, which covers only the years it was released for.

The format, with every problem reported at once with its file and line (:class:`ScheduleError`)::

    year: 2027
    notice:                      # the source: the notice's title, number and publication date
      title: 国务院办公厅关于2027年部分节假日安排的通知
      number: 国办发明电〔2026〕…号
      published: 2026-11-…
    holidays:                    # days off; 'to' may be left out for a single day
      - {name: 元旦, from: 2027-01-01, to: 2027-01-03}
    workdays:                    # weekend days that are working days (调休)
      - {date: 2027-02-20, for: 春节}

A notice may list days at the edge of the neighbouring year (New Year's Day from 31 December), so
dates from 1 December of the year before to 31 January of the year after are accepted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from core.errors import ConfigError
from core.located_yaml import Document, Loc, Problem, ProblemsError, decode, located, read

FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2100
MAX_SPAN_DAYS: Final = 31
WARN_DAYS_BEFORE_YEAR_END: Final = 60
LOAD_HINT: Final = "load it with 'shouwang calendar load FILE' (see docs/operations.md)"

_KEYS: Final = ("year", "notice", "holidays", "workdays")
_NOTICE_KEYS: Final = ("title", "number", "published")
_HOLIDAY_KEYS: Final = ("name", "from", "to")
_WORKDAY_KEYS: Final = ("date", "for")
_WEEKDAYS: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class ScheduleError(ProblemsError):
    """A holiday schedule that was refused; ``errors`` holds every problem with its line."""

    what = "the holiday schedule"


@dataclass(frozen=True, slots=True)
class Notice:
    title: str
    number: str | None = None
    published: date | None = None


@dataclass(frozen=True, slots=True)
class Holiday:
    name: str
    first: date
    last: date

    def days(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range((self.last - self.first).days + 1)]


@dataclass(frozen=True, slots=True)
class Workday:
    day: date
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class YearSchedule:
    year: int
    notice: Notice
    holidays: tuple[Holiday, ...]
    workdays: tuple[Workday, ...]

    @property
    def days_off(self) -> frozenset[date]:
        return frozenset(d for h in self.holidays for d in h.days())

    @property
    def working_weekend_days(self) -> frozenset[date]:
        return frozenset(w.day for w in self.workdays)

    @property
    def digest(self) -> str:
        """A digest of the content (not of the file's layout or comments)."""
        content = {
            "year": self.year,
            "notice": [self.notice.title, self.notice.number, str(self.notice.published)],
            "holidays": [[h.name, str(h.first), str(h.last)] for h in self.holidays],
            "workdays": [[str(w.day), w.reason] for w in self.workdays],
        }
        text = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StatutorySchedules:
    """The schedules in force, one per year; answers whether a day is a working day."""

    schedules: tuple[YearSchedule, ...] = ()
    _days: Mapping[date, bool] = field(init=False, repr=False, compare=False)
    _years: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        days: dict[date, bool] = {}
        for s in sorted(self.schedules, key=lambda s: s.year):  # a year's own notice wins
            days.update(dict.fromkeys(s.working_weekend_days, True))
            days.update(dict.fromkeys(s.days_off, False))
        for s in self.schedules:
            days.update(_own(s))
        object.__setattr__(self, "_days", days)
        object.__setattr__(self, "_years", frozenset(s.year for s in self.schedules))

    @property
    def years(self) -> frozenset[int]:
        return self._years

    def covers(self, year: int) -> bool:
        return year in self._years

    def is_working_day(self, d: date) -> bool | None:
        """The schedule's answer for ``d``, or None when no schedule covers its year."""
        stated = self._days.get(d)
        if stated is not None:
            return stated
        if d.year in self._years:
            return d.weekday() < 5
        return None


NO_SCHEDULES: Final = StatutorySchedules()


def _own(s: YearSchedule) -> dict[date, bool]:
    own = {d: False for d in s.days_off if d.year == s.year}
    own.update({d: True for d in s.working_weekend_days if d.year == s.year})
    return own


@dataclass(frozen=True, slots=True)
class ScheduleWarning:
    """A year whose holiday schedule is missing, and what to do about it."""

    year: int
    message: str

    @property
    def short(self) -> str:
        return f"{self.year} holiday schedule missing"

    def __str__(self) -> str:
        return self.message


def missing_schedule_warnings(
    today: date, covered: Callable[[int], bool], days_before: int = WARN_DAYS_BEFORE_YEAR_END
) -> list[ScheduleWarning]:
    """What a county operator must hear today: this year's or next year's schedule missing.

    Next year's is asked for from ``days_before`` days before the year ends (1 November with
    the default 60 days)."""
    out: list[ScheduleWarning] = []
    if not covered(today.year):
        msg = (
            f"no holiday schedule for {today.year}: working-day deadlines count Monday to Friday"
            f" and miss statutory holidays and 调休; {LOAD_HINT}"
        )
        out.append(ScheduleWarning(today.year, msg))
    next_year = today.year + 1
    warn_from = date(today.year, 12, 31) - timedelta(days=days_before)
    if today >= warn_from and not covered(next_year):
        left = (date(next_year, 1, 1) - today).days
        msg = (
            f"the {next_year} holiday schedule is not loaded and {next_year} starts in {left}"
            f" day(s): from 1 January deadlines would count Monday to Friday; once the State"
            f" Council publishes it, {LOAD_HINT}"
        )
        out.append(ScheduleWarning(next_year, msg))
    return out


# Parsing.


def parse_schedule(text: str, source: str) -> YearSchedule:
    """A year's schedule from YAML text; ``source`` names it in errors. Raises ScheduleError."""
    doc, problems = read(text, source, ScheduleError)
    p = _Parser(doc, problems)
    schedule = p.schedule()
    if p.problems or schedule is None:
        raise ScheduleError(p.problems or [located(doc, (), "the schedule is empty")])
    return schedule


def read_schedule(path: Path) -> tuple[str, YearSchedule]:
    """A schedule file's text and the schedule it describes; ScheduleError or ConfigError."""
    try:
        data = path.read_bytes()
    except OSError as e:
        reason = f"cannot read the schedule ({e.strerror}); check the path"
        raise ConfigError(str(path), reason) from e
    text = decode(data, str(path), ScheduleError)
    return text, parse_schedule(text, str(path))


@dataclass
class _Parser:
    doc: Document
    problems: list[Problem]

    def bad(self, loc: Loc, message: str) -> None:
        self.problems.append(located(self.doc, loc, message))

    def keys(self, raw: Mapping[Any, Any], loc: Loc, known: tuple[str, ...]) -> None:
        for k in raw:
            if k not in known:
                self.bad((*loc, str(k)), f"unknown key '{k}'; use {', '.join(known)}")

    def text(self, raw: Any, loc: Loc, *, required: bool) -> str | None:
        if raw is None:
            if required:
                self.bad(loc, f"'{loc[-1]}' is missing; add it")
            return None
        if not isinstance(raw, str) or not raw.strip():
            self.bad(loc, f"expected text, got {raw!r}; put it in quotes")
            return None
        return raw.strip()

    def day(self, raw: Any, loc: Loc, *, required: bool = True) -> date | None:
        if raw is None:
            if required:
                self.bad(loc, f"'{loc[-1]}' is missing; add a date, e.g. 2027-02-06")
            return None
        parsed: date | None = None
        if isinstance(raw, date) and not isinstance(raw, datetime):
            parsed = raw
        elif isinstance(raw, str):
            try:
                parsed = date.fromisoformat(raw.strip())
            except ValueError:
                parsed = None
        if parsed is None:
            self.bad(loc, f"got {raw!r}; write a date as YYYY-MM-DD, e.g. 2027-02-06")
        return parsed

    def schedule(self) -> YearSchedule | None:
        data = self.doc.data
        if not isinstance(data, dict):
            self.bad((), "expected a mapping with year, notice, holidays and workdays")
            return None
        self.keys(data, (), _KEYS)
        year = self.year(data.get("year"))
        notice = self.notice(data.get("notice"))
        window = (date(year - 1, 12, 1), date(year + 1, 1, 31)) if year else None
        holidays, holidays_ok = self.holidays(data.get("holidays"), window)
        workdays = self.workdays(data.get("workdays"), window, holidays)
        if year is None or notice is None or not holidays_ok or workdays is None:
            return None
        return YearSchedule(year, notice, tuple(h for h, _ in holidays), workdays)

    def year(self, raw: Any) -> int | None:
        if raw is None:
            self.bad(("year",), "'year' is missing; add it, e.g. year: 2027")
            return None
        if not isinstance(raw, int) or isinstance(raw, bool) or not FIRST_YEAR <= raw <= LAST_YEAR:
            self.bad(("year",), f"got {raw!r}; give the year as a number, e.g. 2027")
            return None
        return raw

    def notice(self, raw: Any) -> Notice | None:
        loc: Loc = ("notice",)
        if isinstance(raw, str) and raw.strip():
            return Notice(raw.strip())
        if not isinstance(raw, dict):
            self.bad(loc, "name the source: notice: {title: ..., number: ..., published: ...}")
            return None
        self.keys(raw, loc, _NOTICE_KEYS)
        title = self.text(raw.get("title"), (*loc, "title"), required=True)
        number = self.text(raw.get("number"), (*loc, "number"), required=False)
        published = self.day(raw.get("published"), (*loc, "published"), required=False)
        return Notice(title, number, published) if title else None

    def holidays(
        self, raw: Any, window: tuple[date, date] | None
    ) -> tuple[list[tuple[Holiday, int]], bool]:
        """The holidays that parse, and whether all did."""
        if not isinstance(raw, list) or not raw:
            self.bad(("holidays",), "list the days off: - {name: 春节, from: ..., to: ...}")
            return [], False
        out: list[tuple[Holiday, int]] = []
        ok = True
        for i, item in enumerate(raw):
            h = self.holiday(item, ("holidays", i), window)
            if h is None:
                ok = False
                continue
            for other, j in out:
                if h.first <= other.last and other.first <= h.last:
                    line = located(self.doc, ("holidays", j), "").line
                    self.bad(
                        ("holidays", i),
                        f"{h.name} ({h.first} to {h.last}) overlaps {other.name} on line {line};"
                        " give each day off once",
                    )
                    ok = False
            out.append((h, i))
        return out, ok

    def holiday(self, raw: Any, loc: Loc, window: tuple[date, date] | None) -> Holiday | None:
        if not isinstance(raw, dict):
            self.bad(loc, f"got {raw!r}; write - {{name: 春节, from: 2027-02-06, to: 2027-02-14}}")
            return None
        self.keys(raw, loc, _HOLIDAY_KEYS)
        name = self.text(raw.get("name"), (*loc, "name"), required=True)
        first = self.day(raw.get("from"), (*loc, "from"))
        last = self.day(raw.get("to"), (*loc, "to"), required=False) or first
        if name is None or first is None or last is None:
            return None
        if last < first:
            self.bad((*loc, "to"), f"{last} is before {first}; 'to' is the last day off")
            return None
        if (last - first).days >= MAX_SPAN_DAYS:
            self.bad((*loc, "to"), f"{first} to {last} is longer than {MAX_SPAN_DAYS} days")
            return None
        for key, d in (("from", first), ("to", last)):
            if window and not window[0] <= d <= window[1]:
                self.bad((*loc, key), _outside(d, window))
                return None
        return Holiday(name, first, last)

    def workdays(
        self,
        raw: Any,
        window: tuple[date, date] | None,
        holidays: list[tuple[Holiday, int]],
    ) -> tuple[Workday, ...] | None:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.bad(("workdays",), "list the working weekend days: - {date: ..., for: 春节}")
            return None
        out: dict[date, Workday] = {}
        ok = True
        for i, item in enumerate(raw):
            loc: Loc = ("workdays", i)
            if not isinstance(item, dict):
                self.bad(loc, f"got {item!r}; write - {{date: 2027-02-20, for: 春节}}")
                ok = False
                continue
            self.keys(item, loc, _WORKDAY_KEYS)
            d = self.day(item.get("date"), (*loc, "date"))
            reason = self.text(item.get("for"), (*loc, "for"), required=False)
            problem = _workday_problem(d, window, out, holidays) if d else "bad date"
            if d is not None and problem:
                self.bad((*loc, "date"), problem)
            if d is None or problem:
                ok = False
                continue
            out[d] = Workday(d, reason)
        return tuple(out.values()) if ok else None


def _outside(d: date, window: tuple[date, date]) -> str:
    return f"{d} is outside this schedule's year; dates run from {window[0]} to {window[1]}"


def _workday_problem(
    d: date,
    window: tuple[date, date] | None,
    seen: Mapping[date, Workday],
    holidays: Iterable[tuple[Holiday, int]],
) -> str | None:
    if window and not window[0] <= d <= window[1]:
        return _outside(d, window)
    if d.weekday() < 5:
        return (
            f"{d} is a {_WEEKDAYS[d.weekday()]}, a working day already; list only the Saturdays"
            " and Sundays that become working days"
        )
    if d in seen:
        return f"{d} is listed twice; keep one"
    for h, _ in holidays:
        if h.first <= d <= h.last:
            return f"{d} is also a day off ({h.name}); a day is either off or a working day"
    return None
