"""The firm console over the real database: who may open it (firm and project managers; duty
staff get a 403 page; no session leads to the sign-in and back), scope (a manager of one firm
never sees another firm's work orders, devices, people or shifts, whatever ID or filter they
try), the work-order filters giving exactly the JSON API's rows for the same filters, bad
filters answered with a message naming the field, devices with their state, people with their
channels masked as the API masks them, and the roster's week."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest

from api.pages import console_view as cv
from api.pagination import encode_cursor
from api.tokens import issue
from core.channel_addresses import shown
from core.db import Conn, connect
from core.settings import Settings
from tests.api import report_data as make
from tests.api.conftest import Api
from tests.api.pages_helpers import PAGE_SETTINGS, Pages, Staff, add_staff, pages

ZONE = ZoneInfo("Asia/Shanghai")
HOOK = "https://hooks.example.com/robot/send?access_token=SECRET-TOKEN-123"
ROW_ID = re.compile(r'<tr data-id="(\d+)"')


@dataclass(frozen=True)
class Firm:
    id: int
    code: str
    communities: dict[str, int]  # code -> id
    devices: dict[str, int]  # uid -> id
    orders: dict[str, int]  # name -> work order id
    alarms: dict[str, int]  # name -> alarm id
    manager: Staff
    token: str


@dataclass(frozen=True)
class World:
    a: Firm
    b: Firm
    project_manager: Staff
    duty: Staff
    silent: int  # a person of firm A without login or channels
    duty_token: str  # a duty room's API token over firm A: a caller who manages no one


def _alarm_of(db: Conn, wo: int) -> int:
    row = db.execute("SELECT alarm_id FROM work_orders WHERE id = %s", (wo,)).fetchone()
    assert row is not None
    return int(row[0])


def build_firm(db: Conn, prefix: str, region: int, phone: str, communities: int) -> Firm:
    """A firm with ``communities`` communities (an elevator and a fire panel each), a manager
    with a login, a firm admin's API token, and work orders with known outcomes in the first
    two communities: ``late`` (open, its response limit passed), ``fresh`` (open, in time),
    ``met`` and ``slow`` (closed in time, closed with the response late), ``late2`` (open, past
    its limit, second community) and a resident's ``complaint``."""
    fid = make.firm(db, f"{prefix}-F")
    cids = {f"{prefix}-C{i}": make.community(db, f"{prefix}-C{i}", region, fid) for i in (1, 2)}
    cids = dict(list(cids.items())[:communities])
    devices: dict[str, int] = {}
    for code, cid in cids.items():
        devices[f"{code}-E"] = make.device(db, f"{code}-E", cid, "elevator")
        devices[f"{code}-FP"] = make.device(db, f"{code}-FP", cid, "fire_panel")
    now = datetime.now(UTC)
    c1 = f"{prefix}-C1-E"
    orders = {
        "late": make.work_order(db, devices[c1], "EL.TRAPPED", now - timedelta(hours=2)),
        "fresh": make.work_order(
            db, devices[c1], "EL.DOOR", now - timedelta(minutes=1), response_due_s=3600
        ),
        "met": make.work_order(
            db, devices[c1], "EL.STOP", now - timedelta(days=3), responded_s=30, closed_s=600
        ),
        "slow": make.work_order(
            db,
            devices[c1],
            "EL.OVERSPEED",
            now - timedelta(days=10),
            responded_s=300,
            closed_s=3000,
        ),
        "complaint": make.complaint(
            db, cids[f"{prefix}-C1"], "CP.NOISE", now - timedelta(minutes=5)
        ),
    }
    if communities > 1:
        orders["late2"] = make.work_order(
            db, devices[f"{prefix}-C2-E"], "EL.TRAPPED", now - timedelta(hours=3)
        )
    alarms = {k: _alarm_of(db, v) for k, v in orders.items() if k != "complaint"}
    manager = add_staff(db, f"经理 {prefix}", phone, role="firm_manager", firm_id=fid)
    token = issue(db, "firm_admin", f"console test {prefix}", {"firm": f"{prefix}-F"}).token
    return Firm(fid, f"{prefix}-F", cids, devices, orders, alarms, manager, token)


