"""Lifecycle: what a new work order owes, and by when (pure).

Deadlines come from the list entry's limits, each on its own calendar: calendar minutes for
safety events, working hours or working days (nights, weekends and holidays excluded) for
ordinary repairs. Escalation steps are scheduled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.workcalendar import Unit
from responsibility.model import Entry, Limit


class Calendar(Protocol):
    """What deadlines need of a working calendar (``core.workcalendar.WorkCalendar``)."""

    def add(self, start: datetime, value: float, unit: Unit) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Plan:
    response_due: datetime | None
    arrival_due: datetime | None
    resolution_due: datetime
    escalation: tuple[tuple[int, str, datetime], ...]  # (step, party to notify, due)


def plan(entry: Entry, opened_at: datetime, cal: Calendar) -> Plan:
    def due(limit: Limit) -> datetime:
        return cal.add(opened_at, float(limit.value), limit.unit)

    lim = entry.limits
    steps = tuple(
        (i + 1, str(step.notify), due(step.after)) for i, step in enumerate(entry.escalation)
    )
    return Plan(
        None if lim.response is None else due(lim.response),
        None if lim.arrival is None else due(lim.arrival),
        due(lim.resolution),
        steps,
    )


_SECONDS_PER_UNIT = {Unit.CALENDAR_MINUTES: 60.0, Unit.WORKING_HOURS: 3600.0}


def limit_seconds(limit: Limit, hours_per_day: float) -> float:
    """A limit as seconds of elapsed time, for in-memory timers (working time counted as
    elapsed time: an upper bound's approximation, used only for severity raises). A working
    day is ``hours_per_day`` hours (the calendar's :attr:`WorkCalendar.hours_per_day`)."""
    if limit.unit == Unit.WORKING_DAYS:
        return float(limit.value) * hours_per_day * 3600.0
    return float(limit.value) * _SECONDS_PER_UNIT[limit.unit]
