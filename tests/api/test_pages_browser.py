"""The duty pages in a real browser: headless Chromium from Debian (``/usr/bin/chromium``,
driven by Playwright, which never downloads a browser of its own) at a 360x740 phone viewport,
against the API served by uvicorn on loopback. A duty officer signs in and sees an injected P0,
opens it from the link in its notification, acknowledges, arrives with a photo, completes; the
work order's SLA figures and the firm-performance report change. Screenshots are kept under
the test's tmp dir, and copied to ``$SHOUWANG_TEST_ARTEFACTS`` when it is set."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page
from pydantic import SecretStr

from core.db import Conn
from core.settings import Settings
from notify.ack_links import AckLinks
from notify.messages import render
from notify.recipients import Recipient
from tests.api.browser import CHROMIUM, PHONE
from tests.api.conftest import Api, Ids, LiveServer, live, make_alarm
from tests.api.pages_helpers import PAGE_SETTINGS, PASSWORD, add_staff
from tests.api.test_pages import png, report

SECRET = "pages-browser-secret"


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[LiveServer]:
    """The pages as the demo serves them: plain HTTP on loopback, with the default cookies
    (Secure, which Chromium keeps for http://127.0.0.1 and localhost)."""
    default = Settings.model_fields["pages_cookie_secure"].default
    settings = api_settings.model_copy(
        update={
            **PAGE_SETTINGS,
            "pages_cookie_secure": default,
            "notify_ack_secret": SecretStr(SECRET),
        }
    )
    with live(settings) as s:
        yield s


class Shots:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.taken: list[Path] = []

    def take(self, page: Page, name: str) -> None:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


@pytest.fixture
def shots(tmp_path: Path) -> Iterator[Shots]:
    s = Shots(tmp_path)
    yield s
    target = os.environ.get("SHOUWANG_TEST_ARTEFACTS")
    if target:
        out = Path(target) / "pages"
        out.mkdir(parents=True, exist_ok=True)
        for path in s.taken:
            shutil.copy(path, out / path.name)


def phone_page(browser: Browser) -> Page:
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def test_a_p0_from_notification_to_completion_on_a_phone(
    server: LiveServer,
    chromium: Browser,
    shots: Shots,
    api: Api,
    ids: Ids,
    api_db: Conn,
    tmp_path: Path,
) -> None:
    officer = add_staff(
        api_db,
        "值班员 周",
        "13900000001",
        firm_id=ids.firms["F01"],
        shift_community=ids.communities["C01"],
    )
    before = report(api)
    alarm, wo = make_alarm(
        api_db,
        ids.devices[ids.device_in("C01", n=0)],
        code="EL.TRAPPED",
        opened=datetime.now(UTC) - timedelta(minutes=1),
    )
    assert wo is not None

    # Signed in on one phone: the P0 is on the list, named as the responsibility list names it.
    desk = phone_page(chromium)
    desk.goto(f"{server.url}/duty")
    assert "/duty/login" in desk.url
    desk.fill("input[name=phone]", officer.phone)
    desk.fill("input[name=password]", PASSWORD)
    desk.click("button[type=submit]")
    desk.wait_for_url(f"{server.url}/duty")
    kept = {c["name"]: c["secure"] for c in desk.context.cookies()}
    assert kept.get("sw_session") is True, kept  # Secure, and kept over http://127.0.0.1
    card = desk.locator(f'a[href="/duty/alarms/{alarm}"]')
    assert "电梯困人" in card.inner_text() and "P0" in card.inner_text()
    width = desk.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a 360px screen"
    shots.take(desk, "home")

    # The notification as the officer receives it, with their own link.
    payload: dict[str, Any] = {
        "kind": "alarm_opened",
        "alarm_id": alarm,
        "code": "EL.TRAPPED",
        "name": {"zh": "电梯困人", "en": "Passengers trapped in a lift"},
        "severity": "P0",
        "community_name": "C01",
        "device": ids.device_in("C01", n=0),
    }
    me = Recipient(officer.id, 1, "email", "zhou@example.com", "", name=officer.name)
    links = AckLinks(SECRET, f"{server.url}/v1/ack")
    _, text = render(links.for_recipient(payload, me, datetime.now(UTC)))
    link = re.search(r"(http://\S+/v1/ack/\S+)", text)
    assert link, text

    # Tapped on the phone (no sign-in there): one tap opens the alarm, for this officer only.
    mobile = phone_page(chromium)
    mobile.goto(link.group(1))
    assert "/duty/link/" in mobile.url
    shots.take(mobile, "link")
    mobile.click("button[type=submit]")
    mobile.wait_for_url(f"{server.url}/duty/alarms/{alarm}")
    assert "电梯困人" in mobile.inner_text("h1")
    mobile.click("#acknowledge")
    mobile.wait_for_selector("#arrive")
    assert "已响应" in mobile.inner_text("#wo-status")
    shots.take(mobile, "acknowledged")
    mobile.click("details summary")
    mobile.fill("input[name=latitude]", "31.23")
    mobile.fill("input[name=longitude]", "121.47")
    photo = tmp_path / "site.png"
    photo.write_bytes(png())
    mobile.set_input_files("input[name=photo]", str(photo))
    mobile.click("#arrive")
    mobile.wait_for_selector("text=已到场")
    shots.take(mobile, "arrived")
    mobile.fill("textarea[name=note]", "已放人，门锁复位")
    mobile.click("#complete")
    mobile.wait_for_selector("#wo-status >> text=已完成")
    shots.take(mobile, "completed")
    assert mobile.locator('#sla td[data-outcome="met"]').count() == 3

    # The work order's SLA figures, through the JSON API, and the firm's report.
    detail = api.as_("firm_f01").get(f"/v1/work-orders/{wo}").json()
    assert detail["status"] == "completed"
    assert [s["outcome"] for s in detail["sla"]] == ["met", "met", "met"]
    assert detail["responded_at"] and detail["on_site_at"] and detail["closed_at"]
    after = report(api)
    assert after["work_orders"] == before["work_orders"] + 1
    assert after["response_time"]["samples"] == before["response_time"]["samples"] + 1
    assert after["limits"] != before["limits"]

    # Back on the signed-in phone, the list no longer holds it.
    desk.reload()
    assert desk.locator(f'a[href="/duty/alarms/{alarm}"]').count() == 0
    shots.take(desk, "home-after")
    assert len(shots.taken) == 6


def test_plain_http_to_another_host_says_why_no_one_can_sign_in(
    server: LiveServer,
    chromium: Browser,
    shots: Shots,
    api_settings: Settings,
    ids: Ids,
    api_db: Conn,
) -> None:
    """Over plain HTTP to a name that is not this machine, Chromium keeps no Secure cookie:
    the sign-in says why and what to do. With SHOUWANG_PAGES_COOKIE_SECURE=false (a trial on a
    trusted network) the same address signs in."""
    officer = add_staff(api_db, "值班员 郑", "13900000031", firm_id=ids.firms["F01"])
    remote = chromium.browser_type.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--host-resolver-rules=MAP duty.test 127.0.0.1"],
    )
    trial = api_settings.model_copy(update={**PAGE_SETTINGS, "pages_cookie_secure": False})
    try:
        with live(trial) as plain:
            for url, signs_in in ((server.url, False), (plain.url, True)):
                base = url.replace("127.0.0.1", "duty.test")
                page = phone_page(remote)
                page.goto(f"{base}/duty/login")
                page.fill("input[name=phone]", officer.phone)
                page.fill("input[name=password]", PASSWORD)
                page.click("button[type=submit]")
                if signs_in:
                    page.wait_for_url(f"{base}/duty")
                    kept = {c["name"]: c["secure"] for c in page.context.cookies()}
                    assert kept.get("sw_session") is False
                    continue
                error = page.inner_text(".error")
                assert "/duty/login" in page.url
                assert "HTTPS" in error and "SHOUWANG_PAGES_COOKIE_SECURE=false" in error
                assert "http://localhost" in error
                shots.take(page, "plain-http-refused")
    finally:
        remote.close()