@pytest.fixture(scope="module")
def world(api_database: str) -> World:
    with connect(api_database, autocommit=True) as db:
        region = make.region(db, "CON-T")
        a = build_firm(db, "CONA", region, "13700000001", 2)
        b = build_firm(db, "CONB", region, "13700000002", 1)
        pm = add_staff(db, "项目经理 钱", "13700000003", role="project_manager", firm_id=a.id)
        duty = add_staff(db, "值班员 孙", "13700000004", firm_id=a.id)
        row = db.execute(
            "INSERT INTO people (name, role, firm_id) VALUES ('值班员 无登录', 'duty_staff', %s)"
            " RETURNING id",
            (a.id,),
        ).fetchone()
        assert row is not None
        db.execute(
            "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES"
            " (%s, 'wecom', %s, NULL), (%s, 'email', 'qian@example.com', NULL)",
            (pm.id, HOOK, pm.id),
        )
        # Device state: A's lift online and seen, its fire panel offline, the second
        # community's lift in a maintenance window now.
        now = datetime.now(UTC)
        db.execute(
            "INSERT INTO device_presence (device_id, last_seen, online) VALUES (%s, %s, true),"
            " (%s, %s, false)",
            (
                a.devices["CONA-C1-E"],
                now - timedelta(minutes=2),
                a.devices["CONA-C1-FP"],
                now - timedelta(days=1),
            ),
        )
        w = db.execute(
            "INSERT INTO maintenance_windows (community_id, kind, starts_at, ends_at, performer,"
            " opened_by) VALUES (%s, 'service', %s, %s, 'test unit', 'test') RETURNING id",
            (a.communities["CONA-C2"], now - timedelta(hours=1), now + timedelta(hours=1)),
        ).fetchone()
        assert w is not None
        db.execute(
            "INSERT INTO maintenance_window_devices (window_id, device_id) VALUES (%s, %s)",
            (w[0], a.devices["CONA-C2-E"]),
        )
        duty_token = issue(db, "duty_staff", "console test duty", {"firm": "CONA-F"}).token
        return World(a, b, pm, duty, int(row[0]), duty_token)


@pytest.fixture(scope="module")
def client(api_settings: Settings) -> Iterator[Pages]:
    with pages(api_settings.model_copy(update=PAGE_SETTINGS)) as p:
        yield p


@pytest.fixture
def browser(client: Pages) -> Pages:
    client.reset()
    return client


def console_as(browser: Pages, who: Staff) -> Pages:
    """Signed in at /duty/login, and through the bridge to the console."""
    r = browser.sign_in(who.phone)
    assert r.status_code == 303, r.text
    r = browser.get("/duty/console")
    assert r.status_code == 303 and r.headers["location"] == "/console", r.text
    return browser


def ok(r: httpx.Response) -> str:
    assert r.status_code == 200, (r.status_code, r.text[:2000])
    return r.text


def row_ids(page: str) -> list[int]:
    return [int(i) for i in ROW_ID.findall(page)]


