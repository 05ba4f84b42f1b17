"""Shared: the loaded holiday schedules in the database (I/O around :mod:`core.holiday_schedule`).

The SQL is here once; the command line runs it on a sync connection and the API on an async one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from core.db import Conn
from core.holiday_schedule import ScheduleError, StatutorySchedules, YearSchedule, parse_schedule
from core.workcalendar import WorkCalendar, configured

log = logging.getLogger("shouwang.calendar")

# Taken first in the loading transaction, so two loads of one year cannot pick the same version.
LOCK_SQL: Final = "LOCK TABLE holiday_schedules IN SHARE ROW EXCLUSIVE MODE"

# Insert the schedule as the year's next version, unless the newest version has the same content:
# then nothing is inserted and the newest version is returned with created = false.
STORE_SQL: Final = """
WITH newest AS (
    SELECT year, version, digest, notice, source, loaded_by, loaded_at FROM holiday_schedules
    WHERE year = %(year)s ORDER BY version DESC LIMIT 1
), inserted AS (
    INSERT INTO holiday_schedules (year, version, digest, notice, content, source, loaded_by)
    SELECT %(year)s, coalesce((SELECT version FROM newest), 0) + 1, %(digest)s, %(notice)s,
        %(content)s, %(source)s, %(by)s
    WHERE NOT EXISTS (SELECT 1 FROM newest WHERE digest = %(digest)s)
    RETURNING year, version, digest, notice, source, loaded_by, loaded_at
)
SELECT year, version, digest, notice, source, loaded_by, loaded_at, true AS created FROM inserted
UNION ALL
SELECT year, version, digest, notice, source, loaded_by, loaded_at, false FROM newest
WHERE NOT EXISTS (SELECT 1 FROM inserted)
"""

IN_FORCE_SQL: Final = (
    "SELECT DISTINCT ON (year) year, version, content FROM holiday_schedules"
    " ORDER BY year, version DESC"
)

VERSIONS_SQL: Final = (
    "SELECT year, version, digest, notice, source, loaded_by, loaded_at FROM holiday_schedules"
    " WHERE year = %(year)s ORDER BY version DESC"
)

# Changes whenever a schedule is loaded: cheap to poll.
FINGERPRINT_SQL: Final = "SELECT coalesce(max(id), 0) FROM holiday_schedules"


@dataclass(frozen=True, slots=True)
class Stored:
    year: int
    version: int
    digest: str
    notice: str
    source: str
    loaded_by: str
    loaded_at: datetime
    created: bool


def store_params(schedule: YearSchedule, content: str, source: str, by: str) -> dict[str, object]:
    return {
        "year": schedule.year,
        "digest": schedule.digest,
        "notice": schedule.notice.title,
        "content": content,
        "source": source,
        "by": by,
    }


def store(conn: Conn, schedule: YearSchedule, content: str, source: str, by: str) -> Stored:
    """Keep a parsed schedule as its year's next version (or find it already in force)."""
    with conn.transaction():
        conn.execute(LOCK_SQL)
        row = conn.execute(STORE_SQL, store_params(schedule, content, source, by)).fetchone()
    assert row is not None
    return Stored(*row)


def parse_stored(rows: list[tuple[int, int, str]]) -> StatutorySchedules:
    """The schedules in force from ``IN_FORCE_SQL`` rows. Each was checked when it was loaded;
    one that no longer parses (the format changed) is left out, loudly."""
    out: list[YearSchedule] = []
    for year, version, content in rows:
        try:
            out.append(parse_schedule(content, f"holiday schedule {year} v{version}"))
        except ScheduleError as e:
            log.error("the stored %d holiday schedule is not used: %s", year, e)
    return StatutorySchedules(tuple(out))


def in_force(conn: Conn) -> StatutorySchedules:
    return parse_stored(conn.execute(IN_FORCE_SQL).fetchall())


def fingerprint(conn: Conn) -> int:
    row = conn.execute(FINGERPRINT_SQL).fetchone()
    return int(row[0]) if row else 0


def calendar_in_force(conn: Conn, base: WorkCalendar | Path | None) -> WorkCalendar:
    """The county's calendar (a calendar, its file, or None for the default) with the loaded
    holiday schedules: the one answer to "which working days are in force"."""
    if not isinstance(base, WorkCalendar):
        base = configured(base)
    return base.with_schedules(in_force(conn))
