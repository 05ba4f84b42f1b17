"""API: repeating duty-roster patterns (``lifecycle.roster_patterns``), a community's roster by
day, and handing a shift over to someone else.

A pattern's shifts are written as ``duty_shifts`` rows (with the pattern and the slot's name) in
the transaction that creates or changes the pattern, so who is on duty, and who notify tells of
an alarm, follows them like any shift. Changing a pattern replaces its shifts that have not
started yet; deleting it removes those. Shifts that have started are history and stay.
Scope as for single shifts (``api/routes/shifts.py``): a firm manages its own communities, with
its own people (and, for ``maintenance_staff``, those of the units maintaining the community).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Query, Response
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal
from api.errors import ERROR_RESPONSES, ApiError, FieldError, invalid, not_found
from api.fields import Id, Label, OptId, RefId
from api.pagination import Page, Paging, page
from api.queries import fetch_all, fetch_found, scalar
from api.routes.people import PersonRole
from api.scope import Action, Where, require
from lifecycle import roster_patterns as rules

router = APIRouter(tags=["duty roster"], responses=ERROR_RESPONSES)
MAX_ROSTER_DAYS: Final = 92
_EVER: Final = datetime.max.replace(tzinfo=UTC)


class SlotSpec(BaseModel):
    name: str = Field(max_length=rules.MAX_SLOT_NAME, examples=["早"])
    start: str = Field(
        max_length=16, description='Beijing wall-clock start, "HH:MM"', examples=["07:00"]
    )
    minutes: int = Field(description="how long, 1 to 1440 (may cross midnight)", examples=[480])


class PatternIn(BaseModel):
    community_id: RefId
    role: PersonRole = "duty_staff"
    name: Label = ""
    starts_on: date = Field(description="the first day (Beijing local date)")
    ends_on: date = Field(description="the last day whose slots are held, at most 366 days on")
    rotate_every_days: int = Field(description="the teams move on to the next slot this often")
    slots: list[SlotSpec] = Field(max_length=rules.MAX_SLOTS)
    teams: list[Annotated[list[RefId], Field(max_length=rules.MAX_TEAM_SIZE)]] = Field(
        max_length=rules.MAX_TEAMS,
        description="person ids; slot k of rotation period p is held by team (k + p) mod teams",
    )


class RosterPattern(PatternIn):
    id: int
    created_at: datetime
    updated_at: datetime


class RosterShift(BaseModel):
    """A shift as the roster shows it: made by a pattern (its id and slot) or single (null)."""

    id: int
    community_id: int
    role: str
    person_id: int
    starts_at: datetime
    ends_at: datetime
    pattern_id: int | None
    slot: str | None


class HandoverIn(BaseModel):
    person_id: RefId


class RosterEntry(RosterShift):
    person_name: str
    person_active: bool


class RosterDay(BaseModel):
    date: date
    shifts: list[RosterEntry]


class Roster(BaseModel):
    community_id: int
    days: list[RosterDay]


_SELECT = (
    "SELECT r.id, r.community_id, r.role, r.name, r.starts_on, r.ends_on, r.rotate_every_days,"
    " r.slots, r.teams, r.created_at, r.updated_at FROM roster_patterns r"
    " WHERE r.deleted_at IS NULL AND "
)
_SHIFT = (
    "SELECT s.id, s.community_id, s.role, s.person_id, s.starts_at, s.ends_at, s.pattern_id,"
    " s.slot FROM duty_shifts s WHERE "
)
# The people who may hold a role for a community: active, of that role, and the community's
# firm's (maintenance staff: of a unit maintaining it).
_ELIGIBLE = (
    "SELECT pe.id FROM people pe JOIN communities c ON c.id = %(community)s"
    " WHERE pe.id = ANY(%(ids)s) AND pe.active AND pe.role = %(role)s"
    " AND (pe.firm_id = c.firm_id OR (pe.role = 'maintenance_staff' AND pe.unit_id IN"
    "  (SELECT maintenance_unit_id FROM community_maintenance_units WHERE community_id = c.id"
    "   UNION SELECT maintenance_unit_id FROM devices WHERE community_id = c.id)))"
    " AND "
)


def _checked(body: PatternIn) -> rules.Pattern:
    """The pattern, or 422 naming every field to fix."""
    try:
        return rules.build(
            community_id=body.community_id,
            role=body.role,
            starts_on=body.starts_on,
            ends_on=body.ends_on,
            slots=[(s.name, s.start, s.minutes) for s in body.slots],
            teams=body.teams,
            rotate_every_days=body.rotate_every_days,
        )
    except rules.InvalidPattern as e:
        fields = [FieldError(field=f"body.{x.field}", message=x.message) for x in e.problems]
        names = ", ".join(dict.fromkeys(f.field for f in fields))
        raise ApiError(422, "invalid", f"the pattern is not valid: {names}", fields) from None


async def _check_people(db: Db, p: Principal, pattern: rules.Pattern) -> None:
    """422 unless the community is the caller's and every person may hold the role there."""
    if not p.sees_community(pattern.community_id) or not await scalar(
        db, "SELECT 1 FROM communities WHERE id = %s", (pattern.community_id,)
    ):
        raise invalid("body.community_id", "no such community in your scope")
    ids = sorted({person for team in pattern.teams for person in team})
    w = scope.people(Where(), p)
    cur = await db.execute(
        sql.SQL(_ELIGIBLE) + w.sql(),
        {**w.params, "community": pattern.community_id, "ids": ids, "role": pattern.role},
    )
    found = {int(r[0]) for r in await cur.fetchall()}
    for i, team in enumerate(pattern.teams):
        for j, person in enumerate(team):
            if person not in found:
                raise invalid(f"body.teams[{i}][{j}]", _not_eligible(pattern.role, person))


