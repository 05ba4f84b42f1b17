"""API: the people of the duty roster and of the platform operators' roster, and how to reach them
(contact channels)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from psycopg import sql
from pydantic import BaseModel, Field

from api import scope
from api.deps import Caller, Db, Principal, blocking
from api.errors import ERROR_RESPONSES, ApiError, invalid, not_found
from api.fields import Id, Name, OptId, RefId
from api.pages.passwords import PasswordRule
from api.pages.sessions import set_password
from api.pagination import Page, Paging, page
from api.queries import assignments, fetch_all, fetch_found, scalar
from api.scope import Action, Where, may, require
from core.channel_addresses import (
    HTTP_KINDS,
    AddressPolicy,
    BadAddress,
    BadSecret,
    Refused,
    check_address,
    check_secret,
    shown,
    target,
)
from core.db import Conn

router = APIRouter(tags=["duty roster"], responses=ERROR_RESPONSES)
PersonRole = Literal[
    "duty_staff",
    "project_manager",
    "firm_manager",
    "maintenance_staff",
    "township_supervisor",
    "county_supervisor",
]
# Who runs the platform itself (the county's IT contact, the vendor's on-call): no firm, unit or
# region; only the county regulator and platform operators add them (api/routes/platform.py).
AnyPersonRole = Literal[PersonRole, "platform_operator"]
Language = Literal["zh", "en"]
ChannelKind = Literal["webhook", "wecom", "dingtalk", "email", "mqtt", "sms", "voice"]
_FIRM_ROLES = ("duty_staff", "project_manager", "firm_manager")
RESOLVE_WAIT_S = 3.0  # the longest a channel write waits for its host name to resolve
_PLATFORM = "platform_operator"


class Channel(BaseModel):
    id: int
    kind: str
    address: str
    has_secret: bool


class ChannelIn(BaseModel):
    kind: ChannelKind
    address: Annotated[str, Field(min_length=1, max_length=500)]
    secret: Annotated[str, Field(min_length=1, max_length=500)] | None = Field(
        default=None,
        description="signing secret, never shown again: a webhook's is required, a Standard"
        " Webhooks secret (whsec_ + base64 of 24 to 64 random bytes); a DingTalk robot's its"
        " SEC… secret",
    )


class Person(BaseModel):
    id: int
    name: str
    role: str
    firm_id: int | None
    unit_id: int | None
    region_id: int | None
    language: str
    active: bool


class PersonDetail(Person):
    channels: list[Channel]


class PersonIn(BaseModel):
    name: Name
    role: AnyPersonRole
    firm_id: RefId | None = None
    unit_id: RefId | None = None
    region_id: RefId | None = None
    language: Language = "zh"


class PersonPatch(BaseModel):
    name: Name | None = None
    role: AnyPersonRole | None = None
    language: Language | None = None
    active: bool | None = None


_SELECT = (
    "SELECT pe.id, pe.name, pe.role, pe.firm_id, pe.unit_id, pe.region_id, pe.language,"
    " pe.active FROM people pe WHERE "
)


@router.get("/people", response_model=Page[Person])
async def list_people(
    db: Db,
    p: Caller,
    paging: Paging,
    role: Annotated[AnyPersonRole | None, Query()] = None,
    firm_id: OptId = None,
    active: Annotated[bool | None, Query()] = None,
) -> Page[Person]:
    require(p, Action.READ_ROSTER, Action.READ_PLATFORM)
    w = scope.people(Where(), p)
    w.add_if(role, "pe.role = %(role)s", "role")
    w.add_if(firm_id, "pe.firm_id = %(firm)s", "firm")
    w.add_if(active, "pe.active = %(active)s", "active")
    w.add_if(paging.after_id(), "pe.id > %(after)s", "after")
    q = sql.SQL(_SELECT) + w.sql() + sql.SQL(" ORDER BY pe.id LIMIT %(n)s")
    rows = await fetch_all(db, Person, q, {**w.params, "n": paging.limit + 1})
    return page(rows, paging.limit, lambda r: (r.id,))


async def _one(db: Db, p: Principal, person_id: int, *, write: bool = False) -> Person:
    w = Where().add("pe.id = %(id)s", id=person_id)
    (scope.people_writable if write else scope.people)(w, p)
    return await fetch_found(db, Person, "person", sql.SQL(_SELECT) + w.sql(), w.params)


@router.get("/people/{person_id}")
async def get_person(db: Db, p: Caller, person_id: Id) -> PersonDetail:
    require(p, Action.READ_ROSTER, Action.READ_PLATFORM)
    person = await _one(db, p, person_id)
    channels = await fetch_all(
        db,
        Channel,
        "SELECT id, kind, address, secret IS NOT NULL AS has_secret FROM contact_channels"
        " WHERE person_id = %s ORDER BY id",
        (person_id,),
    )
    if any(c.kind in HTTP_KINDS for c in channels) and not await _manages(db, p, person_id):
        # A webhook's or robot's URL is a credential: scheme and host only.
        channels = [
            c.model_copy(update={"address": shown(c.address)}) if c.kind in HTTP_KINDS else c
            for c in channels
        ]
    return PersonDetail(**person.model_dump(), channels=channels)


async def _manages(db: Db, p: Principal, person_id: int) -> bool:
    """Whether the caller may change this person (and so see their channels' addresses)."""
    if not (may(p, Action.WRITE_ROSTER) or may(p, Action.WRITE_PLATFORM_ROSTER)):
        return False
    w = scope.people_writable(Where().add("pe.id = %(id)s", id=person_id), p)
    return bool(await scalar(db, sql.SQL("SELECT 1 FROM people pe WHERE ") + w.sql(), w.params))


def _own_scope(p: Principal, body: PersonIn) -> PersonIn:
    """A firm admin adds its firm's staff, a unit its own, a platform operator platform operators;
    the regulator anyone."""
    if _PLATFORM in (body.role, p.role):
        return _platform_operator(p, body)
    if p.role == "county_regulator":
        return body
    if p.role == "maintenance_unit":
        if body.role != "maintenance_staff":
            raise invalid("body.role", "a maintenance unit adds maintenance_staff")
        return body.model_copy(update={"unit_id": p.maintenance_unit_id, "firm_id": None})
    if body.role not in _FIRM_ROLES:
        raise invalid("body.role", f"a firm adds one of: {', '.join(_FIRM_ROLES)}")
    return body.model_copy(update={"firm_id": p.firm_id, "unit_id": None, "region_id": None})


def _platform_operator(p: Principal, body: PersonIn) -> PersonIn:
    if p.role not in ("county_regulator", _PLATFORM):
        raise invalid(
            "body.role", "only the county regulator or a platform operator adds platform_operator"
        )
    if body.role != _PLATFORM:
        raise invalid("body.role", "a platform operator adds platform_operator people only")
    for field in ("firm_id", "unit_id", "region_id"):
        if getattr(body, field) is not None:
            raise invalid(
                f"body.{field}",
                "a platform_operator belongs to no firm, unit or region: leave it out",
            )
    return body


@router.post("/people", status_code=201)
async def create_person(db: Db, p: Caller, body: PersonIn) -> PersonDetail:
    require(p, Action.WRITE_ROSTER, Action.WRITE_PLATFORM_ROSTER)
    body = _own_scope(p, body)
    for field, table in (("firm_id", "firms"), ("unit_id", "maintenance_units")):
        value = getattr(body, field)
        query = sql.SQL("SELECT 1 FROM {} WHERE id = %s").format(sql.Identifier(table))
        if value is not None and not await scalar(db, query, (value,)):
            raise invalid(f"body.{field}", "no such record")
    if body.region_id is not None and not await scalar(
        db, "SELECT 1 FROM regions WHERE id = %s", (body.region_id,)
    ):
        raise invalid("body.region_id", "no such region")
    pid = await scalar(
        db,
        "INSERT INTO people (name, role, firm_id, unit_id, region_id, language)"
        " VALUES (%(name)s, %(role)s, %(firm_id)s, %(unit_id)s, %(region_id)s, %(language)s)"
        " RETURNING id",
        body.model_dump(),
    )
    return await get_person(db, p, int(pid))


@router.patch("/people/{person_id}")
async def update_person(db: Db, p: Caller, person_id: Id, body: PersonPatch) -> PersonDetail:
    """Change a person; ``active: false`` takes them off every notification."""
    require(p, Action.WRITE_ROSTER, Action.WRITE_PLATFORM_ROSTER)
    person = await _one(db, p, person_id, write=True)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "role" in changes and (changes["role"] == _PLATFORM) != (person.role == _PLATFORM):
        raise invalid(
            "body.role",
            "no one becomes or stops being a platform_operator by a change: add a new person"
            " (and set this one inactive)",
        )
    if "role" in changes and p.role not in ("county_regulator", _PLATFORM):
        allowed = ("maintenance_staff",) if p.role == "maintenance_unit" else _FIRM_ROLES
        if changes["role"] not in allowed:
            raise invalid("body.role", f"one of: {', '.join(allowed)}")
    if changes:
        await db.execute(
            sql.SQL("UPDATE people SET {} WHERE id = %(id)s").format(assignments(changes)),
            {**changes, "id": person_id},
        )
    return await get_person(db, p, person_id)


@router.post("/people/{person_id}/channels", status_code=201)
async def add_channel(
    request: Request, db: Db, p: Caller, person_id: Id, body: ChannelIn
) -> Channel:
    """Add a way to reach the person; the address is checked as notify will (docs/operations.md
    section 10, Addresses): 422 naming what to fix."""
    require(p, Action.WRITE_ROSTER, Action.WRITE_PLATFORM_ROSTER)
    await _one(db, p, person_id, write=True)
    policy = AddressPolicy.from_settings(request.app.state.settings)
    _check_channel(policy, body)
    await _check_resolved(policy, body)
    return await fetch_found(
        db,
        Channel,
        "person",
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, %s, %s, %s) RETURNING id, kind, address, secret IS NOT NULL AS has_secret",
        (person_id, body.kind, body.address, body.secret),
    )


