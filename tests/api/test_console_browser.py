"""The firm console in a real browser: headless Chromium from Debian (``/usr/bin/chromium``,
driven by Playwright, which never downloads a browser) against the API served by uvicorn on
loopback with the default (Secure) cookies, as the demo serves it. A firm manager signs in from
the console, filters the work orders to one community and those past a limit and sees exactly
the API's rows, and opens a roster week whose shifts were made through ``POST /v1/shifts``.
Every page fits a 360 px screen without horizontal scrolling; a screenshot of each at 360 px
and 1280 px is kept in the test's tmp dir (and copied to ``$SHOUWANG_TEST_ARTEFACTS/console``
when set)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Browser, Page

from core.db import connect
from core.settings import Settings
from tests.api import report_data as make
from tests.api.browser import DESKTOP, PHONE, overflow
from tests.api.conftest import Api, LiveServer, live
from tests.api.pages_helpers import PAGE_SETTINGS, PASSWORD, add_staff
from tests.api.test_console import ZONE, Firm, api_rows, build_firm

PAGES = ("/console", "/console/work-orders", "/console/devices", "/console/people")
WEEK = date(2026, 3, 2)  # a Monday


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[LiveServer]:
    default = Settings.model_fields["pages_cookie_secure"].default
    settings = api_settings.model_copy(update={**PAGE_SETTINGS, "pages_cookie_secure": default})
    with live(settings) as s:
        yield s


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[list[Path]]:
    files: list[Path] = []
    yield files
    target = os.environ.get("SHOUWANG_TEST_ARTEFACTS")
    if target:
        out = Path(target) / "console"
        out.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy(path, out / path.name)


def shoot(page: Page, tmp_path: Path, kept: list[Path], name: str) -> None:
    shot = tmp_path / f"{name}-{page.viewport_size['width'] if page.viewport_size else 0}.png"
    page.screenshot(path=str(shot), full_page=True)
    kept.append(shot)


def test_a_firm_manager_filters_work_orders_and_reads_the_roster(
    server: LiveServer,
    chromium: Browser,
    api: Api,
    api_database: str,
    tmp_path: Path,
    kept: list[Path],
) -> None:
    with connect(api_database, autocommit=True) as db:
        firm: Firm = build_firm(db, "COBR", make.region(db, "COBR-T"), "13600000001", 2)
        other = build_firm(db, "COBX", make.region(db, "COBX-T"), "13600000002", 1)
        early = add_staff(db, "早班 周", "13600000003", firm_id=firm.id)
        late = add_staff(db, "晚班 吴", "13600000004", firm_id=firm.id)
    as_firm = Api(api.client, {**api.tokens, firm.code: firm.token, other.code: other.token})
    c1, c2 = firm.communities["COBR-C1"], firm.communities["COBR-C2"]
    # The week's roster, through the API: early on Mon, Wed, Fri, Sun; late on Tue, Thu, Sat.
    on_day: dict[date, str] = {}
    for i in range(7):
        day = WEEK + timedelta(days=i)
        who = early if i % 2 == 0 else late
        on_day[day] = who.name
        body = {
            "community_id": c1,
            "role": "duty_staff",
            "person_id": who.id,
            "starts_at": datetime(day.year, day.month, day.day, 8, tzinfo=ZONE).isoformat(),
            "ends_at": datetime(day.year, day.month, day.day, 20, tzinfo=ZONE).isoformat(),
        }
        r = as_firm.as_(firm.code).post("/v1/shifts", json=body)
        assert r.status_code == 201, r.text
    body = {**body, "community_id": other.communities["COBX-C1"], "person_id": other.manager.id}
    assert as_firm.as_(other.code).post("/v1/shifts", json=body).status_code == 201

    # Signing in from the console: to the sign-in page, then back to the console.
    phone = chromium.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN").new_page()
    phone.set_default_timeout(10_000)
    phone.goto(f"{server.url}/console/work-orders")
    assert "/duty/login" in phone.url
    phone.fill("input[name=phone]", firm.manager.phone)
    phone.fill("input[name=password]", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{server.url}/console/work-orders")
    kept_cookies = {c["name"]: (c["path"], c["secure"]) for c in phone.context.cookies()}
    assert kept_cookies.get("sw_console") == ("/console", True), kept_cookies

    # Filter to the first community and those past a limit, as a person does it.
    phone.select_option("select[name=community]", str(c1))
    phone.check("input[name=overdue]")
    phone.click("form.filters button[type=submit]")
    phone.wait_for_url(f"{server.url}/console/work-orders?community={c1}*overdue=1*")
    shown = [
        int(x)
        for x in phone.locator("#work-orders tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.id)"
        )
    ]
    assert set(shown) == {firm.orders["late"], firm.orders["slow"]}
    assert shown == api_rows(as_firm, firm, {"community_id": c1}, True)
    assert phone.locator(f'a[href="/duty/alarms/{firm.alarms["late"]}"]').count() == 1
    assert overflow(phone) == 0
    shoot(phone, tmp_path, kept, "work-orders-filtered")

    # The same rows as a spreadsheet, downloaded as a person does it and opened with openpyxl:
    # the API's work orders, with the API's figures (state, limits and their outcomes).
    with phone.expect_download() as got:
        phone.click("#download-xlsx")
    assert got.value.suggested_filename.endswith(".xlsx")
    saved = tmp_path / got.value.suggested_filename
    got.value.save_as(saved)
    sheet = openpyxl.load_workbook(saved, read_only=True).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    col = {str(h).split(" ", 1)[1] if " " in str(h) else str(h): i for i, h in enumerate(header)}
    assert [r[0] for r in rows] == shown
    for r in rows:
        wo = as_firm.as_(firm.code).get(f"/v1/work-orders/{r[0]}").json()
        assert r[col["Status"]] == wo["status"]
        assert r[col["Event code"]] == wo["event_code"]
        due = datetime.fromisoformat(wo["response_due"]).astimezone(ZONE).replace(tzinfo=None)
        assert r[col["Response due (Beijing time)"]] == due.replace(microsecond=0)
        outcomes = {s["kind"]: s["outcome"] for s in wo["sla"]}
        assert r[col["Response limit"]] == outcomes["response"]
        assert r[col["Resolution limit"]] == outcomes["resolution"]

    # The roster's week: the right person on each day.
    phone.goto(f"{server.url}/console/roster")
    phone.fill("input[name=week]", (WEEK + timedelta(days=3)).isoformat())
    phone.click("form.filters button[type=submit]")
    phone.wait_for_url(f"{server.url}/console/roster?week=*")
    section = phone.locator(f"#community-{c1}")
    for day, name in on_day.items():
        text = section.locator(f'li.day[data-day="{day.isoformat()}"]').inner_text()
        assert name in text and "08:00–20:00" in text, (day, text)
        assert (late.name if name == early.name else early.name) not in text, (day, text)
    assert "无排班" in phone.locator(f"#community-{c2}").inner_text()
    assert other.manager.name not in phone.content()
    assert overflow(phone) == 0
    shoot(phone, tmp_path, kept, "roster")

    desk = phone.context.browser
    assert desk is not None
    wide = desk.new_context(viewport=DESKTOP, locale="zh-CN")
    wide.add_cookies(phone.context.cookies())
    desktop = wide.new_page()
    desktop.goto(f"{server.url}/console/roster?week={WEEK.isoformat()}")
    assert overflow(desktop) == 0
    days = desktop.locator(f"#community-{c1} li.day")
    first, last = days.nth(0).bounding_box(), days.nth(6).bounding_box()
    assert first and last and abs(first["y"] - last["y"]) < 2  # the week in one row
    shoot(desktop, tmp_path, kept, "roster")
    desktop.goto(f"{server.url}/console/work-orders?community={c1}&overdue=1")
    shoot(desktop, tmp_path, kept, "work-orders-filtered")

    for path in PAGES:
        name = path.strip("/").replace("/", "-")
        for page in (phone, desktop):
            page.goto(f"{server.url}{path}")
            assert page.locator("h1").count() == 1, (path, page.content()[:500])
            assert "COBX" not in page.content()
            assert overflow(page) == 0, (path, page.viewport_size)
            shoot(page, tmp_path, kept, name)
    assert len(kept) == 2 * (len(PAGES) + 2)
    assert all(p.stat().st_size > 5000 for p in kept)


def test_a_rotating_pattern_puts_the_right_team_on_each_slot_across_two_weeks(
    server: LiveServer,
    chromium: Browser,
    api: Api,
    api_database: str,
    tmp_path: Path,
    kept: list[Path],
) -> None:
    """早/中/夜 (08-16, 16-24, 00-08) held by three teams that move on to the next slot every
    week, made once through ``POST /v1/roster-patterns``: the console's roster shows, on every
    day of the first two weeks, the team the rotation gives each slot, and the JSON API's
    on-duty answer agrees at one instant of each slot."""
    with connect(api_database, autocommit=True) as db:
        firm = build_firm(db, "CORP", make.region(db, "CORP-T"), "13600000011", 1)
        teams = [
            add_staff(db, name, phone, firm_id=firm.id)
            for name, phone in (
                ("甲 孙", "13600000012"),
                ("乙 李", "13600000013"),
                ("丙 郑", "13600000014"),
            )
        ]
    as_firm = Api(api.client, {**api.tokens, firm.code: firm.token})
    (cid,) = firm.communities.values()
    slots = [("早", "08:00", "16:00"), ("中", "16:00", "24:00"), ("夜", "00:00", "08:00")]
    r = as_firm.as_(firm.code).post(
        "/v1/roster-patterns",
        json={
            "community_id": cid,
            "role": "duty_staff",
            "name": "三班倒",
            "starts_on": WEEK.isoformat(),
            "ends_on": (WEEK + timedelta(days=13)).isoformat(),
            "rotate_every_days": 7,
            "slots": [{"name": name, "start": start, "minutes": 480} for name, start, _ in slots],
            "teams": [[t.id] for t in teams],
        },
    )
    assert r.status_code == 201, r.text

    def holder(day: date, slot: int) -> str:
        week = (day - WEEK).days // 7
        return teams[(slot + week) % len(teams)].name

    phone = chromium.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN").new_page()
    phone.set_default_timeout(10_000)
    phone.goto(f"{server.url}/console/roster?week={WEEK.isoformat()}")
    phone.fill("input[name=phone]", firm.manager.phone)
    phone.fill("input[name=password]", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{server.url}/console/roster?week={WEEK.isoformat()}")
    for week in range(2):
        if week:
            phone.click("#next")
            phone.wait_for_url(
                f"{server.url}/console/roster?week={(WEEK + timedelta(7)).isoformat()}"
            )
        section = phone.locator(f"#community-{cid}")
        for i in range(7):
            day = WEEK + timedelta(days=7 * week + i)
            items = section.locator(f'li.day[data-day="{day.isoformat()}"] li.shift')
            shown = sorted(items.all_inner_texts())
            expected = sorted(
                f"{start}–{end} {name} {holder(day, k)}"
                for k, (name, start, end) in enumerate(slots)
            )
            assert [" ".join(t.split()[:4]) for t in shown] == expected, (day, shown)
        assert overflow(phone) == 0
        shoot(phone, tmp_path, kept, f"roster-pattern-week{week + 1}")
    # The API routes alarms by the same shifts: one instant inside each slot of a week-2 day.
    day = WEEK + timedelta(days=9)
    for k, (_, start, _) in enumerate(slots):
        hour = int(start[:2]) + 1
        at = datetime(day.year, day.month, day.day, hour, tzinfo=ZONE)
        r = as_firm.as_(firm.code).get(
            f"/v1/communities/{cid}/on-duty", params={"at": at.isoformat()}
        )
        assert r.status_code == 200, r.text
        assert [p["name"] for p in r.json()["people"]] == [holder(day, k)], (start, r.json())


def test_a_maintenance_window_keeps_its_devices_work_orders_out_of_the_firms_figures(
    server: LiveServer,
    chromium: Browser,
    api: Api,
    api_database: str,
    tmp_path: Path,
    kept: list[Path],
) -> None:
    """A half-monthly service window opened through the API for one lift: a trapped passenger on
    that lift during the window is recorded but left out of the firm's figures on the console's
    performance page (which are the API report's), a fault on the fire panel beside it at the
    same time counts, and the devices page shows which device is in its window."""
    with connect(api_database, autocommit=True) as db:
        firm = build_firm(db, "COMW", make.region(db, "COMW-T"), "13600000021", 1)
    as_firm = Api(api.client, {**api.tokens, firm.code: firm.token})
    lift, panel = firm.devices["COMW-C1-E"], firm.devices["COMW-C1-FP"]
    now = datetime.now(ZONE)
    r = as_firm.as_(firm.code).post(
        "/v1/maintenance-windows",
        json={
            "kind": "service",
            "device_ids": [lift],
            "performer": "维保组 crew",
            "work_done": "half-monthly service",
            "ends_at": (now + timedelta(hours=1)).isoformat(),
        },
    )
    assert r.status_code == 201, r.text
    window = r.json()["id"]
    try:
        with connect(api_database, autocommit=True) as db:
            in_window = make.work_order(db, lift, "EL.ALARM_BUTTON", now + timedelta(seconds=1))
            beside = make.work_order(
                db, panel, "FP.FAULT", now + timedelta(seconds=1), severity="P2"
            )
        start, last = now.date() - timedelta(days=30), now.date()
        report = as_firm.as_(firm.code).get(
            "/v1/reports/firm-performance",
            params={"from": start.isoformat(), "to": (last + timedelta(days=1)).isoformat()},
        )
        assert report.status_code == 200, report.text
        [figures] = report.json()["firms"]
        # late, fresh, met and slow (built with the firm), the panel's fault; not the lift's
        # trapped passenger in its window (the complaint is counted apart).
        assert figures["work_orders"] == 5
        assert {c["key"]: c["work_orders"] for c in figures["by_event_code"]}.get("FP.FAULT") == 1

        phone = chromium.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN").new_page()
        phone.set_default_timeout(10_000)
        phone.goto(f"{server.url}/console/performance?from={start}&to={last}")
        phone.fill("input[name=phone]", firm.manager.phone)
        phone.fill("input[name=password]", PASSWORD)
        phone.click("button[type=submit]")
        phone.wait_for_url(f"{server.url}/console/performance?*")
        assert phone.locator("#work-orders").inner_text() == "5"
        response = figures["limits"]["response"]
        assert phone.locator("#limit-response .met").inner_text() == str(response["met"])
        assert phone.locator("#limit-response .missed").inner_text() == str(response["missed"])
        assert phone.locator("#complaints .received").inner_text() == "1"
        assert overflow(phone) == 0
        shoot(phone, tmp_path, kept, "performance")
        # The lift is shown in its window, the panel not; both work orders are listed.
        phone.goto(f"{server.url}/console/devices")
        rows = {
            r.get_attribute("data-uid"): r.inner_text()
            for r in phone.locator("#devices tbody tr").all()
        }
        assert "维保中" in rows["COMW-C1-E"] and "维保中" not in rows["COMW-C1-FP"], rows
        phone.goto(f"{server.url}/console/work-orders")
        listed = phone.locator("#work-orders tbody tr").evaluate_all(
            "rows => rows.map(r => Number(r.dataset.id))"
        )
        assert in_window in listed and beside in listed
        shoot(phone, tmp_path, kept, "devices-in-window")
    finally:
        with connect(api_database, autocommit=True) as db:
            db.execute("DELETE FROM maintenance_window_devices WHERE window_id = %s", (window,))
            db.execute("DELETE FROM maintenance_windows WHERE id = %s", (window,))