def _not_eligible(role: str, person: int) -> str:
    whose = "this community's firm" + (
        " or a unit maintaining it" if role == "maintenance_staff" else ""
    )
    return f"no active {role} of {whose} with id {person}"


async def _write_shifts(db: Db, pattern_id: int, pattern: rules.Pattern, after: datetime) -> int:
    """Insert the pattern's shifts that start after ``after``; how many."""
    made = [s for s in rules.shifts(pattern, after, _EVER) if s.starts_at > after]
    if made:
        await db.execute(
            "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at,"
            " pattern_id, slot)"
            " SELECT %s, %s, u.person, u.starts_at, u.ends_at, %s, u.slot"
            " FROM unnest(%s::int[], %s::timestamptz[], %s::timestamptz[], %s::text[])"
            " AS u(person, starts_at, ends_at, slot)",
            (
                pattern.community_id,
                pattern.role,
                pattern_id,
                [s.person_id for s in made],
                [s.starts_at for s in made],
                [s.ends_at for s in made],
                [s.slot for s in made],
            ),
        )
    return len(made)


def _values(body: PatternIn) -> dict[str, object]:
    return {
        "community_id": body.community_id,
        "role": body.role,
        "name": body.name,
        "starts_on": body.starts_on,
        "ends_on": body.ends_on,
        "rotate_every_days": body.rotate_every_days,
        "slots": Jsonb([s.model_dump() for s in body.slots]),
        "teams": Jsonb(body.teams),
    }


async def _one(db: Db, p: Principal, pattern_id: int, *, lock: bool = False) -> RosterPattern:
    w = scope.communities(Where().add("r.id = %(id)s", id=pattern_id), p, "r.community_id")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" FOR UPDATE" if lock else "")
    return await fetch_found(db, RosterPattern, "roster pattern", q, w.params)