def api_rows(api: Api, firm: Firm, params: dict[str, Any], overdue: bool) -> list[int]:
    """The work orders the JSON API lists for these filters (all pages, newest first); with
    ``overdue``, those with a limit whose outcome is ``missed``."""
    out: list[int] = []
    query: dict[str, Any] = {**params, "limit": 500}
    while True:
        r = api.as_(firm.code).get("/v1/work-orders", params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        out += [
            w["id"]
            for w in body["items"]
            if not overdue or any(lim["outcome"] == "missed" for lim in w["sla"])
        ]
        if body["next"] is None:
            return out
        query["cursor"] = body["next"]


@pytest.fixture(scope="module")
def as_firms(api: Api, world: World) -> Api:
    return Api(
        api.client,
        {
            **api.tokens,
            world.a.code: world.a.token,
            world.b.code: world.b.token,
            "duty_a": world.duty_token,
        },
    )


# Who may open it.


def test_without_a_session_the_console_leads_to_the_sign_in_and_back(
    browser: Pages, world: World
) -> None:
    target = "/console/work-orders?state=open&overdue=1"
    r = browser.get(target)
    assert r.status_code == 303
    bridge = r.headers["location"]
    assert bridge == f"/duty/console?next={quote(target, safe='')}"
    r = browser.get(bridge)
    assert r.status_code == 303
    login = r.headers["location"]
    assert login.startswith("/duty/login?next=")
    form = ok(browser.get(login))
    found = re.search(r'name="next" value="([^"]+)"', form)
    assert found, form
    back = html.unescape(found.group(1))
    assert back == bridge  # the sign-in page keeps the way back
    r = browser.sign_in(world.a.manager.phone, next=back)
    assert r.status_code == 303 and r.headers["location"] == bridge
    r = browser.get(bridge)
    assert r.status_code == 303 and r.headers["location"] == target
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("sw_console=") and "Path=/console" in cookie
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = ok(browser.get(target))
    assert "工单与时限" in page and world.a.manager.name in page
    assert page.count('<tr data-id="') == 2  # A's two open work orders past a limit
    # Only a console path: the bridge never sends anyone to another site.
    for bad in ("https://evil.example/", "//evil.example/console", "/duty", "/consolex"):
        r = browser.get(f"/duty/console?next={quote(bad, safe='')}")
        assert r.status_code == 303 and r.headers["location"] == "/console", bad
    # Signing out ends the console's session too.
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    assert browser.post("/duty/logout", data={"csrf": csrf.group(1)}).status_code == 303
    r = browser.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/duty/console")
    assert browser.get(r.headers["location"]).headers["location"].startswith("/duty/login")


def test_the_next_person_signing_in_never_finds_the_last_ones_console(
    browser: Pages, world: World
) -> None:
    """A shared duty-room computer: A uses the console and leaves without signing out; B signs
    in at the duty pages. The console is B's (A's copy of the session was forgotten)."""
    console_as(browser, world.a.manager)
    assert world.a.manager.name in ok(browser.get("/console"))
    r = browser.sign_in(world.b.manager.phone)
    assert r.status_code == 303
    assert 'sw_console=""' in r.headers["set-cookie"] or "sw_console=;" in r.headers["set-cookie"]
    r = browser.get("/console")
    assert r.status_code == 303 and r.headers["location"].startswith("/duty/console")
    assert browser.get(r.headers["location"]).headers["location"] == "/console"
    page = ok(browser.get("/console"))
    assert world.b.manager.name in page and world.a.manager.name not in page


def test_duty_staff_get_a_403_page_and_a_project_manager_gets_in(
    browser: Pages, world: World
) -> None:
    r = browser.sign_in(world.duty.phone)
    assert r.status_code == 303
    r = browser.get("/duty/console?next=/console/people")
    assert r.status_code == 403
    assert "物业经理和项目经理" in r.text and "firm managers and project managers" in r.text
    assert "sw_console" not in r.headers.get("set-cookie", "")
    # A cookie copied by hand does not help either.
    session = [c.value for c in browser.client.cookies.jar if c.name == "sw_session"]
    assert len(session) == 1 and session[0]
    for path in ("/console", "/console/work-orders", "/console/people", "/console/roster"):
        r = browser.get(path, headers={"Cookie": f"sw_console={session[0]}"})
        assert r.status_code == 403 and "物业经理和项目经理" in r.text, path
        assert world.a.manager.name not in r.text
    browser.reset()
    console_as(browser, world.project_manager)
    assert "项目经理" in ok(browser.get("/console"))


# Overview and work orders.


def test_the_overview_counts_open_work_orders_per_community_as_the_api(
    browser: Pages, world: World, as_firms: Api
) -> None:
    page = ok(console_as(browser, world.a.manager).get("/console"))
    a = world.a
    for code, cid in a.communities.items():
        row = re.search(rf'<tr data-community="{cid}">(.*?)</tr>', page, re.S)
        assert row, code
        cells = [int(n) for n in re.findall(r">(\d+)</a>", row.group(1))]
        open_ids = api_rows(as_firms, a, {"community_id": cid, "open": "true"}, False)
        late_ids = api_rows(as_firms, a, {"community_id": cid, "open": "true"}, True)
        statuses = (
            as_firms.as_(a.code)
            .get("/v1/work-orders", params={"community_id": cid, "open": "true", "limit": 500})
            .json()["items"]
        )
        by_state = [sum(w["status"] == s for w in statuses) for s in cv.OPEN_STATES]
        assert cells == [*by_state, len(open_ids), len(late_ids)], code
    c1 = re.search(rf'<tr data-community="{a.communities["CONA-C1"]}">(.*?)</tr>', page, re.S)
    assert c1 and re.findall(r">(\d+)</a>", c1.group(1))[-2:] == ["3", "1"]  # 3 open, 1 late
    assert str(world.b.communities["CONB-C1"]) not in re.findall(r'data-community="(\d+)"', page)
    assert "CONB" not in page


def test_each_filter_gives_exactly_the_api_rows(
    browser: Pages, world: World, as_firms: Api
) -> None:
    a = world.a
    console_as(browser, a.manager)
    c1, c2 = a.communities["CONA-C1"], a.communities["CONA-C2"]
    today = datetime.now(ZONE).date()
    three = (datetime.now(UTC) - timedelta(days=3)).astimezone(ZONE).date()
    cases: list[tuple[dict[str, str], dict[str, Any], set[str] | None]] = [
        ({}, {}, {"late", "fresh", "met", "slow", "complaint", "late2"}),
        ({"overdue": "1"}, {}, {"late", "slow", "late2"}),
        ({"community": str(c1)}, {"community_id": c1}, None),
        ({"community": str(c1), "overdue": "1"}, {"community_id": c1}, {"late", "slow"}),
        ({"state": "open", "overdue": "1"}, {"open": "true"}, {"late", "late2"}),
        ({"state": "closed"}, {"open": "false"}, {"met", "slow"}),
        (
            {"state": "occurred", "community": str(c2)},
            {"status": "occurred", "community_id": c2},
            {"late2"},
        ),
        ({"code": "el.trapped"}, {"event_code": "EL.TRAPPED"}, {"late", "late2"}),
        ({"code": "CP.NOISE"}, {"event_code": "CP.NOISE"}, {"complaint"}),
        (
            {"from": three.isoformat(), "to": three.isoformat()},
            {
                "opened_from": cv.beijing_midnight(three).isoformat(),
                "opened_until": cv.beijing_midnight(three + timedelta(days=1)).isoformat(),
            },
            {"met"},
        ),
        (
            {"from": today.isoformat()},
            {"opened_from": cv.beijing_midnight(today).isoformat()},
            None,
        ),
    ]
    for query, params, expected in cases:
        r = browser.get("/console/work-orders", params=query)
        got = row_ids(ok(r))
        overdue = query.get("overdue") == "1"
        assert got == api_rows(as_firms, a, params, overdue), query
        if expected is not None:
            assert set(got) == {a.orders[k] for k in expected}, query
    # Each row leads to its alarm's page, a complaint to the complaint's page, with the API's
    # figures: the late order's response limit missed, its due time in Beijing time.
    page = ok(browser.get("/console/work-orders", params={"community": str(c1)}))
    assert f'href="/duty/alarms/{a.alarms["late"]}"' in page
    assert f'href="/duty/complaints/{a.orders["complaint"]}"' in page
    late = as_firms.as_(a.code).get(f"/v1/work-orders/{a.orders['late']}").json()
    row = re.search(rf'<tr data-id="{a.orders["late"]}" class="overdue">(.*?)</tr>', page, re.S)
    assert row, page
    due = datetime.fromisoformat(late["sla"][0]["due"]).astimezone(ZONE).strftime("%Y-%m-%d %H:%M")
    assert due in row.group(1) and "outcome missed" in row.group(1)
    assert "电梯困人" in row.group(1)  # named as the responsibility list names it


def test_the_download_holds_exactly_the_rows_the_page_filters_to(
    browser: Pages, world: World, as_firms: Api
) -> None:
    """XLSX and CSV of the page's filters (all pages, "past a limit" kept): the same work orders
    as the page and the JSON API, whatever the page's own position."""
    a = world.a
    console_as(browser, a.manager)
    c1 = a.communities["CONA-C1"]
    for query, params, overdue in (
        ({"overdue": "1"}, {}, True),
        ({"community": str(c1)}, {"community_id": c1}, False),
        ({"community": str(c1), "overdue": "1", "cursor": "junk"}, {"community_id": c1}, True),
    ):
        expected = api_rows(as_firms, a, params, overdue)
        assert expected, query
        r = browser.get("/console/work-orders.xlsx", params=query)
        assert r.status_code == 200, r.text[:500]
        assert r.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        assert "attachment" in r.headers["content-disposition"]
        sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
        ids = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
        assert ids == expected, query
        r = browser.get("/console/work-orders.csv", params=query)
        assert r.status_code == 200, r.text[:500]
        lines = r.content.decode("utf-8-sig").splitlines()[1:]
        assert [int(line.split(",")[0]) for line in lines] == expected, query
    # The page offers them with its own filters, without its page position.
    page = ok(browser.get("/console/work-orders", params={"community": str(c1)}))
    assert f'href="/console/work-orders.xlsx?community={c1}"' in page
    # A bad filter or format is named on the page, and nothing is sent.
    r = browser.get("/console/work-orders.xlsx", params={"state": "nonsense"})
    assert r.status_code == 422 and "state" in r.text and "text/html" in r.headers["content-type"]
    r = browser.get("/console/work-orders.pdf")
    assert r.status_code == 422 and "xlsx" in r.text
    # Another firm's manager gets only their own firm's rows.
    browser.reset()
    console_as(browser, world.b.manager)
    r = browser.get("/console/work-orders.csv")
    got = {int(line.split(",")[0]) for line in r.content.decode("utf-8-sig").splitlines()[1:]}
    assert got and not got & set(a.orders.values())


def test_the_performance_page_names_bad_dates_and_downloads_the_firms_row(
    browser: Pages, world: World, as_firms: Api
) -> None:
    a = world.a
    console_as(browser, a.manager)
    for query, field in (
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-06-10", "to": "2026-06-01"}, "to"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "to"),  # over a year
    ):
        r = browser.get("/console/performance", params=query)
        assert r.status_code == 422 and f"<code>{field}</code>" in r.text, (query, r.text[:300])
    today = datetime.now(ZONE).date()
    start = today - timedelta(days=20)
    params = {"from": start.isoformat(), "to": today.isoformat()}
    page = ok(browser.get("/console/performance", params=params))
    api = as_firms.as_(a.code).get(
        "/v1/reports/firm-performance",
        params={"from": start.isoformat(), "to": (today + timedelta(days=1)).isoformat()},
    )
    [mine] = api.json()["firms"]
    assert f'id="work-orders">{mine["work_orders"]}<' in page
    r = browser.get("/console/performance.xlsx", params=params)
    assert r.status_code == 200, r.text[:300]
    sheet = openpyxl.load_workbook(io.BytesIO(r.content), read_only=True).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [row[1] for row in rows] == [a.code], "the firm's own row only"


def test_paging_walks_the_same_rows_as_the_api(
    browser: Pages, world: World, as_firms: Api, api_db: Conn
) -> None:
    a = world.a
    now = datetime.now(UTC)
    extra = [
        make.work_order(api_db, a.devices["CONA-C2-FP"], f"FP.PAGE{i}", now - timedelta(hours=5))
        for i in range(cv.PAGE_SIZE + 5)
    ]
    console_as(browser, a.manager)
    query: dict[str, str] = {"community": str(a.communities["CONA-C2"]), "overdue": "1"}
    seen: list[int] = []
    pages_read = 0
    while True:
        page = ok(browser.get("/console/work-orders", params=query))
        seen += row_ids(page)
        pages_read += 1
        found = re.search(r'id="next" href="/console/work-orders\?([^"]+)"', page)
        if not found:
            break
        query = {k: v[0] for k, v in parse_qs(html.unescape(found.group(1))).items()}
    assert pages_read == 2
    expected = api_rows(as_firms, a, {"community_id": a.communities["CONA-C2"]}, True)
    assert seen == expected and set(extra) <= set(seen) and a.orders["late2"] in seen


# Scope.


def test_a_manager_never_sees_another_firms_records(
    browser: Pages, world: World, api_db: Conn
) -> None:
    a, b = world.a, world.b
    console_as(browser, a.manager)
    b_community = b.communities["CONB-C1"]
    pages_seen = [
        browser.get(path)
        for path in (
            "/console",
            "/console/work-orders",
            "/console/work-orders?state=open&overdue=1",
            f"/console/work-orders?cursor={encode_cursor((max(b.orders.values()) + 1,))}",
            "/console/devices",
            "/console/people",
            "/console/roster",
        )
    ]
    for r in pages_seen:
        assert r.status_code == 200, r.request.url
        assert "CONB" not in r.text and b.manager.name not in r.text, r.request.url
        assert not set(row_ids(r.text)) & set(b.orders.values()), r.request.url
    # Guessing B's community in a filter: refused with a message, nothing of B shown.
    for path in ("/console/work-orders", "/console/devices"):
        r = browser.get(path, params={"community": str(b_community)})
        assert r.status_code == 422
        assert "not one of your firm's communities" in html.unescape(r.text)
        assert "CONB" not in r.text and not row_ids(r.text)
    # The rows' links lead to pages that answer 404 for another firm's records.
    assert browser.get(f"/duty/alarms/{b.alarms['late']}").status_code == 404
    assert browser.get(f"/duty/complaints/{b.orders['complaint']}").status_code == 404
    # And the other way round.
    browser.reset()
    console_as(browser, b.manager)
    for path in ("/console", "/console/work-orders", "/console/devices", "/console/people"):
        text = ok(browser.get(path))
        assert "CONA" not in text and a.manager.name not in text
        assert not set(row_ids(text)) & set(a.orders.values())


# Bad filters.


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ({"community": "abc"}, "community", "not one of your firm's communities"),
        ({"community": "99999999999999"}, "community", "not one of your firm's communities"),
        ({"state": "lost"}, "state", "state must be one of"),
        ({"overdue": "maybe"}, "overdue", "overdue must be 1"),
        ({"from": "2026-13-01"}, "from", "YYYY-MM-DD"),
        ({"from": "20261201"}, "from", "YYYY-MM-DD"),
        ({"to": "1900-01-01"}, "to", "the year must be"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "to", "'to' is before 'from'"),
        ({"code": "<script>x</script>"}, "code", "a code such as EL.TRAPPED"),
        ({"cursor": "not-a-cursor"}, "cursor", "not valid"),
    ],
)
def test_a_bad_filter_is_named_on_the_page(
    browser: Pages, world: World, query: dict[str, str], field: str, words: str
) -> None:
    console_as(browser, world.a.manager)
    r = browser.get("/console/work-orders", params=query)
    assert r.status_code == 422, r.text[:500]
    problems = re.search(r'<div class="error" role="alert" id="problems">(.*?)</div>', r.text, re.S)
    assert problems, r.text
    assert f"<code>{field}</code>" in problems.group(1) and words in html.unescape(
        problems.group(1)
    )
    assert not row_ids(r.text)  # no rows under a filter that could not be used
    assert "<script>" not in r.text  # what was typed is shown as text


