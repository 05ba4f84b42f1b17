"""API (complaints): residents' complaints and repair requests from the notice board, and the
firm's page for handling one (docs/pages.md, "Complaints").

Public, no login:

- ``/board/{community}/complaint``: the form: a category (the complaint entries of the list in
  force for the community), the place, the problem, an optional photo (JPEG or PNG, at most
  ``complaint_photo_max_bytes``) and a phone number. CSRF: a double-submit cookie. A complaint
  files a work order (``lifecycle.complaints``) and leads to its tracking page;
- ``/complaints/{tracking code}``: the category, the status, when it was filed, taken on,
  attended and closed, and the firm's closing note. Never the phone number, the place or the
  resident's text.

At most ``complaints_per_phone_hour`` complaints from a phone number and
``complaints_per_client_hour`` from a client address within an hour (429 beyond); each address
may also load ``BURST`` public pages at once and ``RATE`` a second after that.

For the firm, signed in to the duty pages: ``/duty/complaints/{work order}`` shows the complaint
in full (the phone number too) with the actions take on, arrived, completed (with a note) and not
valid (with a reason), each through the JSON API's own route (``api.routes.work_orders``) as
the duty pages' alarm actions are.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData, UploadFile

from api.deps import AsyncConn, Db, act, blocking
from api.errors import ApiError
from api.fields import CODE_PATTERN
from api.pages import view, web
from api.pages.complaint_form import FormProblem, check, is_tracking_code
from api.pages.names import EventNames
from api.rate_limit import Buckets
from api.routes import work_orders as wo_routes
from core.audit import Actor
from core.db import Conn
from core.holiday_store import calendar_in_force
from lifecycle.complaints import (
    ACTOR,
    Community,
    Filed,
    RateLimited,
    client_hash,
    community,
    file_complaint,
)
from responsibility.in_force import list_in_force
from responsibility.model import Entry

router = APIRouter(include_in_schema=False)

CSRF_COOKIE: Final = "sw_complaint_csrf"
CSRF_PATH: Final = "/board"
BURST: Final = 60
RATE: Final = 2.0  # public pages a second per client address, after the burst
MAX_NOTE: Final = 2000
# What the resident sees of a work order's status.
PUBLIC_STATUS: Final = {
    "occurred": ("已受理，待处理", "Received, waiting to be handled"),
    "responded": ("处理中", "Being handled"),
    "on_site": ("工作人员已到场", "Staff on site"),
    "completed": ("已解决", "Resolved"),
    "false_alarm": ("已关闭（未予处理）", "Closed without action"),
}
STEPS: Final = {
    "respond": "responded",
    "arrive": "on_site",
    "complete": "completed",
    "reject": "false_alarm",
}


# -- shared ----------------------------------------------------------------------------------


def _buckets(request: Request) -> Buckets:
    state = request.app.state
    buckets: Buckets | None = getattr(state, "complaint_buckets", None)
    if buckets is None:
        buckets = state.complaint_buckets = Buckets(RATE, BURST)
    return buckets


def _message(status: int, title: str, text: str, retry_after: int | None = None) -> HTMLResponse:
    response = web.page("complaint_message.html", status, title=title, text=text)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _throttled(request: Request) -> HTMLResponse | None:
    wait = _buckets(request).take(web.client_of(request), time.monotonic())
    if wait <= 0:
        return None
    seconds = max(1, math.ceil(wait))
    return _message(
        429,
        "请稍后再试 Too many requests",
        f"本地址请求过于频繁，请 {seconds} 秒后再试。"
        f" Too many requests from this address; try again in {seconds} s.",
        seconds,
    )


def _no_community(code: str) -> HTMLResponse:
    return _message(
        404,
        "没有这个小区 No such community",
        f"没有编号为 {code} 的小区。 There is no community with the code {code}.",
    )


def _complaint_entries(c: Conn, request: Request, where: Community) -> tuple[dict[str, Entry], str]:
    """The complaint entries in force for the community, by code, and the list's version."""
    s = web.settings_of(request)
    found = list_in_force(c, pinned=s.responsibility_list, overrides_dir=s.responsibility_overrides)
    entries = found.rules.for_community(where.code, where.county_code)
    mine = {code: e for code, e in entries.items() if e.is_complaint}
    return mine, found.rules.version


def _set_csrf(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        max_age=2 * 3600,
        path=CSRF_PATH,
        secure=web.settings_of(request).pages_cookie_secure,
        httponly=True,
        samesite="strict",
    )


# -- the form --------------------------------------------------------------------------------


def _form_page(
    request: Request,
    where: Community,
    entries: dict[str, Entry],
    *,
    status: int = 200,
    problems: list[FormProblem] | None = None,
    sent: dict[str, str] | None = None,
) -> HTMLResponse:
    token = request.cookies.get(CSRF_COOKIE, "")
    if not 20 <= len(token) <= 100:
        token = secrets.token_urlsafe(24)
    s = web.settings_of(request)
    response = web.page(
        "complaint_form.html",
        status,
        c=where,
        categories=[(code, e.name.zh, e.name.en) for code, e in sorted(entries.items())],
        problems=problems or [],
        sent=sent or {},
        csrf=token,
        max_photo_kib=s.complaint_photo_max_bytes // 1024,
    )
    _set_csrf(response, request, token)
    return response


