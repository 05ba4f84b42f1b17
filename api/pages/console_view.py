"""API (firm console): what the console's pages show, from plain values (pure): the work-order
filters read from a query string (each mistake named, in Chinese and English), Beijing dates as
UTC bounds, the overview's counts, and the roster's week laid out per community and day.

The figures themselves (which work orders, their time limits and outcomes) are the JSON API's
own: ``api.pages.console`` calls its route functions with the signed-in person as the caller.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from urllib.parse import urlencode

from api.pages.view import BEIJING
from responsibility.model import CODE_PATTERN

STATES: Final = ("occurred", "responded", "on_site", "completed", "false_alarm")
OPEN_STATES: Final = ("occurred", "responded", "on_site")
# The state filter: one state, or every open / every closed one.
STATE_CHOICES: Final = {
    "open": ("未关闭", "open"),
    "closed": ("已关闭", "closed"),
}
PAGE_SIZE: Final = 50
MAX_ID_TEXT: Final = 10
_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CODE: Final = re.compile(CODE_PATTERN)
_TRUE: Final = frozenset({"1", "on", "true", "yes"})
_FALSE: Final = frozenset({"", "0", "off", "false", "no"})
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2100


@dataclass(frozen=True, slots=True)
class Problem:
    """A filter value that cannot be used: the field and what to do, in Chinese and English."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Filters:
    """The work-order page's filters (all optional) and its page position."""

    community: int | None = None
    state: str | None = None  # a status of STATES, "open" or "closed"
    overdue: bool = False
    date_from: date | None = None
    date_to: date | None = None
    code: str | None = None
    cursor: str | None = None

    @property
    def opened_from(self) -> datetime | None:
        """The start of ``date_from`` in Beijing, as UTC."""
        return None if self.date_from is None else beijing_midnight(self.date_from)

    @property
    def opened_until(self) -> datetime | None:
        """The end of ``date_to`` (the next Beijing midnight), as UTC: the day is included."""
        return None if self.date_to is None else beijing_midnight(self.date_to + timedelta(days=1))

    @property
    def statuses(self) -> list[str] | None:
        return [self.state] if self.state in STATES else None

    @property
    def open(self) -> bool | None:
        return {"open": True, "closed": False}.get(self.state or "")

    def query(self, **changes: object) -> str:
        """The query string of these filters (with ``changes``), for links and the next page."""
        f = replace(self, **changes)  # type: ignore[arg-type]
        pairs = {
            "community": f.community,
            "state": f.state,
            "overdue": "1" if f.overdue else None,
            "from": f.date_from.isoformat() if f.date_from else None,
            "to": f.date_to.isoformat() if f.date_to else None,
            "code": f.code,
            "cursor": f.cursor,
        }
        return urlencode({k: v for k, v in pairs.items() if v is not None})


def beijing_midnight(d: date) -> datetime:
    return datetime.combine(d, time(0), BEIJING).astimezone(UTC)


def community_id(raw: str, communities: Collection[int]) -> int | Problem | None:
    """A community filter: empty for all, else the id of one of ``communities``."""
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > MAX_ID_TEXT or int(raw) not in communities:
        return Problem("community", "不是贵公司的小区 not one of your firm's communities")
    return int(raw)


def _date(name: str, raw: str) -> date | Problem | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError
        d = date.fromisoformat(raw)
    except ValueError:
        return Problem(
            name, "日期格式应为 YYYY-MM-DD（北京时间）give a date as YYYY-MM-DD (Beijing)"
        )
    if not FIRST_YEAR <= d.year <= LAST_YEAR:
        return Problem(
            name,
            f"年份应在 {FIRST_YEAR}–{LAST_YEAR} 之间 the year must be {FIRST_YEAR}–{LAST_YEAR}",
        )
    return d


def parse_filters(
    query: Mapping[str, str], communities: Collection[int]
) -> tuple[Filters, list[Problem]]:
    """The filters of a query string, and a problem for each value that cannot be used (a
    filter with a problem is left out of the returned filters)."""
    problems: list[Problem] = []
    values: dict[str, object] = {}

    community = community_id(query.get("community", ""), communities)
    if isinstance(community, Problem):
        problems.append(community)
    else:
        values["community"] = community

    state = query.get("state", "").strip()
    if state and state not in STATES and state not in STATE_CHOICES:
        choices = ", ".join((*STATE_CHOICES, *STATES))
        problems.append(Problem("state", f"状态应为以下之一 state must be one of: {choices}"))
    else:
        values["state"] = state or None

    overdue = query.get("overdue", "").strip().lower()
    if overdue in _TRUE:
        values["overdue"] = True
    elif overdue not in _FALSE:
        problems.append(Problem("overdue", "应为 1 或留空 overdue must be 1 or left out"))

    for name, key in (("from", "date_from"), ("to", "date_to")):
        d = _date(name, query.get(name, ""))
        if isinstance(d, Problem):
            problems.append(d)
        else:
            values[key] = d
    start, end = values.get("date_from"), values.get("date_to")
    if isinstance(start, date) and isinstance(end, date) and end < start:
        problems.append(Problem("to", "结束日期早于开始日期 'to' is before 'from'"))
        values.pop("date_to")

    code = query.get("code", "").strip().upper()
    if code and not _CODE.match(code):
        problems.append(
            Problem(
                "code",
                "编码应如 EL.TRAPPED（字母、数字、. _ -，最多 32 个）"
                " a code such as EL.TRAPPED (letters, digits, . _ -; at most 32)",
            )
        )
    else:
        values["code"] = code or None

    cursor = query.get("cursor", "").strip()
    if len(cursor) > 200:
        problems.append(Problem("cursor", "翻页位置无效 not a page of this list; start again"))
    else:
        values["cursor"] = cursor or None
    return Filters(**values), problems  # type: ignore[arg-type]