def test_bad_device_and_roster_filters_are_named(browser: Pages, world: World) -> None:
    console_as(browser, world.a.manager)
    r = browser.get("/console/devices", params={"class": "toaster"})
    assert (
        r.status_code == 422
        and "class must be one of" in html.unescape(r.text)
        and "elevator" in r.text
    )
    r = browser.get("/console/roster", params={"week": "next tuesday"})
    assert r.status_code == 422 and "<code>week</code>" in r.text and "YYYY-MM-DD" in r.text
    r = browser.get("/console/people", params={"cursor": "zzz"})
    assert r.status_code == 422 and "<code>cursor</code>" in r.text


# Devices and people.


def test_devices_show_their_state_and_filter_by_community_and_class(
    browser: Pages, world: World
) -> None:
    a = world.a
    console_as(browser, a.manager)
    page = ok(browser.get("/console/devices"))
    uids = re.findall(r'<tr data-uid="([^"]+)">', page)
    assert sorted(uids) == sorted(a.devices)

    def row(uid: str) -> str:
        found = re.search(rf'<tr data-uid="{re.escape(uid)}">(.*?)</tr>', page, re.S)
        assert found, uid
        return found.group(1)

    assert "在线" in row("CONA-C1-E") and "离线" not in row("CONA-C1-E")
    assert "离线" in row("CONA-C1-FP")
    assert "未上报" in row("CONA-C2-FP")  # never heard from
    assert "维保中 <small>in a window" in row("CONA-C2-E")
    assert "in a window" not in row("CONA-C1-E")
    # Open alarms: the lift has the open late and fresh work orders' alarms.
    assert re.search(r'class="num late">2<', row("CONA-C1-E"))
    page = ok(browser.get("/console/devices", params={"class": "fire_panel"}))
    assert sorted(re.findall(r'<tr data-uid="([^"]+)">', page)) == ["CONA-C1-FP", "CONA-C2-FP"]
    page = ok(
        browser.get(
            "/console/devices",
            params={"class": "elevator", "community": str(a.communities["CONA-C2"])},
        )
    )
    assert re.findall(r'<tr data-uid="([^"]+)">', page) == ["CONA-C2-E"]