async def _find(request: Request, code: str) -> tuple[Community, dict[str, Entry], str] | None:
    if not re.fullmatch(CODE_PATTERN, code) or len(code) > 64:
        return None

    def run(c: Conn) -> tuple[Community, dict[str, Entry], str] | None:
        where = community(c, code)
        if where is None:
            return None
        entries, version = _complaint_entries(c, request, where)
        return where, entries, version

    return await blocking(request, run)


@router.get("/board/{code}/complaint")
async def form(request: Request, code: str) -> HTMLResponse:
    refused = _throttled(request)
    if refused is not None:
        return refused
    found = await _find(request, code)
    if found is None:
        return _no_community(code)
    return _form_page(request, found[0], found[1])


async def _photo_bytes(upload: Any, limit: int) -> bytes | None:
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    data = await upload.read(limit + 1)
    return data or None


def _fields(form: FormData) -> dict[str, str]:
    names = ("category", "location", "description", "phone")
    return {n: str(form.get(n, ""))[: MAX_NOTE + 10] for n in names}


@router.post("/board/{code}/complaint")
async def submit(request: Request, code: str) -> Response:
    refused = _throttled(request)
    if refused is not None:
        return refused
    found = await _find(request, code)
    if found is None:
        return _no_community(code)
    where, entries, version = found
    s = web.settings_of(request)
    async with request.form(max_files=1, max_fields=10) as form:
        if not web.same_token(request.cookies.get(CSRF_COOKIE, ""), str(form.get("csrf", ""))):
            return _message(403, "页面已过期 The form expired", web.EXPIRED)
        fields = _fields(form)
        photo = await _photo_bytes(form.get("photo"), s.complaint_photo_max_bytes)
    complaint, problems = check(fields, entries, photo, s.complaint_photo_max_bytes)
    if complaint is None:
        sizes = {p.field for p in problems}
        status = 422
        if sizes == {"photo"}:
            status = 413 if photo and len(photo) > s.complaint_photo_max_bytes else 415
        shown = {k: v for k, v in fields.items() if k != "phone"}
        return _form_page(request, where, entries, status=status, problems=problems, sent=shown)
    entry = entries[complaint.category]
    client = client_hash(web.client_of(request))
    now = web.now()

    def run(c: Conn) -> Filed:
        calendar = calendar_in_force(c, s.work_calendar)
        return file_complaint(
            c,
            where,
            entry,
            complaint,
            client=client,
            list_version=version,
            calendar=calendar,
            at=now,
            per_phone_hour=s.complaints_per_phone_hour,
            per_client_hour=s.complaints_per_client_hour,
        )

    act(request, Actor(ACTOR, "api"))
    try:
        filed = await blocking(request, run)
    except RateLimited as e:
        if e.what == "phone":
            text = (
                f"此电话号码一小时内最多提交 {e.limit} 条投诉，请稍后再试或拨打物业电话。"
                f" At most {e.limit} complaints an hour from one phone number; try again later"
                " or call the property firm."
            )
        else:
            text = (
                f"本地址一小时内最多提交 {e.limit} 条投诉，请稍后再试。"
                f" At most {e.limit} complaints an hour from one address; try again later."
            )
        return _message(429, "提交过于频繁 Too many complaints", text, 3600)
    return web.redirect(f"/complaints/{filed.tracking_code}?new=1")


# -- the tracking page -----------------------------------------------------------------------

_STATUS_SQL: Final = (
    "SELECT k.category, k.filed_at, c.name_zh, c.name_en, w.status, w.responded_at,"
    " w.on_site_at, w.closed_at, w.list_version,"
    " (SELECT t.note FROM work_order_transitions t WHERE t.work_order_id = w.id"
    "  AND t.to_status IN ('completed', 'false_alarm') ORDER BY t.id DESC LIMIT 1)"
    " FROM complaints k JOIN work_orders w ON w.id = k.work_order_id"
    " JOIN communities c ON c.id = k.community_id WHERE k.tracking_code = %s"
)


async def _category_name(
    request: Request, db: AsyncConn, code: str, version: str
) -> tuple[str, str]:
    names: EventNames | None = getattr(request.app.state, "event_names", None)
    if names is None:  # the duty pages' cache, shared
        names = request.app.state.event_names = EventNames()
    return await names.name(db, code, version)


