"""Shared: repeating duty-roster patterns, the rules (pure).

A pattern rosters one role for one community from ``starts_on`` to ``ends_on`` (Beijing local
dates, both included, at most :data:`MAX_SPAN_DAYS` apart). Every day has the same named slots
(早 07:00 for 8 h, 中 15:00 for 8 h, 夜 23:00 for 8 h, ...), each given by its Beijing wall-clock
start and its length in minutes; a slot may cross midnight and belongs to the day it *starts* on.
Slots never overlap, also across midnight (夜 23:00-07:00 and 早 07:00 touch, they do not
overlap), so at any instant at most one team holds the pattern; gaps are allowed (a day slot
only).

Teams (each a list of person ids) rotate through the slots: rotation period ``p`` counts
``rotate_every_days`` days from ``starts_on`` (the first period is 0), and in period ``p`` slot
``k`` (its index in the pattern) is held by team ``(k + p) mod len(teams)``. With three slots and
three teams rotating weekly, every team works each slot one week in three. There are at least as
many teams as slots, so no team holds two slots of one day.

:func:`check` says everything wrong with a pattern, each :class:`Problem` naming its field as the
API's request body does (``slots[1].start``, ``teams[2][0]``); :func:`build` makes a
:class:`Pattern` from the values as they arrive (a slot's start as ``"HH:MM"``) or raises
:class:`InvalidPattern` with the problems; :func:`shifts` gives the concrete shifts (person, UTC
start and end, slot) of a valid pattern between two instants. The API stores these as
``duty_shifts`` rows, so alarms are routed to them like any shift (``lifecycle.roster``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

BEIJING: Final = ZoneInfo("Asia/Shanghai")
DAY_MINUTES: Final = 24 * 60
MAX_SPAN_DAYS: Final = 366
"""``ends_on`` is at most this many days after ``starts_on``."""
MAX_SLOTS: Final = 12
MAX_TEAMS: Final = 50
MAX_TEAM_SIZE: Final = 20
MAX_SLOT_NAME: Final = 20
FIRST_YEAR: Final = 2000
LAST_YEAR: Final = 2099
MAX_SHIFTS: Final = 20_000
"""The most shifts one pattern may make over its whole span (a row each in ``duty_shifts``)."""

_HHMM: Final = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")


@dataclass(frozen=True, slots=True)
class Slot:
    """A named part of every day: from ``start`` (Beijing wall-clock) for ``minutes``."""

    name: str
    start: time
    minutes: int


@dataclass(frozen=True, slots=True)
class Pattern:
    community_id: int
    role: str
    starts_on: date
    ends_on: date  # the last day whose slots are held (a night slot may run into the next)
    slots: tuple[Slot, ...]
    teams: tuple[tuple[int, ...], ...]
    rotate_every_days: int


@dataclass(frozen=True, slots=True)
class PatternShift:
    """One person holding one slot of one day: [starts_at, ends_at) in UTC."""

    person_id: int
    starts_at: datetime
    ends_at: datetime
    slot: str
    day: date  # the Beijing date the slot starts on
    team: int  # the team's index in the pattern


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # as in the request body: "slots[1].start"
    message: str


class InvalidPattern(ValueError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = list(problems)


def parse_start(text: str) -> time | None:
    """``"HH:MM"`` on a 24-hour clock as a time, or None."""
    m = _HHMM.fullmatch(text)
    return None if m is None else time(int(m[1]), int(m[2]))


def build(
    *,
    community_id: int,
    role: str,
    starts_on: date,
    ends_on: date,
    slots: Sequence[tuple[str, str, int]],
    teams: Sequence[Sequence[int]],
    rotate_every_days: int,
) -> Pattern:
    """A valid pattern from the values as given (``slots``: name, ``"HH:MM"``, minutes), or
    :class:`InvalidPattern` with every problem found."""
    problems: list[Problem] = []
    parsed: list[Slot] = []
    for i, (name, start, minutes) in enumerate(slots):
        at = parse_start(start)
        if at is None:
            problems.append(
                Problem(f"slots[{i}].start", 'give the start as HH:MM on a 24-hour clock: "08:00"')
            )
            at = time(0)
        parsed.append(Slot(name, at, minutes))
    pattern = Pattern(
        community_id=community_id,
        role=role,
        starts_on=starts_on,
        ends_on=ends_on,
        slots=tuple(parsed),
        teams=tuple(tuple(t) for t in teams),
        rotate_every_days=rotate_every_days,
    )
    # A start that could not be read is not compared with the others.
    problems += _check(pattern, overlaps=not problems)
    if problems:
        raise InvalidPattern(problems)
    return pattern


def check(pattern: Pattern) -> list[Problem]:
    """Everything wrong with ``pattern``; empty when it is valid."""
    return _check(pattern, overlaps=True)


def _check(pattern: Pattern, *, overlaps: bool) -> list[Problem]:
    out: list[Problem] = []
    for name, day in (("starts_on", pattern.starts_on), ("ends_on", pattern.ends_on)):
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            out.append(Problem(name, f"give a date in the years {FIRST_YEAR} to {LAST_YEAR}"))
    if out:
        return out
    span = (pattern.ends_on - pattern.starts_on).days
    if span < 0:
        out.append(Problem("ends_on", "the pattern must end on or after the day it starts"))
    elif span > MAX_SPAN_DAYS:
        out.append(
            Problem(
                "ends_on",
                f"at most {MAX_SPAN_DAYS} days after starts_on; make another pattern for what"
                " follows",
            )
        )
    if not 1 <= pattern.rotate_every_days <= MAX_SPAN_DAYS:
        out.append(Problem("rotate_every_days", f"give a number of days from 1 to {MAX_SPAN_DAYS}"))
    out += _slot_problems(pattern.slots, overlaps=overlaps)
    out += _team_problems(pattern.teams, len(pattern.slots))
    if not out and (n := shift_count(pattern)) > MAX_SHIFTS:
        out.append(
            Problem(
                "ends_on",
                f"the pattern would make {n} shifts, more than {MAX_SHIFTS}: shorten its span"
                " or its teams",
            )
        )
    return out


def _slot_problems(slots: Sequence[Slot], *, overlaps: bool) -> list[Problem]:
    if not slots:
        return [Problem("slots", "give at least one slot, e.g. 早 from 08:00 for 480 minutes")]
    if len(slots) > MAX_SLOTS:
        return [Problem("slots", f"at most {MAX_SLOTS} slots a day")]
    out: list[Problem] = []
    names: dict[str, int] = {}
    for i, s in enumerate(slots):
        if not s.name.strip() or len(s.name) > MAX_SLOT_NAME:
            out.append(
                Problem(f"slots[{i}].name", f"give a name of 1 to {MAX_SLOT_NAME} characters")
            )
        elif s.name in names:
            out.append(Problem(f"slots[{i}].name", f"slots[{names[s.name]}] has this name already"))
        names.setdefault(s.name, i)
        if not 1 <= s.minutes <= DAY_MINUTES:
            out.append(
                Problem(f"slots[{i}].minutes", f"a slot lasts 1 to {DAY_MINUTES} minutes (24 h)")
            )
    if out or not overlaps:
        return out
    for j, b in enumerate(slots):
        for i, a in enumerate(slots[:j]):
            if _overlap(a, b):
                out.append(
                    Problem(
                        f"slots[{j}].start",
                        f"overlaps slots[{i}] ({a.name} {a.start:%H:%M} for {a.minutes}"
                        " minutes); slots may touch, not overlap",
                    )
                )
                break
    return out


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


def _overlap(a: Slot, b: Slot) -> bool:
    """Whether the two slots overlap on some day (on the 24-hour circle)."""
    sa, sb = _minute(a.start), _minute(b.start)
    return any(
        sa < sb + shift + b.minutes and sb + shift < sa + a.minutes
        for shift in (-DAY_MINUTES, 0, DAY_MINUTES)
    )


def _team_problems(teams: Sequence[Sequence[int]], slots: int) -> list[Problem]:
    if len(teams) > MAX_TEAMS:
        return [Problem("teams", f"at most {MAX_TEAMS} teams")]
    if len(teams) < max(slots, 1):
        return [
            Problem(
                "teams",
                f"give at least as many teams as slots ({slots}), so that no team holds two"
                " slots of one day",
            )
        ]
    out: list[Problem] = []
    for i, team in enumerate(teams):
        if not team:
            out.append(Problem(f"teams[{i}]", "a team needs at least one person"))
        elif len(team) > MAX_TEAM_SIZE:
            out.append(Problem(f"teams[{i}]", f"at most {MAX_TEAM_SIZE} people a team"))
        seen: set[int] = set()
        for j, person in enumerate(team):
            if person in seen:
                out.append(Problem(f"teams[{i}][{j}]", "this person is in the team already"))
            seen.add(person)
    return out


def team_of(pattern: Pattern, day: date, slot: int) -> int:
    """The index of the team holding slot number ``slot`` on ``day`` (a day of the pattern)."""
    period = (day - pattern.starts_on).days // pattern.rotate_every_days
    return (slot + period) % len(pattern.teams)


def shift_count(pattern: Pattern) -> int:
    """How many shifts the pattern makes over its whole span (one per person and slot held)."""
    days = (pattern.ends_on - pattern.starts_on).days + 1
    if days <= 0 or not pattern.teams:
        return 0
    sizes = [len(t) for t in pattern.teams]
    n = len(sizes)
    total = 0
    for d in range(days):
        period = d // pattern.rotate_every_days
        total += sum(sizes[(k + period) % n] for k in range(len(pattern.slots)))
    return total


def shifts(pattern: Pattern, start: datetime, end: datetime) -> list[PatternShift]:
    """The shifts of a valid ``pattern`` that overlap [``start``, ``end``) (timezone-aware),
    ordered by start, then by slot and the order of people in the team; times in UTC.

    The whole pattern: ``shifts(p, datetime.min.replace(tzinfo=UTC),
    datetime.max.replace(tzinfo=UTC))``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("'start' and 'end' must be timezone-aware")
    if end <= start:
        return []
    # A slot of Beijing day d starts from d-1 16:00 UTC and ends by d+1 16:00 UTC.
    first, last = pattern.starts_on, pattern.ends_on
    low, high = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    if low > first + timedelta(days=2):
        first = low - timedelta(days=2)
    if high < last - timedelta(days=1):
        last = high + timedelta(days=1)
    out: list[tuple[datetime, int, int, PatternShift]] = []
    day = first
    while day <= last:
        for k, slot in enumerate(pattern.slots):
            starts = datetime.combine(day, slot.start, BEIJING).astimezone(UTC)
            ends = starts + timedelta(minutes=slot.minutes)
            if starts < end and start < ends:
                team = team_of(pattern, day, k)
                for i, person in enumerate(pattern.teams[team]):
                    out.append(
                        (starts, k, i, PatternShift(person, starts, ends, slot.name, day, team))
                    )
        day += timedelta(days=1)
    out.sort(key=lambda x: x[:3])
    return [s for *_, s in out]