def test_people_show_role_login_and_channels_masked_as_the_api(
    browser: Pages, world: World, as_firms: Api
) -> None:
    a = world.a
    page = ok(console_as(browser, a.manager).get("/console/people"))
    ids = [int(i) for i in re.findall(r'<tr data-person="(\d+)"', page)]
    assert set(ids) == {a.manager.id, world.project_manager.id, world.duty.id, world.silent}
    pm = re.search(rf'<tr data-person="{world.project_manager.id}">(.*?)</tr>', page, re.S)
    assert pm
    assert "项目经理" in pm.group(1) and "已设置" in pm.group(1)
    assert f"<code>{shown(HOOK)}</code>" in pm.group(1)  # scheme and host only
    assert "SECRET-TOKEN-123" not in page and "access_token" not in page
    assert "qian@example.com" in pm.group(1)
    silent = re.search(rf'<tr data-person="{world.silent}">(.*?)</tr>', page, re.S)
    assert silent and "未设置" in silent.group(1)
    # The same masking as the JSON API gives a caller who does not manage the person.
    r = as_firms.as_("duty_c01").get(f"/v1/people/{world.project_manager.id}")
    assert r.status_code == 404  # another firm's duty room: not even visible there
    r = as_firms.as_("duty_a").get(f"/v1/people/{world.project_manager.id}")
    assert r.status_code == 200, r.text
    assert {c["kind"] for c in r.json()["channels"]} == {"wecom", "email"}
    for c in r.json()["channels"]:
        assert f"<code>{html.escape(c['address'])}</code>" in pm.group(1)