@router.get("/roster-patterns", response_model=Page[RosterPattern])
async def list_patterns(
    db: Db,
    p: Caller,
    paging: Paging,
    community_id: OptId = None,
    role: Annotated[PersonRole | None, Query()] = None,
) -> Page[RosterPattern]:
    require(p, Action.READ_ROSTER)
    w = scope.communities(Where(), p, "r.community_id")
    w.add_if(community_id, "r.community_id = %(community)s", "community")
    w.add_if(role, "r.role = %(role)s", "role")
    w.add_if(paging.after_id(), "r.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY r.id LIMIT %(n)s")
    rows = await fetch_all(db, RosterPattern, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


@router.get("/roster-patterns/{pattern_id}")
async def get_pattern(db: Db, p: Caller, pattern_id: Id) -> RosterPattern:
    require(p, Action.READ_ROSTER)
    return await _one(db, p, pattern_id)


@router.post("/roster-patterns", status_code=201)
async def create_pattern(db: Db, p: Caller, body: PatternIn) -> RosterPattern:
    """Roster a role by a repeating pattern: every shift of its span is written at once (the
    past days' too, as single shifts may be). 422 names each field to fix."""
    require(p, Action.WRITE_ROSTER)
    pattern = _checked(body)
    await _check_people(db, p, pattern)
    async with db.transaction():
        pid = int(
            await scalar(
                db,
                "INSERT INTO roster_patterns (community_id, role, name, starts_on, ends_on,"
                " rotate_every_days, slots, teams) VALUES (%(community_id)s, %(role)s,"
                " %(name)s, %(starts_on)s, %(ends_on)s, %(rotate_every_days)s, %(slots)s,"
                " %(teams)s) RETURNING id",
                _values(body),
            )
        )
        await _write_shifts(db, pid, pattern, datetime.min.replace(tzinfo=UTC))
    return await _one(db, p, pid)


@router.put("/roster-patterns/{pattern_id}")
async def replace_pattern(db: Db, p: Caller, pattern_id: Id, body: PatternIn) -> RosterPattern:
    """Change a pattern: its shifts that have not started yet are replaced by the new
    pattern's (handovers among them too); those that have started stay as they are."""
    require(p, Action.WRITE_ROSTER)
    await _one(db, p, pattern_id)
    pattern = _checked(body)
    await _check_people(db, p, pattern)
    now = datetime.now(UTC)
    async with db.transaction():
        await _one(db, p, pattern_id, lock=True)  # one change at a time
        await db.execute(
            "UPDATE roster_patterns SET community_id = %(community_id)s, role = %(role)s,"
            " name = %(name)s, starts_on = %(starts_on)s, ends_on = %(ends_on)s,"
            " rotate_every_days = %(rotate_every_days)s, slots = %(slots)s, teams = %(teams)s,"
            " updated_at = clock_timestamp() WHERE id = %(id)s",
            {**_values(body), "id": pattern_id},
        )
        await db.execute(
            "DELETE FROM duty_shifts WHERE pattern_id = %s AND starts_at > %s", (pattern_id, now)
        )
        await _write_shifts(db, pattern_id, pattern, now)
    return await _one(db, p, pattern_id)


@router.delete("/roster-patterns/{pattern_id}", status_code=204)
async def delete_pattern(db: Db, p: Caller, pattern_id: Id) -> Response:
    """Stop a pattern: its shifts that have not started yet go; those that have stay."""
    require(p, Action.WRITE_ROSTER)
    await _one(db, p, pattern_id)
    async with db.transaction():
        await _one(db, p, pattern_id, lock=True)
        await db.execute(
            "DELETE FROM duty_shifts WHERE pattern_id = %s AND starts_at > %s",
            (pattern_id, datetime.now(UTC)),
        )
        await db.execute(
            "UPDATE roster_patterns SET deleted_at = clock_timestamp() WHERE id = %s",
            (pattern_id,),
        )
    return Response(status_code=204)


@router.post("/shifts/{shift_id}/handover")
async def hand_over(db: Db, p: Caller, shift_id: Id, body: HandoverIn) -> RosterShift:
    """Give a shift (a pattern's or a single one) to another person of the same role who may
    hold it; the audit log records who moved it. A shift not started yet moves whole; one in
    progress is split at now: its holder keeps it until now, the new person holds the rest
    (answered: the new person's shift). One that is over is 409 ``shift_over``."""
    require(p, Action.WRITE_ROSTER)
    w = scope.communities(Where().add("s.id = %(id)s", id=shift_id), p, "s.community_id")
    shift = await fetch_found(db, RosterShift, "shift", sql.SQL(_SHIFT) + w.sql(), w.params)
    now = datetime.now(UTC)
    if shift.ends_at <= now:
        raise ApiError(409, "shift_over", f"shift {shift_id} is over; history is not changed")
    if body.person_id == shift.person_id:
        raise invalid("body.person_id", "this person holds the shift already")
    people = scope.people(Where(), p)
    if not await scalar(
        db,
        sql.SQL(_ELIGIBLE) + people.sql(),
        {
            **people.params,
            "community": shift.community_id,
            "ids": [body.person_id],
            "role": shift.role,
        },
    ):
        raise invalid("body.person_id", _not_eligible(shift.role, body.person_id))
    async with db.transaction():
        if shift.starts_at > now:
            new_id = shift_id
            await db.execute(
                "UPDATE duty_shifts SET person_id = %s WHERE id = %s", (body.person_id, shift_id)
            )
        else:
            await db.execute("UPDATE duty_shifts SET ends_at = %s WHERE id = %s", (now, shift_id))
            new_id = int(
                await scalar(
                    db,
                    "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at,"
                    " pattern_id, slot) SELECT community_id, role, %s, %s, %s, pattern_id, slot"
                    " FROM duty_shifts WHERE id = %s RETURNING id",
                    (body.person_id, now, shift.ends_at, shift_id),
                )
            )
    return await fetch_found(db, RosterShift, "shift", _SHIFT + "s.id = %s", (new_id,))


@router.get("/communities/{community_id}/roster")
async def get_roster(
    db: Db,
    p: Caller,
    community_id: Id,
    first: Annotated[
        date | None, Query(alias="from", description="first day (Beijing); default today")
    ] = None,
    last: Annotated[
        date | None, Query(alias="to", description="last day, included; default from + 6")
    ] = None,
    role: Annotated[PersonRole | None, Query()] = None,
) -> Roster:
    """Who holds which slot each day (Beijing dates; a shift is listed on the day it starts):
    the patterns' shifts with their slot, single shifts with ``slot`` null."""
    require(p, Action.READ_ROSTER)
    if not p.sees_community(community_id) or not await scalar(
        db, "SELECT 1 FROM communities WHERE id = %s", (community_id,)
    ):
        raise not_found("community")
    for name, day in (("from", first), ("to", last)):
        if day is not None and not rules.FIRST_YEAR <= day.year <= rules.LAST_YEAR:
            raise invalid(
                f"query.{name}", f"give a day in the years {rules.FIRST_YEAR}-{rules.LAST_YEAR}"
            )
    first = first or datetime.now(rules.BEIJING).date()
    last = last or first + timedelta(days=6)
    if last < first:
        raise invalid("query.to", "give a day on or after 'from'")
    if (last - first).days >= MAX_ROSTER_DAYS:
        raise invalid("query.to", f"at most {MAX_ROSTER_DAYS} days at a time")
    start = datetime.combine(first, datetime.min.time(), rules.BEIJING)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), rules.BEIJING)
    w = Where().add(
        "s.community_id = %(c)s AND s.starts_at >= %(a)s AND s.starts_at < %(b)s",
        c=community_id,
        a=start,
        b=end,
    )
    w.add_if(role, "s.role = %(role)s", "role")
    rows = await fetch_all(
        db,
        RosterEntry,
        sql.SQL(
            "SELECT s.id, s.community_id, s.role, s.person_id, s.starts_at, s.ends_at,"
            " s.pattern_id, s.slot, pe.name AS person_name, pe.active AS person_active"
            " FROM duty_shifts s JOIN people pe ON pe.id = s.person_id WHERE "
        )
        + w.sql()
        + sql.SQL(" ORDER BY s.starts_at, s.role, s.slot NULLS LAST, s.id"),
        w.params,
    )
    days = [
        RosterDay(date=first + timedelta(days=d), shifts=[]) for d in range((last - first).days + 1)
    ]
    for r in rows:
        days[(r.starts_at.astimezone(rules.BEIJING).date() - first).days].shifts.append(r)
    return Roster(community_id=community_id, days=days)
