"""API routes: what a firm publishes on its communities' notice boards (公示栏, migration 0031).

The public pages (``/board/{code}``, ``api/pages/board.py``) show it. A firm admin sets its own
communities' boards (another firm's community is not found, 404), the county regulator any;
everyone who reads the community may read its board. Every write is in the audit log
(``notice_boards``, ``notice_board_fees``, ``notice_board_contacts``, ``elevator_spending``),
named by the token. Only public items have a field: the project lead's name and public phone,
the complaint phone, service content and fees, the contact each maintenance unit under contract
gives for the community, and elevator maintenance spending per period.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from api.deps import Caller, Db, Principal
from api.errors import ERROR_RESPONSES, ApiError, invalid, not_found
from api.fields import Id
from api.pages import board_rules
from api.pages.board_rules import MAX_FEES, BoardRule, amount, label, public_phone
from api.queries import scalar
from api.scope import Action, require

router = APIRouter(tags=["notice board"], responses=ERROR_RESPONSES)

UnitKind = Literal["elevator", "fire", "water"]
FeeUnit = Literal[
    "m2_month", "household_month", "space_month", "month", "year", "visit", "hour", "kwh", "m3"
]


def _phone(raw: str) -> str:
    return public_phone(raw)


def _amount(raw: Decimal) -> Decimal:
    return amount(raw)


PublicPhone = Annotated[str, Field(max_length=40), AfterValidator(_phone)]
Yuan = Annotated[
    Decimal,
    Field(description="yuan, 0 or more, at most two decimals", examples=["1.80"]),
    AfterValidator(_amount),
]


def _text(min_length: int, max_length: int) -> object:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


PersonName = Annotated[str, _text(1, 50)]


class FeeIn(BaseModel):
    item_zh: Annotated[str, _text(1, 100)] = Field(description="e.g. 物业服务费")
    item_en: Annotated[str, _text(0, 200)] = ""
    amount_cny: Yuan
    unit: FeeUnit = Field(description="what the amount is per: m2_month is yuan/m² a month")
    note: Annotated[str, _text(0, 200)] = ""


class ContactIn(BaseModel):
    kind: UnitKind = Field(description="the maintenance unit under contract of this kind")
    name: PersonName = Field(description="the contact the unit gives for this community")
    phone: PublicPhone


class BoardIn(BaseModel):
    project_lead_name: PersonName = Field(description="the firm's project lead for the community")
    project_lead_phone: PublicPhone = Field(description="the project lead's public phone")
    complaint_phone: PublicPhone | None = Field(
        None, description="null: the firm's complaint phone"
    )
    service_content_zh: Annotated[str, _text(0, 1000)] = ""
    service_content_en: Annotated[str, _text(0, 2000)] = ""
    fees: list[FeeIn] = Field(default_factory=list, max_length=MAX_FEES)
    unit_contacts: list[ContactIn] = Field(default_factory=list, max_length=3)


class Fee(BaseModel):
    item_zh: str
    item_en: str
    amount_cny: float
    unit: str
    note: str


class Contact(BaseModel):
    kind: str
    maintenance_unit_id: int
    name: str
    phone: str


class NoticeBoard(BaseModel):
    community_id: int
    project_lead_name: str
    project_lead_phone: str
    complaint_phone: str | None
    service_content_zh: str
    service_content_en: str
    fees: list[Fee]
    unit_contacts: list[Contact]
    updated_at: datetime
    updated_by: str


class SpendingIn(BaseModel):
    amount_cny: Yuan
    note: Annotated[str, _text(0, 200)] = ""


class Spending(BaseModel):
    period: str = Field(description="2026-11, 2026Q3 or 2026")
    period_start: date
    period_end: date = Field(description="exclusive")
    amount_cny: float
    note: str
    updated_at: datetime
    updated_by: str


PeriodText = Annotated[
    str,
    Path(max_length=10, description="a month 2026-11, a quarter 2026Q3 or a year 2026"),
]


async def _community(db: Db, p: Principal, community_id: int, *, write: bool) -> int:
    """The community if the caller sees it (404 otherwise); ``write``: and may set its board
    (a firm admin its own firm's communities, the regulator any: 403 for other roles)."""
    if write:
        require(p, Action.WRITE_FIRMS)
    else:
        require(p, Action.READ_COMMUNITIES)
    if not p.sees_community(community_id):
        raise not_found("community")
    found = await scalar(db, "SELECT id FROM communities WHERE id = %s", (community_id,))
    if found is None:
        raise not_found("community")
    return int(found)


async def _board(db: Db, community_id: int) -> NoticeBoard:
    cur = await db.execute(
        "SELECT project_lead_name, project_lead_phone, complaint_phone, service_content_zh,"
        " service_content_en, updated_at, updated_by FROM notice_boards WHERE community_id = %s",
        (community_id,),
    )
    row = await cur.fetchone()
    if row is None:
        raise not_found("notice board for this community (none set yet: PUT one)")
    cur = await db.execute(
        "SELECT item_zh, item_en, amount_cny, unit, note FROM notice_board_fees"
        " WHERE community_id = %s ORDER BY position",
        (community_id,),
    )
    fees = [
        Fee(item_zh=a, item_en=b, amount_cny=float(c), unit=d, note=e)
        for a, b, c, d, e in await cur.fetchall()
    ]
    cur = await db.execute(
        "SELECT kind, maintenance_unit_id, contact_name, contact_phone FROM notice_board_contacts"
        " WHERE community_id = %s ORDER BY kind",
        (community_id,),
    )
    contacts = [
        Contact(kind=k, maintenance_unit_id=u, name=n, phone=ph)
        for k, u, n, ph in await cur.fetchall()
    ]
    lead, lead_phone, complaint, zh, en, at, by = row
    return NoticeBoard(
        community_id=community_id,
        project_lead_name=lead,
        project_lead_phone=lead_phone,
        complaint_phone=complaint,
        service_content_zh=zh,
        service_content_en=en,
        fees=fees,
        unit_contacts=contacts,
        updated_at=at,
        updated_by=by,
    )


@router.get("/communities/{community_id}/notice-board")
async def get_board(db: Db, p: Caller, community_id: Id) -> NoticeBoard:
    """What the community's public notice board shows (``/board/{code}``); 404 until set."""
    await _community(db, p, community_id, write=False)
    return await _board(db, community_id)


@router.put("/communities/{community_id}/notice-board")
async def put_board(db: Db, p: Caller, community_id: Id, body: BoardIn) -> NoticeBoard:
    """Set the whole board at once: the project lead and their public phone, the complaint
    phone (null: the firm's), service content, the fees in the order shown, and a contact for
    each maintenance unit under contract (by kind; the unit is the one under contract now).
    422 names the field to fix."""
    await _community(db, p, community_id, write=True)
    cur = await db.execute(
        "SELECT kind, maintenance_unit_id FROM community_maintenance_units WHERE community_id = %s",
        (community_id,),
    )
    contracted = {str(k): int(u) for k, u in await cur.fetchall()}
    seen: set[str] = set()
    for i, c in enumerate(body.unit_contacts):
        field = f"body.unit_contacts[{i}].kind"
        if c.kind in seen:
            raise invalid(field, f"{c.kind!r} is given twice; give one contact per kind")
        seen.add(c.kind)
        if c.kind not in contracted:
            raise invalid(
                field,
                f"this community has no {c.kind} maintenance unit under contract; register the"
                " contract first (community_maintenance_units) or leave this contact out",
            )
    async with db.transaction():
        await db.execute(
            "INSERT INTO notice_boards (community_id, project_lead_name, project_lead_phone,"
            " complaint_phone, service_content_zh, service_content_en, updated_at, updated_by)"
            " VALUES (%(c)s, %(lead)s, %(phone)s, %(complaint)s, %(zh)s, %(en)s,"
            " clock_timestamp(), %(by)s)"
            " ON CONFLICT (community_id) DO UPDATE SET project_lead_name = excluded.project_lead_name,"
            " project_lead_phone = excluded.project_lead_phone,"
            " complaint_phone = excluded.complaint_phone,"
            " service_content_zh = excluded.service_content_zh,"
            " service_content_en = excluded.service_content_en,"
            " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            {
                "c": community_id,
                "lead": body.project_lead_name,
                "phone": body.project_lead_phone,
                "complaint": body.complaint_phone,
                "zh": body.service_content_zh,
                "en": body.service_content_en,
                "by": p.actor,
            },
        )
        await db.execute("DELETE FROM notice_board_fees WHERE community_id = %s", (community_id,))
        for position, f in enumerate(body.fees, start=1):
            await db.execute(
                "INSERT INTO notice_board_fees (community_id, position, item_zh, item_en,"
                " amount_cny, unit, note) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (community_id, position, f.item_zh, f.item_en, f.amount_cny, f.unit, f.note),
            )
        await db.execute(
            "DELETE FROM notice_board_contacts WHERE community_id = %s", (community_id,)
        )
        for c in body.unit_contacts:
            await db.execute(
                "INSERT INTO notice_board_contacts (community_id, kind, maintenance_unit_id,"
                " contact_name, contact_phone) VALUES (%s, %s, %s, %s, %s)",
                (community_id, c.kind, contracted[c.kind], c.name, c.phone),
            )
    return await _board(db, community_id)