# Roster.


def test_the_roster_week_shows_who_is_on_duty_each_day(
    browser: Pages, world: World, as_firms: Api
) -> None:
    a, b = world.a, world.b
    monday = date(2026, 3, 2)

    def at(d: date, hour: int) -> str:
        return datetime(d.year, d.month, d.day, hour, tzinfo=ZONE).isoformat()

    def shift(firm: Firm, community: int, person: int, start: str, end: str) -> None:
        body = {
            "community_id": community,
            "role": "duty_staff",
            "person_id": person,
            "starts_at": start,
            "ends_at": end,
        }
        r = as_firms.as_(firm.code).post("/v1/shifts", json=body)
        assert r.status_code == 201, r.text

    c1 = a.communities["CONA-C1"]
    tue, wed = monday + timedelta(days=1), monday + timedelta(days=2)
    shift(a, c1, world.duty.id, at(monday, 8), at(monday, 20))
    shift(a, c1, world.project_manager.id, at(monday, 20), at(tue, 8))
    shift(a, a.communities["CONA-C2"], world.duty.id, at(wed, 9), at(wed, 17))
    shift(b, b.communities["CONB-C1"], b.manager.id, at(monday, 8), at(monday, 20))
    console_as(browser, a.manager)
    page = ok(browser.get("/console/roster", params={"week": wed.isoformat()}))

    def day(community: int, d: date) -> str:
        section = re.search(
            rf'<section class="week" id="community-{community}">(.*?)</section>', page, re.S
        )
        assert section
        found = re.search(
            rf'data-day="{d.isoformat()}">(.*?)</li>\s*(?=<li class="day|</ol>)',
            section.group(1),
            re.S,
        )
        assert found, d
        return re.sub(r"\s+", " ", found.group(1))

    assert '08:00–20:00</span> <span class="person">值班员 孙' in day(c1, monday)
    assert '20:00–24:00…</span> <span class="person">项目经理 钱' in day(c1, monday)
    assert '…00:00–08:00</span> <span class="person">项目经理 钱' in day(c1, tue)
    assert "值班员 孙" not in day(c1, tue) and "无排班" in day(c1, wed)
    assert '09:00–17:00</span> <span class="person">值班员 孙' in day(a.communities["CONA-C2"], wed)
    assert b.manager.name not in page
    # The week before and after are one click away; the default is this week.
    assert 'href="/console/roster?week=2026-02-23"' in page
    assert 'href="/console/roster?week=2026-03-09"' in page
    this_week = ok(browser.get("/console/roster"))
    today = datetime.now(ZONE).date()
    assert f'data-day="{today.isoformat()}"' in this_week and "today" in this_week


