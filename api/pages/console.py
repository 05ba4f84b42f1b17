"""API (firm console): pages for a property firm's managers (``firm_manager``,
``project_manager``), under ``/console``: the overview, work orders with their time limits,
devices with their state, people with their channels, and the roster's week.

Read only. Every figure of a work order, a device or a person comes from the JSON API's own
route function (``api.routes.work_orders``, ``api.routes.devices``, ``api.routes.people``)
called with the signed-in person as the caller (``web.principal_of``): the same scope (the
firm's communities) and the same time-limit outcomes (``api.sla``) as an API client gets.

Signing in is the duty pages' (``/duty/login``); their session cookie is kept for ``/duty``
only, so ``/duty/console`` hands a signed-in manager the same session for ``/console``
(cookie ``sw_console``: the same value, the same protections, ``Path=/console``). The session
is the one row of ``page_sessions``: signing out ends it for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.deps import AsyncConn, Db
from api.errors import ApiError
from api.pages import console_view as cv
from api.pages import view, web
from api.pages.board_view import DEVICE_CLASSES
from api.pages.names import EventNames
from api.pages.sessions import Session, session_of
from api.pagination import PageParams, encode_cursor
from api.performance import PeriodError, check_period, firm_performance, scope_for
from api.routes import devices as device_routes
from api.routes import exports as export_routes
from api.routes import people as people_routes
from api.routes import work_orders as wo_routes
from api.scope import Action, Where, require
from api.sla import LIMIT_KINDS
from core.catalogue import DeviceClass

router = APIRouter(include_in_schema=False)
CONSOLE_COOKIE: Final = web.CONSOLE_COOKIE
CONSOLE_PATH: Final = web.CONSOLE_PATH
MANAGERS: Final = frozenset({"firm_manager", "project_manager"})
SCAN_CHUNK: Final = 500  # work orders read per call when filtering by outcome
MAX_SCAN: Final = 20_000  # at most this many work orders read for one page
CSS: Final = Path(__file__).parent / "static" / "console.css"


def _target(url: str) -> str:
    """Where the bridge may send a browser: a path of the console only."""
    ok = (
        url.startswith(CONSOLE_PATH)
        and (len(url) == len(CONSOLE_PATH) or url[len(CONSOLE_PATH)] in "/?")
        and "//" not in url
        and "\\" not in url
        and len(url) <= 2000
        and all(ch > " " for ch in url)
    )
    return url if ok else CONSOLE_PATH


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query and len(query) < 1500 else "")


def _set_console_cookie(response: Response, request: Request, token: str, me: Session) -> None:
    age = max(1, int((me.expires_at - datetime.now(UTC)).total_seconds()))
    response.set_cookie(
        CONSOLE_COOKIE,
        token,
        max_age=age,
        path=CONSOLE_PATH,
        secure=web.settings_of(request).pages_cookie_secure,
        httponly=True,
        samesite="lax",
    )


def _not_yours(me: Session) -> Response:
    role = view.ROLES.get(me.role, (me.role, me.role))
    return web.page(
        "message.html",
        403,
        title="无权访问 Not allowed",
        text=(
            f"管理台只供物业经理和项目经理使用；您的角色是{role[0]}。"
            f" The firm console is for firm managers and project managers; you are signed in"
            f" as {role[1]}. 值班页面请见 /duty. For the duty pages, open /duty."
        ),
        sign_in=False,
        me=None,
    )


@router.get("/duty/console")
async def bridge(request: Request, db: Db, next: str = CONSOLE_PATH) -> Response:
    """From the duty pages' session to the console's: sign in first if need be, then on to
    ``next`` (a console path only)."""
    target = _target(next)
    token = request.cookies.get(web.SESSION_COOKIE, "")
    me = await session_of(db, token)
    if me is None or not me.full:
        back = f"/duty/console?next={quote(target, safe='')}"
        return web.redirect(f"/duty/login?next={quote(back, safe='')}")
    if me.role not in MANAGERS:
        return _not_yours(me)
    response = web.redirect(target)
    _set_console_cookie(response, request, token, me)
    return response


@dataclass(frozen=True, slots=True)
class Manager:
    me: Session
    p: web.StaffPrincipal
    communities: dict[int, tuple[str, str, str]]  # id -> (code, name_zh, name_en)


async def _manager(request: Request, db: AsyncConn) -> Manager | Response:
    """The signed-in manager, or where to go instead: the bridge (which asks for a sign-in
    when needed), or a 403 page for anyone else."""
    token = request.cookies.get(CONSOLE_COOKIE)
    me = await session_of(db, token)
    if me is None or not me.full:
        response = web.redirect(f"/duty/console?next={quote(_here(request), safe='')}")
        if token:
            web.clear_cookie(response, request, CONSOLE_COOKIE, CONSOLE_PATH)
        return response
    if me.role not in MANAGERS or me.firm_id is None:
        return _not_yours(me)
    p = web.principal_of(me)
    cur = await db.execute(
        "SELECT id, code, name_zh, name_en FROM communities WHERE id = ANY(%s) ORDER BY code",
        (sorted(p.community_ids or ()),),
    )
    communities = {int(i): (str(c), str(z), str(e or "")) for i, c, z, e in await cur.fetchall()}
    return Manager(me, p, communities)


def _page(template: str, m: Manager, status: int = 200, **context: Any) -> Response:
    return web.page(
        template,
        status,
        tab=template.removeprefix("console_").removesuffix(".html").replace("_", "-"),
        me=m.me,
        communities=m.communities,
        role_name=view.ROLES.get(m.me.role, (m.me.role, m.me.role)),
        **context,
    )


def _names(request: Request) -> EventNames:
    names: EventNames | None = getattr(request.app.state, "event_names", None)
    if names is None:
        names = request.app.state.event_names = EventNames()
    return names


@router.get("/console/static/console.css")
async def css() -> Response:
    return Response(
        CSS.read_bytes(), media_type="text/css", headers={"Cache-Control": "max-age=3600"}
    )


# Work orders, through the API's own list.


@dataclass(frozen=True, slots=True)
class Listing:
    rows: list[wo_routes.WorkOrder]
    next: str | None
    scanned_all: bool  # False: stopped after MAX_SCAN work orders (overdue filter)


def _overdue(wo: wo_routes.WorkOrder) -> bool:
    """Past a limit: some limit's outcome is ``missed`` by the API's rules (``api.sla``)."""
    return any(limit.outcome == "missed" for limit in wo.sla)


async def _where(m: Manager, f: cv.Filters) -> Where:
    """The API's work-order filters (``GET /v1/work-orders``) for the page's, in the manager's
    scope."""
    require(m.p, Action.READ_WORK_ORDERS)
    return await wo_routes.filters(
        m.p,
        status=f.statuses,  # type: ignore[arg-type]
        open=f.open,
        community_id=f.community,
        event_code=f.code,
        opened_from=f.opened_from,
        opened_until=f.opened_until,
    )


async def _listing(db: AsyncConn, m: Manager, f: cv.Filters, size: int) -> Listing:
    """One page of the work orders the JSON API lists for these filters (newest first); with
    ``overdue``, those of them past a limit."""
    after = f.cursor
    rows: list[wo_routes.WorkOrder] = []
    scanned = 0
    while True:
        got = await wo_routes.work_order_page(
            db, await _where(m, f), PageParams(size if not f.overdue else SCAN_CHUNK, after)
        )
        if not f.overdue:
            return Listing(got.items, got.next, True)
        scanned += len(got.items)
        rows.extend(wo for wo in got.items if _overdue(wo))
        if len(rows) > size:
            return Listing(rows[:size], encode_cursor((rows[size - 1].id,)), True)
        if got.next is None:
            return Listing(rows, None, True)
        if scanned >= MAX_SCAN:
            return Listing(rows, got.next, False)
        after = got.next


async def _rows(request: Request, db: AsyncConn, m: Manager, orders: list[Any]) -> list[Any]:
    names = _names(request)
    now = web.now()
    out = []
    for wo in orders:
        limits = []
        for lim in sorted(wo.sla, key=lambda x: LIMIT_KINDS.index(x.kind)):
            text, css_class = view.countdown(lim.due, lim.done_at, now)
            limits.append(
                {
                    "kind": lim.kind,
                    "due": lim.due,
                    "outcome": lim.outcome,
                    "left": text,
                    "css": css_class,
                }
            )
        out.append(
            {
                "wo": wo,
                "name": await names.name(db, wo.event_code, wo.list_version),
                "community": m.communities.get(wo.community_id, (str(wo.community_id), "", "")),
                "limits": limits,
                "overdue": _overdue(wo),
                "href": f"/duty/complaints/{wo.id}"
                if wo.source == "complaint" or wo.alarm_id is None
                else f"/duty/alarms/{wo.alarm_id}",
            }
        )
    return out


@router.get("/console")
async def overview(request: Request, db: Db) -> Response:
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    f = cv.Filters(state="open")
    orders: list[tuple[int, str, bool]] = []
    complete = True
    while True:
        got = await _listing(db, m, f, SCAN_CHUNK)
        orders.extend((wo.community_id, wo.status, _overdue(wo)) for wo in got.rows)
        if got.next is None:
            break
        if len(orders) >= MAX_SCAN:
            complete = False
            break
        f = cv.Filters(state="open", cursor=got.next)
    counts = cv.tally(orders, m.communities)
    return _page("console_home.html", m, counts=counts, complete=complete, states=cv.OPEN_STATES)


@router.get("/console/work-orders")
async def work_orders(request: Request, db: Db) -> Response:
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    query = {k: v[:300] for k, v in request.query_params.items()}
    f, problems = cv.parse_filters(query, m.communities)
    listing = None
    rows: list[Any] = []
    if not problems:
        try:
            listing = await _listing(db, m, f, cv.PAGE_SIZE)
        except ApiError as e:  # a cursor from elsewhere, a filter the API refuses
            field = e.fields[0].field.removeprefix("query.") if e.fields else "filter"
            problems.append(cv.Problem(field, f"{e.message}（请重新筛选 start again）"))
        else:
            rows = await _rows(request, db, m, listing.rows)
    return _page(
        "console_work_orders.html",
        m,
        422 if problems else 200,
        f=f,
        raw=query,
        problems=problems,
        rows=rows,
        listing=listing,
        states=cv.STATES,
        state_choices=cv.STATE_CHOICES,
    )


@router.get("/console/work-orders.{fmt}")
async def work_orders_file(request: Request, db: Db, fmt: str) -> Response:
    """The work orders the page shows for the same filters, all pages, as an XLSX or CSV file
    (``api.routes.exports``: the API's export, with the console's "past a limit" kept)."""
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    query = {k: v[:300] for k, v in request.query_params.items() if k != "cursor"}
    f, problems = cv.parse_filters(query, m.communities)
    if fmt not in ("xlsx", "csv"):
        problems.append(cv.Problem("format", "文件格式应为 xlsx 或 csv format must be xlsx or csv"))
    if not problems:
        try:
            return await export_routes.work_order_file(
                db, await _where(m, f), fmt, keep=_overdue if f.overdue else None
            )
        except ApiError as e:  # more than the cap: narrow the period
            problems.append(cv.Problem("from", f"{e.message}（请缩短时段 narrow the period）"))
    return _page(
        "console_work_orders.html",
        m,
        422,
        f=f,
        raw=query,
        problems=problems,
        rows=[],
        listing=None,
        states=cv.STATES,
        state_choices=cv.STATE_CHOICES,
    )


@router.get("/console/performance")
async def performance(request: Request, db: Db) -> Response:
    """The firm's own figures in the firm-performance report (``api.performance``: the API's
    report, the same rules), for a period of Beijing dates."""
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    raw = {k: request.query_params.get(k, "")[:300] for k in ("from", "to")}
    period = cv.period_of(raw["from"], raw["to"], datetime.now(view.BEIJING).date())
    problems = period if isinstance(period, list) else []
    report = None
    if isinstance(period, tuple):
        try:
            check_period(*period)
        except PeriodError as e:
            problems.append(cv.Problem(e.field, e.message))
        else:
            scope = scope_for(m.p.role, m.p.firm_id, m.p.community_ids)
            report = await firm_performance(db, scope, *period, now=web.now())
    mine = report.firms[0] if report and report.firms else None
    return _page(
        "console_performance.html",
        m,
        422 if problems else 200,
        problems=problems,
        raw=raw,
        period=period if isinstance(period, tuple) else None,
        last_day=period[1] - timedelta(days=1) if isinstance(period, tuple) else None,
        f=mine,
        limit_kinds=LIMIT_KINDS,
    )


@router.get("/console/performance.{fmt}")
async def performance_file(request: Request, db: Db, fmt: str) -> Response:
    """The same figures as a spreadsheet (the API's export of the report)."""
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    raw = {k: request.query_params.get(k, "")[:300] for k in ("from", "to")}
    period = cv.period_of(raw["from"], raw["to"], datetime.now(view.BEIJING).date())
    problems = period if isinstance(period, list) else []
    if fmt not in ("xlsx", "csv"):
        problems.append(cv.Problem("format", "文件格式应为 xlsx 或 csv format must be xlsx or csv"))
    if isinstance(period, tuple) and not problems:
        try:
            return await export_routes.export_firm_performance(
                db,
                m.p,
                fmt,  # type: ignore[arg-type]
                *period,
            )
        except ApiError as e:
            problems.append(cv.Problem("from", e.message))
    return _page(
        "console_performance.html",
        m,
        422,
        problems=problems,
        raw=raw,
        period=None,
        last_day=None,
        f=None,
        limit_kinds=LIMIT_KINDS,
    )


@router.get("/console/devices")
async def devices(request: Request, db: Db) -> Response:
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    raw = {k: v[:300] for k, v in request.query_params.items()}
    problems: list[cv.Problem] = []
    community = cv.community_id(raw.get("community", ""), m.communities)
    if isinstance(community, cv.Problem):
        problems.append(community)
        community = None
    cls_raw = raw.get("class", "").strip()
    device_class = None
    if cls_raw:
        try:
            device_class = DeviceClass(cls_raw)
        except ValueError:
            choices = ", ".join(c.value for c in DeviceClass)
            problems.append(
                cv.Problem("class", f"类别应为以下之一 class must be one of: {choices}")
            )
    cursor = raw.get("cursor", "").strip() or None
    rows: list[dict[str, Any]] = []
    next_cursor = None
    if not problems:
        try:
            got = await device_routes.list_devices(
                db,
                m.p,
                PageParams(cv.PAGE_SIZE, cursor),
                community_id=community,
                building_id=None,
                maintenance_unit_id=None,
                device_class=device_class,
                active=True,
            )
        except ApiError as e:
            problems.append(cv.Problem("cursor", f"{e.message}（请重新筛选 start again）"))
        else:
            rows, next_cursor = await _device_states(db, got.items), got.next
    query = {"community": community, "class": device_class.value if device_class else None}
    next_query = {k: v for k, v in {**query, "cursor": next_cursor}.items() if v}
    return _page(
        "console_devices.html",
        m,
        422 if problems else 200,
        raw=raw,
        problems=problems,
        rows=rows,
        next_query=next_query if next_cursor else None,
        classes=DEVICE_CLASSES,
    )


async def _device_states(db: AsyncConn, items: list[device_routes.Device]) -> list[dict[str, Any]]:
    """Each device (as the API listed it) with its presence, open alarms and whether it is in a
    maintenance window now."""
    cur = await db.execute(
        "SELECT d.id, pr.online, pr.last_seen,"
        " (SELECT count(*) FROM alarms a WHERE a.device_id = d.id AND a.state <> 'cleared'),"
        " device_in_maintenance(d.id, now())"
        " FROM devices d LEFT JOIN device_presence pr ON pr.device_id = d.id"
        " WHERE d.id = ANY(%s)",
        ([d.id for d in items],),
    )
    state = {int(r[0]): r[1:] for r in await cur.fetchall()}
    out = []
    for d in items:
        online, seen, alarms, maintenance = state.get(d.id, (None, None, 0, False))
        out.append(
            {
                "d": d,
                "online": online,
                "last_seen": seen,
                "alarms": int(alarms),
                "maintenance": bool(maintenance),
            }
        )
    return out


@router.get("/console/people")
async def people(request: Request, db: Db) -> Response:
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    cursor = request.query_params.get("cursor", "").strip()[:300] or None
    try:
        got = await people_routes.list_people(
            db, m.p, PageParams(cv.PAGE_SIZE, cursor), role=None, firm_id=m.me.firm_id, active=None
        )
    except ApiError as e:
        problems = [cv.Problem("cursor", f"{e.message}（请重新打开 open the list again）")]
        return _page("console_people.html", m, 422, problems=problems, rows=[], next=None)
    ids = [x.id for x in got.items]
    cur = await db.execute("SELECT person_id FROM person_logins WHERE person_id = ANY(%s)", (ids,))
    logins = {int(r[0]) for r in await cur.fetchall()}
    rows = []
    for person in got.items:
        # The API's own view of the person: its channels, masked as it masks them for this caller.
        detail = await people_routes.get_person(db, m.p, person.id)
        rows.append({"p": detail, "login": person.id in logins})
    return _page("console_people.html", m, problems=[], rows=rows, next=got.next)


@router.get("/console/roster")
async def roster(request: Request, db: Db) -> Response:
    m = await _manager(request, db)
    if isinstance(m, Response):
        return m
    raw = request.query_params.get("week", "")[:300]
    today = datetime.now(view.BEIJING).date()
    monday = cv.week_of(raw, today)
    if isinstance(monday, cv.Problem):
        return _page("console_roster.html", m, 422, problems=[monday], raw=raw, grid={}, days=[])
    start, end = cv.week_bounds(monday)
    # duty_shifts as every roster writes it (the API's POST /v1/shifts, patterns, imports).
    cur = await db.execute(
        "SELECT s.community_id, s.role, p.name, s.starts_at, s.ends_at, s.slot FROM duty_shifts s"
        " JOIN people p ON p.id = s.person_id"
        " WHERE s.community_id = ANY(%(c)s) AND s.starts_at < %(end)s AND s.ends_at > %(start)s"
        " ORDER BY s.starts_at, p.name LIMIT 5000",
        {"c": sorted(m.communities), "start": start, "end": end},
    )
    shifts = [
        cv.RosterShift(int(c), str(r), str(n), s, e, slot)
        for c, r, n, s, e, slot in await cur.fetchall()
    ]
    grid = cv.week_grid(shifts, m.communities, monday)
    days = [monday + timedelta(days=i) for i in range(7)]
    return _page(
        "console_roster.html",
        m,
        problems=[],
        raw=raw,
        grid=grid,
        days=days,
        today=today,
        weekdays=list(zip(cv.WEEKDAYS, cv.WEEKDAYS_EN, strict=True)),
        prev=(monday - timedelta(days=7)).isoformat(),
        next=(monday + timedelta(days=7)).isoformat(),
    )