@router.get("/complaints/{tracking_code}")
async def tracking(request: Request, db: Db, tracking_code: str, new: str = "") -> HTMLResponse:
    refused = _throttled(request)
    if refused is not None:
        return refused
    row = None
    if is_tracking_code(tracking_code):
        cur = await db.execute(_STATUS_SQL, (tracking_code,))
        row = await cur.fetchone()
    if row is None:
        return _message(
            404,
            "没有这条投诉 No such complaint",
            "查询码不正确，请核对后重试。 The tracking code is not right; check it and try again.",
        )
    keys = [
        "category",
        "filed_at",
        "community_zh",
        "community_en",
        "status",
        "responded_at",
        "on_site_at",
        "closed_at",
        "list_version",
        "note",
    ]
    k = dict(zip(keys, row, strict=True))
    name = await _category_name(request, db, k["category"], k["list_version"])
    return web.page(
        "complaint_status.html",
        k=k,
        name=name,
        shown=PUBLIC_STATUS[k["status"]],
        code=tracking_code,
        new=new == "1",
    )


# -- the firm's page -------------------------------------------------------------------------

_DUTY_SQL: Final = (
    "SELECT k.id, k.tracking_code, k.category, k.location, k.description, k.phone,"
    " k.photo_type IS NOT NULL, k.filed_at, c.name_zh FROM complaints k"
    " JOIN communities c ON c.id = k.community_id WHERE k.work_order_id = %s"
)


async def _staff(
    request: Request, db: AsyncConn, work_order_id: int
) -> tuple[Any, web.StaffPrincipal, wo_routes.WorkOrderDetail, dict[str, Any]] | Response:
    """The signed-in person, as the API's caller, with the complaint's work order in their
    scope (the API's own check); else the page to answer with."""
    me = await web.session(request, db)
    if me is None:
        return web.redirect(f"/duty/login?next=/duty/complaints/{work_order_id}")
    if not me.full:
        return web.message(403, "无法完成 Not possible", "请登录 Please sign in", sign_in=True)
    p = web.principal_of(me)
    try:
        wo = await wo_routes.get_work_order(db, p, work_order_id)
    except ApiError:
        wo = None
    cur = await db.execute(_DUTY_SQL, (work_order_id,))
    row = await cur.fetchone()
    if wo is None or row is None:
        return web.message(
            404,
            "无法完成 Not possible",
            "没有这条投诉，或不在您的范围内 No such complaint in your scope",
        )
    keys = ["id", "code", "category", "location", "description", "phone", "photo", "filed_at"]
    return me, p, wo, dict(zip([*keys, "community"], row, strict=True))


@router.get("/duty/complaints/{work_order_id}")
async def duty_page(request: Request, db: Db, work_order_id: int) -> Response:
    found = await _staff(request, db, work_order_id)
    if isinstance(found, Response):
        return found
    me, _, wo, k = found
    name = await _category_name(request, db, k["category"], wo.list_version)
    now = web.now()
    sla = []
    for lim in wo.sla:
        text, css = view.countdown(lim.due, lim.done_at, now)
        sla.append(
            {"kind": lim.kind, "due": lim.due, "outcome": lim.outcome, "left": text, "css": css}
        )
    return web.page("complaint_duty.html", me=me, wo=wo, k=k, name=name, sla=sla)


@router.post("/duty/complaints/{work_order_id}/{step}")
async def duty_act(request: Request, db: Db, work_order_id: int, step: str) -> Response:
    if step not in STEPS:
        return web.message(404, "无法完成 Not possible", "没有这个操作 No such action")
    found = await _staff(request, db, work_order_id)
    if isinstance(found, Response):
        return found
    me, p, _, _ = found
    async with request.form(max_files=0, max_fields=5) as form:
        if not web.same_token(me.csrf, str(form.get("csrf", ""))):
            return web.message(403, "无法完成 Not possible", web.EXPIRED)
        note = str(form.get("note", "")).strip()
    if len(note) > MAX_NOTE:
        return web.message(
            422, "无法完成 Not possible", f"说明最多 {MAX_NOTE} 字 at most {MAX_NOTE} characters"
        )
    if step in ("complete", "reject") and not note:
        return web.message(
            422, "无法完成 Not possible", "请填写处理说明 Please give a note: the resident sees it"
        )
    act(request, Actor(p.actor, "api"))
    move = wo_routes.Move.model_validate({"to": STEPS[step], "note": note})
    try:
        await wo_routes.move(db, request, p, work_order_id, move)
    except ApiError as e:
        return web.message(e.status, "无法完成 Not possible", e.message)
    return web.redirect(f"/duty/complaints/{work_order_id}")


@router.get("/duty/complaints/{work_order_id}/photo")
async def duty_photo(request: Request, db: Db, work_order_id: int) -> Response:
    found = await _staff(request, db, work_order_id)
    if isinstance(found, Response):
        return found
    cur = await db.execute(
        "SELECT photo_type, photo FROM complaints WHERE work_order_id = %s AND photo IS NOT NULL",
        (work_order_id,),
    )
    row = await cur.fetchone()
    if row is None:
        return web.message(404, "无法完成 Not possible", "没有照片 No photo")
    headers = {**web.HEADERS, "Content-Disposition": "inline"}
    return Response(bytes(row[1]), media_type=str(row[0]), headers=headers)