# The pure helpers.


def test_filters_read_beijing_dates_as_utc_bounds() -> None:
    f, problems = cv.parse_filters(
        {
            "community": "7",
            "state": "open",
            "overdue": "1",
            "from": "2026-12-01",
            "to": "2026-12-01",
            "code": " el.trapped ",
        },
        {7},
    )
    assert problems == []
    assert f.opened_from == datetime(2026, 11, 30, 16, tzinfo=UTC)
    assert f.opened_until == datetime(2026, 12, 1, 16, tzinfo=UTC)
    assert f.code == "EL.TRAPPED" and f.open is True and f.statuses is None and f.overdue
    assert parse_qs(f.query(cursor="abc")) == {
        "community": ["7"],
        "state": ["open"],
        "overdue": ["1"],
        "from": ["2026-12-01"],
        "to": ["2026-12-01"],
        "code": ["EL.TRAPPED"],
        "cursor": ["abc"],
    }
    assert urlsplit("/x?" + f.query()).query.count("cursor") == 0


def test_a_shift_past_midnight_is_split_between_its_days() -> None:
    start = datetime(2026, 3, 2, 20, tzinfo=ZONE)
    s = cv.RosterShift(1, "duty_staff", "钱", start, start + timedelta(hours=12))
    grid = cv.week_grid([s], [1, 2], date(2026, 3, 2))
    mon, tue = grid[1][0], grid[1][1]
    assert [(x.start, x.end, x.from_before, x.into_next) for x in mon] == [
        ("20:00", "24:00", False, True)
    ]
    assert [(x.start, x.end, x.from_before, x.into_next) for x in tue] == [
        ("00:00", "08:00", True, False)
    ]
    assert all(not d for d in grid[1][2:]) and all(not d for d in grid[2])
    assert cv.week_of("2026-03-08", date(2000, 1, 1)) == date(2026, 3, 2)  # a Sunday
    assert cv.week_of("", date(2026, 3, 4)) == date(2026, 3, 2)
    assert isinstance(cv.week_of("2026-02-30", date(2026, 3, 4)), cv.Problem)


def test_a_countdown_under_a_minute_is_in_seconds() -> None:
    """A P0's response limit is a minute: its first minute must not read "0 min left"."""
    from api.pages.view import countdown

    now = datetime(2026, 12, 1, 8, tzinfo=UTC)
    assert countdown(now + timedelta(seconds=55), None, now) == ("剩余 55 秒 s left", "soon")
    assert countdown(now - timedelta(seconds=5), None, now) == ("超时 5 秒 s over", "late")
    assert countdown(now + timedelta(minutes=3, seconds=30), None, now)[0] == "剩余 3 分 min left"