def _refused(e: Refused) -> ApiError:
    return invalid(
        "body.address",
        f"{e}: notify does not send there (an operator can allow a network with"
        " SHOUWANG_NOTIFY_ALLOWED_NETWORKS)",
    )


async def _check_resolved(policy: AddressPolicy, body: ChannelIn) -> None:
    """A webhook's or robot's host name as it resolves now: refused when an address it has is
    not one notify may send to. A name that does not resolve (yet), or not within
    ``RESOLVE_WAIT_S``, is left to the send, which looks it up again in any case."""
    if body.kind not in HTTP_KINDS:
        return
    try:
        await asyncio.wait_for(
            asyncio.to_thread(target, body.kind, body.address, policy), RESOLVE_WAIT_S
        )
    except Refused as e:
        raise _refused(e) from None
    except BadAddress as e:
        raise invalid("body.address", str(e)) from None
    except (OSError, TimeoutError):
        pass


def _check_channel(policy: AddressPolicy, body: ChannelIn) -> None:
    if body.kind == "mqtt":
        raise invalid(
            "body.kind",
            "a duty-app channel is issued by the platform, never typed:"
            " `shouwang broker issue-duty-app PERSON_ID`",
        )
    try:
        check_address(body.kind, body.address, policy)
    except Refused as e:
        raise _refused(e) from None
    except BadAddress as e:
        raise invalid("body.address", str(e)) from None
    if body.kind == "webhook":
        try:
            check_secret(body.secret)
        except BadSecret as e:
            raise invalid("body.secret", str(e)) from None