@dataclass(slots=True)
class Tally:
    """A community's open work orders by state, and how many are past a limit."""

    by_state: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPEN_STATES, 0))
    overdue: int = 0

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


def tally(orders: Iterable[tuple[int, str, bool]], communities: Iterable[int]) -> dict[int, Tally]:
    """Counts per community from (community id, status, past a limit) of open work orders;
    every community of ``communities`` appears, with zeros if it has none."""
    out = {c: Tally() for c in communities}
    for community, status, overdue in orders:
        t = out.setdefault(community, Tally())
        t.by_state[status] = t.by_state.get(status, 0) + 1
        t.overdue += overdue
    return out


# The roster's week.


def week_of(raw: str | None, today: date) -> date | Problem:
    """The Monday of the week holding ``raw`` (YYYY-MM-DD; empty: ``today``)."""
    d = _date("week", raw or "")
    if isinstance(d, Problem):
        return d
    d = d or today
    return d - timedelta(days=d.weekday())


def period_of(
    raw_from: str | None, raw_to: str | None, today: date
) -> tuple[date, date] | list[Problem]:
    """The report's period from the page's dates (Beijing; ``to`` inclusive): the first day and
    the day after the last. Empty: this month up to today."""
    start, last = _date("from", raw_from or ""), _date("to", raw_to or "")
    problems = [p for p in (start, last) if isinstance(p, Problem)]
    if problems:
        return problems
    assert not isinstance(start, Problem) and not isinstance(last, Problem)
    start = start or today.replace(day=1)
    last = last or max(today, start)
    if last < start:
        return [Problem("to", "结束日期应不早于开始日期 to must not be before from")]
    return start, last + timedelta(days=1)


def week_bounds(monday: date) -> tuple[datetime, datetime]:
    """The week's start and end (Beijing midnights) as UTC."""
    return beijing_midnight(monday), beijing_midnight(monday + timedelta(days=7))


@dataclass(frozen=True, slots=True)
class RosterShift:
    community_id: int
    role: str
    person: str
    starts_at: datetime
    ends_at: datetime
    slot: str | None = None  # a pattern's slot (早, 中, 夜...); None for a single shift


@dataclass(frozen=True, slots=True)
class DaySpan:
    """A shift's part on one Beijing day: ``08:00``–``20:00``; a shift running past midnight
    ends at ``24:00`` one day and starts at ``00:00`` the next."""

    person: str
    role: str
    start: str
    end: str
    from_before: bool
    into_next: bool
    slot: str | None = None


def day_span(s: RosterShift, day: date) -> DaySpan | None:
    """The part of ``s`` on ``day`` (Beijing), or None if it has none."""
    lo, hi = beijing_midnight(day), beijing_midnight(day + timedelta(days=1))
    start, end = max(s.starts_at, lo), min(s.ends_at, hi)
    if start >= end:
        return None
    end_text = "24:00" if end == hi else end.astimezone(BEIJING).strftime("%H:%M")
    return DaySpan(
        s.person,
        s.role,
        start.astimezone(BEIJING).strftime("%H:%M"),
        end_text,
        s.starts_at < lo,
        s.ends_at > hi,
        s.slot,
    )


def week_grid(
    shifts: Iterable[RosterShift], communities: Iterable[int], monday: date
) -> dict[int, list[list[DaySpan]]]:
    """Per community, seven days (Monday first) of who is on duty and when, earliest first."""
    days = [monday + timedelta(days=i) for i in range(7)]
    grid: dict[int, list[list[DaySpan]]] = {c: [[] for _ in days] for c in communities}
    for s in shifts:
        row = grid.get(s.community_id)
        if row is None:
            continue
        for i, day in enumerate(days):
            span = day_span(s, day)
            if span is not None:
                row[i].append(span)
    for row in grid.values():
        for spans in row:
            spans.sort(key=lambda x: (x.start, x.end, x.person))
    return grid


WEEKDAYS: Final = ("一", "二", "三", "四", "五", "六", "日")
WEEKDAYS_EN: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
