"""The community notice board in a real browser: headless Chromium from Debian
(``/usr/bin/chromium``, driven by Playwright, which never downloads a browser) against the API
served by uvicorn on loopback. At 360 px wide the live page needs no horizontal scrolling; the
print page, printed to PDF on A4 as the browser prints it, takes one or two pages. Screenshots
and the PDF are kept under the test's tmp dir, and copied to ``$SHOUWANG_TEST_ARTEFACTS/board``
when it is set."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from core.db import connect
from core.settings import Settings
from tests.api import report_data as make
from tests.api.browser import DESKTOP, PHONE, overflow
from tests.api.conftest import Api, LiveServer, live
from tests.api.test_notice_board import PUBLIC_URL, Community, make_community, put_board


@pytest.fixture(scope="module")
def server(api_settings: Settings) -> Iterator[LiveServer]:
    with live(api_settings.model_copy(update={"api_public_url": PUBLIC_URL})) as s:
        yield s


@pytest.fixture(scope="module")
def community(api_database: str) -> Community:
    """A large community: 40 elevators, 8 periods of spending, a long name without spaces."""
    with connect(api_database, autocommit=True) as db:
        c = make_community(db, "NBB", staff_phone="13912345671")
        unit = db.execute("SELECT id FROM maintenance_units WHERE code = 'NBB-EL'").fetchone()
        assert unit is not None
        for i in range(3, 41):
            make.device(db, f"NBB-E{i}", c.id, "elevator", unit[0])
        for q in range(8):
            db.execute(
                "INSERT INTO elevator_spending (community_id, period_start, period_end,"
                " amount_cny, updated_by) VALUES (%s, make_date(%s, %s, 1),"
                " make_date(%s, %s, 1) + interval '3 months', 12345.67, 'test')",
                (c.id, 2025 + q // 4, 3 * (q % 4) + 1, 2025 + q // 4, 3 * (q % 4) + 1),
            )
        db.execute("UPDATE communities SET name_en = %s WHERE id = %s", ("Long" * 30, c.id))
        return c


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[list[Path]]:
    files: list[Path] = []
    yield files
    target = os.environ.get("SHOUWANG_TEST_ARTEFACTS")
    if target:
        out = Path(target) / "board"
        out.mkdir(parents=True, exist_ok=True)
        for path in files:
            shutil.copy(path, out / path.name)


def test_the_board_fits_a_phone_and_prints_on_one_or_two_a4_pages(
    server: LiveServer,
    chromium: Browser,
    api: Api,
    community: Community,
    tmp_path: Path,
    kept: list[Path],
) -> None:
    long_fee = {"item_zh": "公共区域能耗分摊" * 3, "amount_cny": "0.35", "unit": "m2_month"}
    r = put_board(api, community, fees=[*put_board_fees(), long_fee])
    assert r.status_code == 200, r.text

    phone = chromium.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN").new_page()
    phone.goto(f"{server.url}/board/{community.code}")
    assert phone.locator("h1").inner_text().startswith(f"{community.code}小区")
    assert phone.locator("#elevators tbody tr").count() == 40
    assert overflow(phone) == 0
    shot = tmp_path / "board-360.png"
    phone.screenshot(path=str(shot), full_page=True)
    kept.append(shot)

    desk = chromium.new_context(viewport=DESKTOP, locale="zh-CN").new_page()
    desk.goto(f"{server.url}/board/{community.code}")
    assert overflow(desk) == 0
    # Two columns on a desktop: the firm and the services side by side.
    firm, services = desk.locator("#firm").bounding_box(), desk.locator("#services").bounding_box()
    assert firm is not None and services is not None and abs(firm["y"] - services["y"]) < 2

    printed = chromium.new_context(locale="zh-CN").new_page()
    printed.goto(f"{server.url}/board/{community.code}/print")
    printed.emulate_media(media="print")
    assert printed.locator("svg.qr").count() == 1
    pdf = tmp_path / "board-a4.pdf"
    printed.pdf(path=str(pdf), prefer_css_page_size=True, print_background=True)
    kept.append(pdf)
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", data))
    assert 1 <= pages <= 2, pages
    sizes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert sizes and all(abs(float(w) - 595) < 2 and abs(float(h) - 842) < 2 for w, h in sizes)
    shot = tmp_path / "board-a4-screen.png"
    printed.screenshot(path=str(shot), full_page=True)
    kept.append(shot)


def put_board_fees() -> list[dict[str, str]]:
    return [
        {"item_zh": "物业服务费（住宅）", "amount_cny": "1.80", "unit": "m2_month"},
        {"item_zh": "物业服务费（商铺）", "amount_cny": "3.20", "unit": "m2_month"},
        {"item_zh": "地面停车", "amount_cny": "150", "unit": "space_month"},
        {"item_zh": "地下车位管理费", "amount_cny": "60", "unit": "space_month"},
        {"item_zh": "装修垃圾清运", "amount_cny": "300", "unit": "visit"},
    ]