@router.delete("/people/{person_id}/channels/{channel_id}", status_code=204)
async def remove_channel(db: Db, p: Caller, person_id: Id, channel_id: Id) -> Response:
    """Only a channel no delivery was logged on; otherwise deactivate the person."""
    require(p, Action.WRITE_ROSTER, Action.WRITE_PLATFORM_ROSTER)
    await _one(db, p, person_id, write=True)
    cur = await db.execute(
        "DELETE FROM contact_channels WHERE id = %s AND person_id = %s", (channel_id, person_id)
    )
    if cur.rowcount == 0:
        raise not_found("contact channel")
    return Response(status_code=204)


class LoginIn(BaseModel):
    phone: Annotated[str, Field(min_length=5, max_length=40)]
    password: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="never shown again; at least 10 characters, not the phone number"
    )


@router.put("/people/{person_id}/login", status_code=204)
async def set_login(request: Request, db: Db, p: Caller, person_id: Id, body: LoginIn) -> Response:
    """Give a person of the caller's (duty or maintenance staff) a phone number and password
    for the duty pages (docs/pages.md); their open page sessions end and any lock is lifted."""
    require(p, Action.WRITE_ROSTER)
    await _one(db, p, person_id, write=True)

    def run(c: Conn) -> None:
        set_password(c, person_id, body.phone, body.password, datetime.now(UTC))

    try:
        await blocking(request, run)
    except PasswordRule as e:
        raise invalid("body.password" if e.field == "password" else "body.phone", str(e)) from None
    return Response(status_code=204)
