"""API: the working calendar: where each year's working days come from, what is missing, and the
State Council's yearly holiday schedules (a county regulator loads them; kept in
``holiday_schedules``, every version, with who loaded it)."""

from __future__ import annotations

from datetime import date, datetime
from functools import partial
from typing import Final

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from api.deps import Caller, Db, blocking
from api.errors import ERROR_RESPONSES, RAW_BODY_RESPONSES, not_found
from api.queries import fetch_all
from api.scope import Action, require
from api.yaml_body import BODY, DocumentProblem, in_thread, problems, refused, yaml_text
from core.holiday_schedule import ScheduleError, YearSchedule, parse_schedule
from core.holiday_store import VERSIONS_SQL, Stored, calendar_in_force, store
from core.workcalendar import Source, WorkCalendar

router = APIRouter(tags=["working calendar"], responses=ERROR_RESPONSES)
SOURCE: Final = "schedule"
WHAT: Final = "a holiday schedule"


class Year(BaseModel):
    year: int
    source: Source
    days_off: int | None = None
    working_weekend_days: int | None = None
    notice: str | None = None


class MissingSchedule(BaseModel):
    year: int
    message: str


class CalendarState(BaseModel):
    today: date
    timezone: str
    years: list[Year]
    warnings: list[MissingSchedule]


class Version(BaseModel):
    year: int
    version: int
    digest: str
    notice: str
    source: str
    loaded_by: str
    loaded_at: datetime


class Loaded(Version):
    created: bool


class Holiday(BaseModel):
    name: str
    first: date
    last: date


class Workday(BaseModel):
    day: date
    reason: str | None


class Schedule(BaseModel):
    year: int
    notice: str
    number: str | None
    published: date | None
    holidays: list[Holiday]
    workdays: list[Workday]
    versions: list[Version]


class Check(BaseModel):
    valid: bool
    year: int | None
    digest: str | None
    errors: list[DocumentProblem]


async def _calendar(request: Request) -> WorkCalendar:
    path = request.app.state.settings.work_calendar
    return await blocking(request, lambda conn: calendar_in_force(conn, path))


def _year(cal: WorkCalendar, year: int) -> Year:
    found = [s for s in cal.schedules.schedules if s.year == year]
    if not found:
        return Year(year=year, source=cal.source(year))
    s = found[0]
    return Year(
        year=year,
        source=cal.source(year),
        days_off=len(s.days_off),
        working_weekend_days=len(s.workdays),
        notice=s.notice.title,
    )


@router.get("/calendar")
async def calendar_state(p: Caller, request: Request) -> CalendarState:
    """Where working days come from for last, this and next year (and every loaded year), and
    what is missing: from 60 days before a year ends, a missing schedule for the next year."""
    cal = await _calendar(request)
    today = datetime.now(cal.tz).date()
    years = sorted({today.year - 1, today.year, today.year + 1} | cal.schedules.years)
    return CalendarState(
        today=today,
        timezone=str(cal.tz),
        years=[_year(cal, y) for y in years],
        warnings=[MissingSchedule(year=w.year, message=w.message) for w in cal.warnings(today)],
    )


@router.get("/calendar/schedules/{year}")
async def get_schedule(db: Db, p: Caller, request: Request, year: int) -> Schedule:
    """The schedule in force for a year, with every version loaded."""
    cal = await _calendar(request)
    found = [s for s in cal.schedules.schedules if s.year == year]
    if not found:
        raise not_found(f"holiday schedule {year}")
    s = found[0]
    versions = await fetch_all(db, Version, VERSIONS_SQL, {"year": year})
    return Schedule(
        year=s.year,
        notice=s.notice.title,
        number=s.notice.number,
        published=s.notice.published,
        holidays=[Holiday(name=h.name, first=h.first, last=h.last) for h in s.holidays],
        workdays=[Workday(day=w.day, reason=w.reason) for w in s.workdays],
        versions=versions,
    )


def _check(text: str) -> tuple[YearSchedule | None, list[DocumentProblem]]:
    try:
        return parse_schedule(text, SOURCE), []
    except ScheduleError as e:
        return None, problems(e.errors)


@router.post("/calendar/schedules/validate", openapi_extra=BODY, responses=RAW_BODY_RESPONSES)
async def validate(p: Caller, request: Request) -> Check:
    """Check a schedule; every problem is reported with its line. Nothing is stored."""
    parsed, found = await in_thread(_check, await yaml_text(request, WHAT))
    return Check(
        valid=parsed is not None,
        year=parsed.year if parsed else None,
        digest=parsed.digest if parsed else None,
        errors=found,
    )


@router.post(
    "/calendar/schedules", status_code=201, openapi_extra=BODY, responses=RAW_BODY_RESPONSES
)
async def load(p: Caller, request: Request, response: Response) -> Loaded:
    """Load a year's schedule (county regulator). A schedule with problems is refused with all
    of them; a changed schedule becomes the year's next version (201); the same content again
    changes nothing (200). Analytics uses it within 30 s for work orders filed from then on."""
    require(p, Action.LOAD_CALENDAR)
    text = await yaml_text(request, WHAT)
    try:
        parsed = await in_thread(partial(parse_schedule, source=SOURCE), text)
    except ScheduleError as e:
        raise refused("invalid_schedule", "the schedule", e.errors) from None
    stored: Stored = await blocking(request, lambda conn: store(conn, parsed, text, "api", p.actor))
    if not stored.created:
        response.status_code = 200
    return Loaded(
        year=stored.year,
        version=stored.version,
        digest=stored.digest,
        notice=stored.notice,
        source=stored.source,
        loaded_by=stored.loaded_by,
        loaded_at=stored.loaded_at,
        created=stored.created,
    )