@router.delete("/communities/{community_id}/notice-board", status_code=204)
async def delete_board(db: Db, p: Caller, community_id: Id) -> Response:
    """Take the board's own items down (its fees and contacts with it); the public page then
    shows what the registry holds and says the rest is not published. Spending stays."""
    await _community(db, p, community_id, write=True)
    deleted = await scalar(
        db,
        "DELETE FROM notice_boards WHERE community_id = %s RETURNING community_id",
        (community_id,),
    )
    if deleted is None:
        raise not_found("notice board for this community")
    return Response(status_code=204)


def _period(text: str) -> tuple[str, date, date]:
    try:
        got = board_rules.period(text)
    except BoardRule as e:
        raise invalid("path.period", str(e)) from None
    return got.label, got.start, got.end


_SPENDING = (
    "SELECT period_start, period_end, amount_cny, note, updated_at, updated_by"
    " FROM elevator_spending WHERE community_id = %s"
)


def _spending(row: tuple[date, date, Decimal, str, datetime, str]) -> Spending:
    start, end, value, note, at, by = row
    return Spending(
        period=label(start, end),
        period_start=start,
        period_end=end,
        amount_cny=float(value),
        note=note,
        updated_at=at,
        updated_by=by,
    )


@router.get("/communities/{community_id}/elevator-spending")
async def list_spending(db: Db, p: Caller, community_id: Id) -> list[Spending]:
    """Elevator maintenance spending published for the community, newest period first."""
    await _community(db, p, community_id, write=False)
    cur = await db.execute(_SPENDING + " ORDER BY period_start DESC", (community_id,))
    return [_spending(r) for r in await cur.fetchall()]


