"""A resident's complaint in a real browser: headless Chromium from Debian at a 360x740 phone
viewport, against the API served by uvicorn on loopback (as tests/api/test_pages_browser.py
drives the duty pages). The resident files a repair request with a photo from the notice
board's form and gets a tracking code; the firm's duty officer takes it on and completes it on
the duty pages; the tracking page then shows it resolved, with no personal data, and the
firm-performance report counts it handled in time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from core.db import Conn
from core.settings import Settings
from tests.api.browser import PHONE
from tests.api.conftest import Api, Ids, LiveServer, live
from tests.api.pages_helpers import PAGE_SETTINGS, PASSWORD, add_staff
from tests.api.test_pages import png, report


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[LiveServer]:
    """Plain HTTP on loopback with the default (Secure) cookies, as the demo serves the pages."""
    default = Settings.model_fields["pages_cookie_secure"].default
    settings = api_settings.model_copy(
        update={
            **PAGE_SETTINGS,
            "pages_cookie_secure": default,
            "complaints_per_client_hour": 10_000,
        }
    )
    with live(settings) as s:
        yield s


def phone_page(browser: Browser) -> Page:
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a 360px screen"


def test_a_complaint_from_the_form_to_resolved_on_a_phone(
    server: LiveServer,
    chromium: Browser,
    api: Api,
    ids: Ids,
    api_db: Conn,
    tmp_path: Path,
) -> None:
    before = report(api)["complaints"]
    resident = phone_page(chromium)
    resident.goto(f"{server.url}/board/C01/complaint")
    fits(resident)
    # A mistake first: a phone number that is not one, answered on the form itself.
    resident.select_option("select[name=category]", "CP.REPAIR")
    resident.fill("input[name=location]", "5号楼地下车库入口")
    resident.fill("textarea[name=description]", "车库入口卷帘门卡住，车辆无法进出")
    resident.fill("input[name=phone]", "12345678")
    resident.click("#submit")
    assert "mobile number (11 digits)" in resident.locator("#problems").inner_text()
    fits(resident)
    resident.screenshot(path=str(tmp_path / "01-form-error.png"), full_page=True)

    photo = tmp_path / "door.png"
    photo.write_bytes(png(extra=200))
    resident.fill("input[name=phone]", "139 5555 0001")
    resident.set_input_files("input[name=photo]", str(photo))
    resident.click("#submit")
    resident.wait_for_url(re.compile(r".*/complaints/[A-Z2-7]{16}\?new=1$"))
    code = resident.locator("#code").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{16}", code)
    assert resident.locator("#state").get_attribute("data-status") == "occurred"
    text = resident.content()
    for private in ("13955550001", "5号楼", "卷帘门"):
        assert private not in text
    fits(resident)
    resident.screenshot(path=str(tmp_path / "02-filed.png"), full_page=True)
    row = api_db.execute(
        "SELECT work_order_id, photo_type FROM complaints WHERE tracking_code = %s", (code,)
    ).fetchone()
    assert row is not None and row[1] == "image/png"
    wo = int(row[0])

    # The firm's duty officer, on their own phone: the complaint is on their list.
    officer = add_staff(
        api_db,
        "值班员 卫",
        "13955550002",
        firm_id=ids.firms["F01"],
        shift_community=ids.communities["C01"],
    )
    desk = phone_page(chromium)
    desk.goto(f"{server.url}/duty")
    desk.fill("input[name=phone]", officer.phone)
    desk.fill("input[name=password]", PASSWORD)
    desk.click("button[type=submit]")
    desk.wait_for_url(f"{server.url}/duty")
    card = desk.locator(f'a[href="/duty/complaints/{wo}"]')
    assert "公共设施报修" in card.inner_text()
    card.click()
    desk.wait_for_url(f"{server.url}/duty/complaints/{wo}")
    assert desk.locator("#phone").inner_text() == "13955550001"
    assert "卷帘门" in desk.locator("#description").inner_text()
    fits(desk)
    desk.click("#respond")
    desk.wait_for_url(f"{server.url}/duty/complaints/{wo}")
    assert desk.locator("#wo-status").get_attribute("data-status") == "responded"
    desk.fill("textarea[name=note]", "已调整卷帘门导轨，恢复正常")
    desk.click("#complete")
    desk.wait_for_url(f"{server.url}/duty/complaints/{wo}")
    assert desk.locator("#wo-status").get_attribute("data-status") == "completed"
    desk.screenshot(path=str(tmp_path / "03-duty-completed.png"), full_page=True)

    # Back on the resident's phone: resolved, with the firm's note.
    resident.goto(f"{server.url}/complaints/{code}")
    assert resident.locator("#state").get_attribute("data-status") == "completed"
    assert "已解决" in resident.locator("#state").inner_text()
    assert "恢复正常" in resident.locator("#note").inner_text()
    assert resident.locator("#closed").inner_text()
    assert "13955550001" not in resident.content()
    fits(resident)
    resident.screenshot(path=str(tmp_path / "04-resolved.png"), full_page=True)

    after = report(api)["complaints"]
    assert after["received"] == before["received"] + 1
    assert after["handled_in_time"] == before["handled_in_time"] + 1


def test_abuse_limits_on_the_form_in_a_browser(
    server: LiveServer, chromium: Browser, api_db: Conn, tmp_path: Path
) -> None:
    """As a resident's phone meets them: a file that only calls itself an image is refused with
    a message on the page, and a sixth complaint within the hour from one phone number is
    refused with the limit named (another number still files)."""
    resident = phone_page(chromium)
    number = "137 0000 9901"  # a number no other test files with

    def fill(phone: str, photo: Path | None = None) -> None:
        resident.goto(f"{server.url}/board/C01/complaint")
        resident.select_option("select[name=category]", "CP.NOISE")
        resident.fill("input[name=location]", "3号楼")
        resident.fill("textarea[name=description]", "夜间施工噪音")
        resident.fill("input[name=phone]", phone)
        if photo is not None:
            resident.set_input_files("input[name=photo]", str(photo))
        resident.click("#submit")

    fake = tmp_path / "photo.png"
    fake.write_bytes(b"<svg onload=alert(1)>")
    fill(number, fake)
    assert "JPEG or PNG" in resident.content()
    fits(resident)
    resident.screenshot(path=str(tmp_path / "refused-photo.png"), full_page=True)
    for _ in range(5):
        fill(number)
        resident.wait_for_url(re.compile(r".*/complaints/[A-Z2-7]{16}\?new=1$"))
    fill(number)
    assert "At most 5 complaints an hour from one phone number" in resident.content()
    (filed,) = api_db.execute(
        "SELECT count(*) FROM complaints WHERE phone = '13700009901'"
    ).fetchone() or (0,)
    assert filed == 5, "the sixth was not filed"
    fits(resident)
    resident.screenshot(path=str(tmp_path / "refused-sixth.png"), full_page=True)
    fill("137 0000 9902")
    resident.wait_for_url(re.compile(r".*/complaints/[A-Z2-7]{16}\?new=1$"))
