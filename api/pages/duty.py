"""API (duty pages): who is on duty, my open work orders, an alarm with its work order, and the
actions on it: acknowledge, arrived (location and photo), completed, false alarm, hand over.

Every action calls the JSON API's own route function (``api.routes.alarms``,
``api.routes.work_orders``) with the signed-in person as its caller, so scope checks, the
lifecycle's transitions, SLA figures and the firm-performance report move exactly as they do
for an API client. A session from a link acts on its one alarm only; anything else asks for a
full sign-in.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from psycopg import sql
from starlette.datastructures import FormData, UploadFile

from api.deps import AsyncConn, Db, act, blocking
from api.errors import ApiError
from api.pages import view, web
from api.pages.names import EventNames
from api.pages.sessions import Session
from api.routes import alarms as alarm_routes
from api.routes import work_orders as wo_routes
from api.scope import Action, may
from core.audit import Actor
from core.db import Conn

router = APIRouter(prefix="/duty", include_in_schema=False)
PHOTO_TYPES: Final = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
READINGS_HOURS: Final = 6
MAX_NOTE: Final = 2000


class Refused(Exception):
    """An action or page refused; rendered as a page with this status."""

    def __init__(self, status: int, text: str, *, sign_in: bool = False) -> None:
        super().__init__(text)
        self.status, self.text, self.sign_in = status, text, sign_in


def _photo_type(data: bytes) -> str | None:
    """The image type by its first bytes (the browser's declared type is not trusted)."""
    for magic, kind in PHOTO_TYPES.items():
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _names(request: Request) -> EventNames:
    names: EventNames | None = getattr(request.app.state, "event_names", None)
    if names is None:
        names = request.app.state.event_names = EventNames()
    return names


async def _signed_in(
    request: Request, db: AsyncConn, *, full: bool
) -> tuple[Session, web.StaffPrincipal]:
    me = await web.session(request, db)
    if me is None:
        raise Refused(401, "请先登录 Please sign in", sign_in=True)
    if full and not me.full:
        raise Refused(
            403,
            "此链接只能处理这一条告警，其他内容请登录 This link opens one alarm; sign in for more",
            sign_in=True,
        )
    return me, web.principal_of(me)


def _refusal(e: Refused, request: Request) -> Response:
    # After signing in, back to the page (an action's form posts to the page's path + /step).
    path = request.url.path
    target = path if request.method == "GET" else path.rsplit("/", 1)[0]
    if e.sign_in and e.status == 401:
        return web.redirect(f"/duty/login?next={target}")
    return web.message(e.status, "无法完成 Not possible", e.text, sign_in=e.sign_in)


_ALARM_SQL: Final = (
    "SELECT a.id, a.event_code, a.severity, a.state, a.opened_at, a.acknowledged_at,"
    " a.acknowledged_by, a.list_version, a.device_id, d.uid, d.device_class, d.community_id,"
    " c.name_zh, c.name_en, coalesce(b.name, ''), wo.id, wo.status"
    " FROM alarms a JOIN devices d ON d.id = a.device_id"
    " JOIN communities c ON c.id = d.community_id LEFT JOIN buildings b ON b.id = d.building_id"
    " LEFT JOIN work_orders wo ON wo.alarm_id = a.id WHERE a.id = %(id)s AND "
)


def _visible(p: web.StaffPrincipal) -> tuple[str, dict[str, Any]]:
    if p.role == "maintenance_unit":
        return "wo.maintenance_unit_id = %(unit)s", {"unit": p.maintenance_unit_id}
    return "d.community_id = ANY(%(communities)s)", {"communities": sorted(p.community_ids or ())}


async def _alarm(
    db: AsyncConn, me: Session, p: web.StaffPrincipal, alarm_id: int
) -> dict[str, Any]:
    """The alarm if this caller sees it (a link's session: only its own); 404 otherwise."""
    if me.alarm_id is not None and me.alarm_id != alarm_id:
        raise Refused(
            403,
            "此链接只能处理它自己的告警，请登录 This link opens one alarm; sign in",
            sign_in=True,
        )
    clause, params = _visible(p)
    cur = await db.execute(_ALARM_SQL + clause, {"id": alarm_id, **params})
    row = await cur.fetchone()
    if row is None:
        raise Refused(404, "没有这条告警，或不在您的范围内 No such alarm in your scope")
    keys = [
        "id",
        "code",
        "severity",
        "state",
        "opened_at",
        "acknowledged_at",
        "acknowledged_by",
        "list_version",
        "device_id",
        "device",
        "device_class",
        "community_id",
        "community_zh",
        "community_en",
        "building",
        "wo_id",
        "wo_status",
    ]
    return dict(zip(keys, row, strict=True))


async def _readings(db: AsyncConn, device_id: int) -> list[dict[str, Any]]:
    since = web.now() - timedelta(hours=READINGS_HOURS)
    cur = await db.execute(
        "SELECT m.id, m.name_zh, m.name_en, m.unit, r.ts, r.value FROM readings r"
        " JOIN metrics m ON m.id = r.metric_id WHERE r.device_id = %s AND r.ts > %s"
        " ORDER BY r.ts DESC LIMIT 3000",
        (device_id, since),
    )
    series: dict[int, dict[str, Any]] = {}
    for mid, zh, en, unit, ts, value in await cur.fetchall():
        s = series.setdefault(mid, {"zh": zh, "en": en, "unit": unit, "points": []})
        s["points"].append((ts, float(value)))
    out = []
    for s in list(series.values())[:4]:
        c = view.chart(s["points"])
        if c is not None:
            out.append({**s, "chart": c})
    return out


async def _colleagues(db: AsyncConn, me: Session, community_id: int) -> list[tuple[int, str]]:
    """The people on shift now for the community who could take the work order over: the same
    firm's duty-room people, or the same maintenance unit's staff."""
    if me.role == "maintenance_staff":
        roles, same = ["maintenance_staff"], "unit_id"
    else:
        roles, same = ["duty_staff", "project_manager", "firm_manager"], "firm_id"
    query = sql.SQL(
        "SELECT DISTINCT p.id, p.name FROM duty_shifts s JOIN people p ON p.id = s.person_id"
        " AND p.active WHERE s.community_id = %(community)s AND s.role = ANY(%(roles)s)"
        " AND p.role = ANY(%(roles)s) AND s.starts_at <= now() AND now() < s.ends_at"
        " AND p.id <> %(me)s AND p.{} = %(mine)s ORDER BY p.name"
    ).format(sql.Identifier(same))
    cur = await db.execute(
        query,
        {
            "community": community_id,
            "roles": roles,
            "me": me.person_id,
            "mine": me.unit_id if me.role == "maintenance_staff" else me.firm_id,
        },
    )
    return [(int(i), str(n)) for i, n in await cur.fetchall()]


@router.get("/static/pages.css")
async def css() -> Response:
    text = (Path(__file__).parent / "static" / "pages.css").read_bytes()
    return Response(text, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


_MINE_SQL: Final = (
    "SELECT wo.id, wo.alarm_id, wo.event_code, wo.severity, wo.status, wo.list_version,"
    " wo.opened_at, wo.response_due, wo.responded_at, wo.arrival_due, wo.on_site_at,"
    " wo.resolution_due, d.uid, c.name_zh, coalesce(b.name, '')"
    " FROM work_orders wo LEFT JOIN devices d ON d.id = wo.device_id"
    " JOIN communities c ON c.id = wo.community_id LEFT JOIN buildings b ON b.id = d.building_id"
    " WHERE wo.closed_at IS NULL AND {scope}"
    " AND coalesce((SELECT h.to_person FROM work_order_handovers h"
    "  WHERE h.work_order_id = wo.id ORDER BY h.id DESC LIMIT 1), %(me)s) = %(me)s"
    " ORDER BY wo.severity, wo.opened_at DESC LIMIT 50"
)


_ON_DUTY_SQL: Final = (
    "SELECT c.name_zh, s.role, p.name, s.ends_at FROM duty_shifts s"
    " JOIN people p ON p.id = s.person_id AND p.active"
    " JOIN communities c ON c.id = s.community_id"
    " WHERE {on_shift} AND s.starts_at <= now() AND now() < s.ends_at"
    " ORDER BY c.name_zh, s.role, p.name LIMIT 200"
)


def _next_limit(row: dict[str, Any]) -> tuple[str, datetime | None, str, str]:
    """The limit that matters next for an open work order: (kind, due, countdown, css)."""
    now = web.now()
    for kind, due, done in (
        ("response", row["response_due"], row["responded_at"]),
        ("arrival", row["arrival_due"], row["on_site_at"]),
        ("resolution", row["resolution_due"], None),
    ):
        if due is not None and done is None:
            text, cls = view.countdown(due, None, now)
            return kind, due, text, cls
    return "resolution", None, "—", ""


@router.get("")
async def home(request: Request, db: Db) -> Response:
    try:
        me, p = await _signed_in(request, db, full=True)
    except Refused as e:
        return _refusal(e, request)
    params: dict[str, Any]
    if p.role == "maintenance_unit":
        scope, params = "wo.maintenance_unit_id = %(unit)s", {"unit": p.maintenance_unit_id}
        on_shift = "p.unit_id = %(unit)s"  # my unit's people, wherever they are on shift
    else:
        communities = sorted(p.community_ids or ())
        scope, params = "wo.community_id = ANY(%(communities)s)", {"communities": communities}
        on_shift = "s.community_id = ANY(%(communities)s)"
    duty_sql = _ON_DUTY_SQL.format(on_shift=on_shift)
    cur = await db.execute(duty_sql, params)
    on_duty = await cur.fetchall()
    cur = await db.execute(_MINE_SQL.format(scope=scope), {**params, "me": me.person_id})
    keys = [
        "id",
        "alarm_id",
        "code",
        "severity",
        "status",
        "list_version",
        "opened_at",
        "response_due",
        "responded_at",
        "arrival_due",
        "on_site_at",
        "resolution_due",
        "device",
        "community",
        "building",
    ]
    names = _names(request)
    mine = []
    for row in await cur.fetchall():
        item = dict(zip(keys, row, strict=True))
        item["name"] = await names.name(db, item["code"], item["list_version"])
        item["limit"], item["due"], item["left"], item["css"] = _next_limit(item)
        mine.append(item)
    return web.page("home.html", me=me, on_duty=on_duty, mine=mine)


@router.get("/alarms/{alarm_id}")
async def alarm_page(request: Request, db: Db, alarm_id: int) -> Response:
    try:
        me, p = await _signed_in(request, db, full=False)
        a = await _alarm(db, me, p, alarm_id)
    except Refused as e:
        return _refusal(e, request)
    name = await _names(request).name(db, a["code"], a["list_version"])
    wo = None
    sla = []
    if a["wo_id"] is not None:
        wo = await wo_routes.get_work_order(db, p, a["wo_id"])
        now = web.now()
        for lim in wo.sla:
            text, cls = view.countdown(lim.due, lim.done_at, now)
            sla.append(
                {"kind": lim.kind, "due": lim.due, "outcome": lim.outcome, "left": text, "css": cls}
            )
    colleagues = await _colleagues(db, me, a["community_id"]) if wo and not wo.closed_at else []
    handovers: list[Any] = []
    arrivals: list[Any] = []
    if a["wo_id"] is not None:
        handovers, arrivals = await _records(db, a["wo_id"])
    return web.page(
        "alarm.html",
        me=me,
        a=a,
        name=name,
        wo=wo,
        sla=sla,
        readings=await _readings(db, a["device_id"]),
        colleagues=colleagues,
        handovers=handovers,
        arrivals=arrivals,
        can_ack=a["state"] == "active"
        and (may(p, Action.ACT_ON_ALARMS) or (wo is not None and wo.status == "occurred")),
        max_photo=web.settings_of(request).pages_photo_max_bytes,
    )


async def _records(db: AsyncConn, wo_id: int) -> tuple[list[Any], list[Any]]:
    """A work order's handovers and arrivals, oldest first."""
    cur = await db.execute(
        "SELECT h.at, f.name, t.name, h.note FROM work_order_handovers h"
        " JOIN people f ON f.id = h.from_person JOIN people t ON t.id = h.to_person"
        " WHERE h.work_order_id = %s ORDER BY h.id",
        (wo_id,),
    )
    handovers = await cur.fetchall()
    cur = await db.execute(
        "SELECT id, at, latitude, longitude, photo_type IS NOT NULL FROM work_order_arrivals"
        " WHERE work_order_id = %s ORDER BY id",
        (wo_id,),
    )
    return list(handovers), list(await cur.fetchall())


def _check_csrf(form: FormData, me: Session) -> None:
    if not web.same_token(me.csrf, str(form.get("csrf", ""))):
        raise Refused(403, "页面已过期，请返回重试 The form expired; go back and try again")


def _text(form: FormData, field: str, *, required: bool = False) -> str:
    value = str(form.get(field, "")).strip()
    if len(value) > MAX_NOTE:
        raise Refused(422, f"{field}: 最多 {MAX_NOTE} 字 at most {MAX_NOTE} characters")
    if required and not value:
        raise Refused(422, f"请填写{'原因' if field == 'reason' else '说明'} Please give a {field}")
    return value


def _coordinate(form: FormData, field: str, bound: float) -> float | None:
    raw = str(form.get(field, "")).strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Refused(422, f"{field}: 不是数字 not a number") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise Refused(422, f"{field}: 应在 ±{bound:g} 之间 must be within ±{bound:g}")
    return value


async def _photo(request: Request, form: FormData) -> tuple[str, bytes] | None:
    upload = form.get("photo")
    if not isinstance(upload, UploadFile) or not upload.filename:
        return None
    limit = web.settings_of(request).pages_photo_max_bytes
    data = await upload.read(limit + 1)
    if not data:
        return None
    if len(data) > limit:
        raise Refused(
            413, f"照片最大 {limit // 1024} KiB The photo may be at most {limit // 1024} KiB"
        )
    kind = _photo_type(data)
    if kind is None:
        raise Refused(415, "照片须为 JPEG、PNG 或 WebP The photo must be a JPEG, PNG or WebP image")
    return kind, data


@dataclass(frozen=True, slots=True)
class Call:
    """One action on an alarm: the request and its form, the database, who acts (their session
    and their caller as the API sees it) and the alarm (``_alarm``)."""

    request: Request
    db: AsyncConn
    me: Session
    p: web.StaffPrincipal
    a: dict[str, Any]
    form: FormData

    async def move(self, to: str, note: str = "") -> None:
        """The alarm's work order to ``to``, through the API's own route."""
        if self.a["wo_id"] is None:
            raise Refused(409, "这条告警没有工单 This alarm has no work order")
        move = wo_routes.Move.model_validate({"to": to, "note": note})
        await wo_routes.move(self.db, self.request, self.p, self.a["wo_id"], move)

    async def record(self, query: str, params: tuple[Any, ...]) -> None:
        """One row more (an arrival, a handover), as the acting person."""

        def run(c: Conn) -> None:
            c.execute(query, params)

        await blocking(self.request, run)


async def _ack(c: Call) -> None:
    if may(c.p, Action.ACT_ON_ALARMS):
        await alarm_routes.acknowledge_alarm(c.db, c.request, c.p, c.a["id"])
    else:  # a maintenance unit takes the work order on
        await c.move("responded", "acknowledged")


async def _arrive(c: Call) -> None:
    lat = _coordinate(c.form, "latitude", 90)
    lon = _coordinate(c.form, "longitude", 180)
    if (lat is None) != (lon is None):
        raise Refused(422, "位置需同时填写纬度和经度 Give both latitude and longitude")
    photo = await _photo(c.request, c.form)
    await c.move("on_site", _text(c.form, "note"))
    await c.record(
        "INSERT INTO work_order_arrivals (work_order_id, person_id, latitude, longitude,"
        " photo_type, photo) VALUES (%s, %s, %s, %s, %s, %s)",
        (c.a["wo_id"], c.me.person_id, lat, lon, *(photo or (None, None))),
    )


async def _complete(c: Call) -> None:
    await c.move("completed", _text(c.form, "note", required=True))


async def _false_alarm(c: Call) -> None:
    await c.move("false_alarm", _text(c.form, "reason", required=True))


async def _handover(c: Call) -> None:
    if c.a["wo_id"] is None or c.a["wo_status"] in ("completed", "false_alarm"):
        raise Refused(409, "工单已关闭或不存在 The work order is closed or missing")
    try:
        to = int(str(c.form.get("to", "")))
    except ValueError:
        raise Refused(422, "请选择同事 Choose a colleague") from None
    if to not in {pid for pid, _ in await _colleagues(c.db, c.me, c.a["community_id"])}:
        raise Refused(422, "此人现在不在班 That person is not on shift now")
    await c.record(
        "INSERT INTO work_order_handovers (work_order_id, from_person, to_person, note)"
        " VALUES (%s, %s, %s, %s)",
        (c.a["wo_id"], c.me.person_id, to, _text(c.form, "note")),
    )


STEPS: Final[dict[str, Callable[[Call], Awaitable[None]]]] = {
    "acknowledge": _ack,
    "arrive": _arrive,
    "complete": _complete,
    "false-alarm": _false_alarm,
    "handover": _handover,
}


@router.post("/alarms/{alarm_id}/{step}")
async def act_on(request: Request, db: Db, alarm_id: int, step: str) -> Response:
    try:
        if step not in STEPS:
            raise Refused(404, "没有这个操作 No such action")
        me, p = await _signed_in(request, db, full=False)
        async with request.form(max_files=1, max_fields=10) as form:
            _check_csrf(form, me)
            a = await _alarm(db, me, p, alarm_id)
            act(request, Actor(p.actor, "api"))
            try:
                await STEPS[step](Call(request, db, me, p, a, form))
            except ApiError as e:
                raise Refused(e.status, e.message) from None
    except Refused as e:
        return _refusal(e, request)
    return web.redirect(f"/duty/alarms/{alarm_id}")


@router.get("/arrivals/{arrival_id}/photo")
async def photo(request: Request, db: Db, arrival_id: int) -> Response:
    try:
        me, p = await _signed_in(request, db, full=False)
        cur = await db.execute(
            "SELECT w.alarm_id, x.photo_type, x.photo FROM work_order_arrivals x"
            " JOIN work_orders w ON w.id = x.work_order_id WHERE x.id = %s AND x.photo IS NOT NULL",
            (arrival_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise Refused(404, "没有照片 No such photo")
        await _alarm(db, me, p, int(row[0]))
    except Refused as e:
        return _refusal(e, request)
    headers = {**web.HEADERS, "Content-Disposition": "inline"}
    return Response(bytes(row[2]), media_type=str(row[1]), headers=headers)