@router.put("/communities/{community_id}/elevator-spending/{period}")
async def put_spending(
    db: Db, p: Caller, community_id: Id, period: PeriodText, body: SpendingIn
) -> Spending:
    """Publish (or correct) the elevator maintenance spending of a month (2026-11), a quarter
    (2026Q3) or a year (2026). A period overlapping another one already published is refused
    (409), so no spending is counted twice."""
    name, start, end = _period(period)
    await _community(db, p, community_id, write=True)
    clash = await scalar(
        db,
        "SELECT period_start FROM elevator_spending WHERE community_id = %s"
        " AND period_start < %s AND period_end > %s AND (period_start, period_end) <> (%s, %s)"
        " LIMIT 1",
        (community_id, end, start, start, end),
    )
    if clash is not None:
        raise ApiError(
            409,
            "conflict",
            f"{name} overlaps a period already published (starting {clash}); correct that"
            " period, or delete it first",
        )
    await db.execute(
        "INSERT INTO elevator_spending (community_id, period_start, period_end, amount_cny,"
        " note, updated_at, updated_by) VALUES (%s, %s, %s, %s, %s, clock_timestamp(), %s)"
        " ON CONFLICT (community_id, period_start) DO UPDATE SET period_end = excluded.period_end,"
        " amount_cny = excluded.amount_cny, note = excluded.note,"
        " updated_at = excluded.updated_at, updated_by = excluded.updated_by",
        (community_id, start, end, body.amount_cny, body.note, p.actor),
    )
    cur = await db.execute(_SPENDING + " AND period_start = %s", (community_id, start))
    row = await cur.fetchone()
    assert row is not None
    return _spending(row)


@router.delete("/communities/{community_id}/elevator-spending/{period}", status_code=204)
async def delete_spending(db: Db, p: Caller, community_id: Id, period: PeriodText) -> Response:
    """Take one period's spending down."""
    _, start, end = _period(period)
    await _community(db, p, community_id, write=True)
    deleted = await scalar(
        db,
        "DELETE FROM elevator_spending WHERE community_id = %s AND period_start = %s"
        " AND period_end = %s RETURNING community_id",
        (community_id, start, end),
    )
    if deleted is None:
        raise not_found(f"elevator spending for {period}")
    return Response(status_code=204)
