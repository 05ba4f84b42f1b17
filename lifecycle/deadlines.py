"""Analytics: what a new work order owes, and by when (pure).

Deadlines come from the list entry's limits, each on its own calendar: calendar minutes for
safety events, working hours or working days (nights, weekends and holidays excluded) for
ordinary repairs. Escalation steps are scheduled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class Calendar(Protocol):
    def add(self, start: datetime, value: float, unit: Any) -> datetime: ...


@dataclass(frozen=True, slots=True)
class Plan:
    response_due: datetime | None
    arrival_due: datetime | None
    resolution_due: datetime
    escalation: tuple[tuple[int, str, datetime], ...]  # (step, party to notify, due)


def plan(entry: Any, opened_at: datetime, cal: Calendar) -> Plan:
    lim = entry.limits

    def due(limit: Any) -> datetime | None:
        return None if limit is None else cal.add(opened_at, float(limit.value), limit.unit)

    resolution = due(lim.resolution)
    assert resolution is not None
    steps = tuple(
        (i + 1, str(step.notify), cal.add(opened_at, float(step.after.value), step.after.unit))
        for i, step in enumerate(entry.escalation)
    )
    return Plan(due(lim.response), due(lim.arrival), resolution, steps)


def limit_seconds(limit: Any) -> float:
    """A limit as seconds of elapsed time, for in-memory timers (working time counted as
    elapsed time: an upper bound's approximation, used only for severity raises)."""
    factor = {"calendar_minutes": 60.0, "working_hours": 3600.0, "working_days": 8 * 3600.0}
    return float(limit.value) * factor[str(limit.unit)]
