"""Residents' complaints from the notice board, on a real database: the form and each mistake's
error, the work order against the right list entry with the right deadlines, the firm handling
it on the duty pages, the tracking page (no personal data), the firm-performance report, and
the abuse limits (per phone, per address, photo size and type, CSRF)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.db import Conn
from core.holiday_store import calendar_in_force
from core.settings import Settings
from lifecycle.complaints import client_hash
from lifecycle.deadlines import plan
from responsibility.loader import default_list
from tests.api.conftest import Api, Ids
from tests.api.pages_helpers import PAGE_SETTINGS, Pages, add_staff, pages
from tests.api.test_pages import png, report

FORM = "/board/C01/complaint"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_counter = iter(range(10_000_000, 99_999_999))


def new_phone() -> str:
    """A mobile number no other test used."""
    return f"139{next(_counter)}"


@pytest.fixture(scope="module")
def settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(update={**PAGE_SETTINGS, "complaints_per_client_hour": 10_000})


@pytest.fixture(scope="module")
def browser(settings: Settings) -> Iterator[Pages]:
    with pages(settings) as p:
        yield p


def file(
    b: Pages,
    *,
    category: str = "CP.REPAIR",
    location: str = "3号楼2单元 楼道灯",
    description: str = "楼道灯坏了一周了，晚上很黑",
    phone: str | None = None,
    photo: tuple[str, bytes, str] | None = None,
    form: str = FORM,
) -> httpx.Response:
    page = b.get(form)
    assert page.status_code == 200, page.text[:300]
    found = _CSRF.search(page.text)
    assert found
    data = {
        "csrf": found.group(1),
        "category": category,
        "location": location,
        "description": description,
        "phone": phone or new_phone(),
    }
    files = {"photo": photo} if photo else None
    return b.post(form, data=data, files=files)


def tracking_code(r: httpx.Response) -> str:
    assert r.status_code == 303, (r.status_code, r.text[:500])
    m = re.fullmatch(r"/complaints/([A-Z2-7]{16})\?new=1", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def work_order(db: Conn, code: str) -> dict[str, Any]:
    row = db.execute(
        "SELECT w.id, w.source, w.alarm_id, w.device_id, w.event_code, w.severity, w.status,"
        " w.opened_at, w.response_due, w.arrival_due, w.resolution_due, w.firm_id,"
        " w.community_id, k.phone, k.photo_type FROM complaints k"
        " JOIN work_orders w ON w.id = k.work_order_id WHERE k.tracking_code = %s",
        (code,),
    ).fetchone()
    assert row is not None
    keys = "id source alarm device code severity status opened response arrival resolution"
    keys += " firm community phone photo_type"
    return dict(zip(keys.split(), row, strict=True))


def test_the_form_offers_the_complaint_entries_of_the_list(browser: Pages) -> None:
    r = browser.get(FORM)
    assert r.status_code == 200
    for code in ("CP.REPAIR", "CP.WATER", "CP.ELEVATOR", "CP.SANITATION", "CP.NOISE"):
        assert f'value="{code}"' in r.text
    assert 'value="EL.TRAPPED"' not in r.text  # device entries are not categories
    assert "sw_complaint_csrf" in r.headers["set-cookie"]
    assert browser.get("/board/NO-SUCH/complaint").status_code == 404


def test_a_complaint_files_a_work_order_against_its_entry(
    browser: Pages, api_db: Conn, ids: Ids, api: Api
) -> None:
    phone = new_phone()
    r = file(browser, category="CP.WATER", phone=f"+86 {phone[:3]}-{phone[3:]}", photo=None)
    code = tracking_code(r)
    wo = work_order(api_db, code)
    assert wo["source"] == "complaint" and wo["alarm"] is None and wo["device"] is None
    assert (wo["code"], wo["severity"], wo["status"]) == ("CP.WATER", "P2", "occurred")
    assert (wo["firm"], wo["community"]) == (ids.firms["F01"], ids.communities["C01"])
    assert wo["phone"] == phone  # normalised, for the firm
    entry = default_list().entries["CP.WATER"]
    expected = plan(entry, wo["opened"], calendar_in_force(api_db, None))
    assert (wo["response"], wo["arrival"], wo["resolution"]) == (
        expected.response_due,
        expected.arrival_due,
        expected.resolution_due,
    )
    assert wo["opened"] < wo["response"] < wo["resolution"]
    # The JSON API shows it like any work order, with no alarm and no device.
    got = api.as_("firm_f01").get(f"/v1/work-orders/{wo['id']}")
    assert got.status_code == 200, got.text
    body = got.json()
    assert (body["source"], body["alarm_id"], body["device_uid"]) == ("complaint", None, None)
    assert {s["kind"] for s in body["sla"]} == {"response", "arrival", "resolution"}
    listed = api.as_("firm_f01").get("/v1/work-orders?event_code=CP.WATER")
    assert wo["id"] in [w["id"] for w in listed.json()["items"]]
    assert api.as_("firm_f02").get(f"/v1/work-orders/{wo['id']}").status_code == 404


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"category": "EL.TRAPPED"}, "category", "choose a category"),
        ({"category": ""}, "category", "choose a category"),
        ({"location": "  "}, "location", "give the place"),
        ({"location": "x" * 201}, "location", "at most 200 characters"),
        ({"description": "坏了"}, "description", "at least 5 characters"),
        ({"description": "x" * 2001}, "description", "at most 2000 characters"),
        ({"phone": "12345"}, "phone", "mobile number (11 digits)"),
        ({"phone": "call me"}, "phone", "mobile number (11 digits)"),
    ],
)
def test_each_mistake_gets_a_clear_error(
    browser: Pages, api_db: Conn, change: dict[str, Any], field: str, says: str
) -> None:
    before = api_db.execute("SELECT count(*) FROM complaints").fetchone()
    r = file(browser, **change)
    assert r.status_code == 422, r.text[:300]
    assert f'data-field="{field}"' in r.text and says in r.text
    assert api_db.execute("SELECT count(*) FROM complaints").fetchone() == before
    if field != "phone":  # what was typed is kept, but never the phone number
        assert 'name="phone" type="tel"' in r.text and 'value="139' not in r.text


def test_photos_are_checked_by_type_and_size(browser: Pages, api_db: Conn) -> None:
    code = tracking_code(file(browser, photo=("p.png", png(), "image/png")))
    assert work_order(api_db, code)["photo_type"] == "image/png"
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 100
    code = tracking_code(file(browser, photo=("p.jpg", jpeg, "image/jpeg")))
    assert work_order(api_db, code)["photo_type"] == "image/jpeg"
    # Declared an image, but it is not one by its bytes.
    r = file(browser, photo=("p.png", b"<svg onload=alert(1)>", "image/png"))
    assert r.status_code == 415 and "must be a JPEG or PNG" in r.text
    webp = b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 50
    assert file(browser, photo=("p.webp", webp, "image/webp")).status_code == 415


def test_a_photo_over_the_limit_is_refused(settings: Settings) -> None:
    small = settings.model_copy(update={"complaint_photo_max_bytes": 2048})
    with pages(small) as b:
        r = file(b, photo=("big.png", png(extra=3000), "image/png"))
        assert r.status_code == 413 and "at most 2 KiB" in r.text
        assert file(b, photo=("ok.png", png(extra=500), "image/png")).status_code == 303


def test_the_form_needs_its_csrf_token(browser: Pages) -> None:
    browser.get(FORM)
    data = {
        "category": "CP.REPAIR",
        "location": "1号楼",
        "description": "路灯不亮了啊",
        "phone": new_phone(),
    }
    r = browser.post(FORM, data={**data, "csrf": "forged-token-forged-token"})
    assert r.status_code == 403
    browser.reset()  # no cookie at all
    assert browser.post(FORM, data={**data, "csrf": "x" * 32}).status_code == 403


def test_at_most_five_complaints_an_hour_from_one_phone(browser: Pages) -> None:
    phone = new_phone()
    for _ in range(5):
        tracking_code(file(browser, phone=phone))
    r = file(browser, phone=phone)
    assert r.status_code == 429
    assert "At most 5 complaints an hour from one phone number" in r.text
    assert r.headers["retry-after"] == "3600"
    tracking_code(file(browser))  # another phone still may


def test_complaints_from_one_address_are_limited(settings: Settings, api_db: Conn) -> None:
    since = datetime.now(UTC) - timedelta(hours=1)
    row = api_db.execute(
        "SELECT count(*) FROM complaints WHERE client_hash = %s AND filed_at > %s",
        (client_hash("127.0.0.1"), since),
    ).fetchone()
    assert row is not None
    limit = int(row[0]) + 2
    with pages(settings.model_copy(update={"complaints_per_client_hour": limit})) as b:
        tracking_code(file(b))
        tracking_code(file(b))
        r = file(b)
        assert r.status_code == 429 and "from one address" in r.text


def test_handled_by_the_firm_then_resolved_on_the_tracking_page(
    browser: Pages, settings: Settings, api_db: Conn, ids: Ids, api: Api
) -> None:
    before = report(api)["complaints"]
    phone = new_phone()
    description = "2号楼电梯按钮失灵，按了没反应"
    location = "2号楼1单元电梯厅"
    code = tracking_code(
        file(
            browser, category="CP.ELEVATOR", location=location, description=description, phone=phone
        )
    )
    wo = work_order(api_db, code)

    # The tracking page: category, status and times; never the phone, place or text.
    page = browser.get(f"/complaints/{code}?new=1")
    assert page.status_code == 200
    assert "电梯问题投诉" in page.text and 'data-status="occurred"' in page.text
    assert code in page.text
    for private in (phone, phone[-4:] + "<", location, description, "2号楼"):
        assert private not in page.text
    assert report(api)["complaints"]["received"] == before["received"] + 1

    # The firm's duty officer sees it among their work orders and handles it.
    officer = add_staff(
        api_db,
        "值班员 冯",
        new_phone(),
        firm_id=ids.firms["F01"],
        shift_community=ids.communities["C01"],
    )
    with pages(settings) as duty:
        assert duty.sign_in(officer.phone).status_code == 303
        home = duty.get("/duty")
        assert f'href="/duty/complaints/{wo["id"]}"' in home.text
        detail = duty.get(f"/duty/complaints/{wo['id']}")
        assert detail.status_code == 200
        assert phone in detail.text and description in detail.text  # the firm sees it all
        token = _CSRF.search(detail.text)
        assert token
        # Completing needs a note: the resident sees it.
        r = duty.post(f"/duty/complaints/{wo['id']}/complete", data={"csrf": token.group(1)})
        assert r.status_code == 422
        r = duty.post(f"/duty/complaints/{wo['id']}/respond", data={"csrf": token.group(1)})
        assert r.status_code == 303
        note = "已更换按钮面板，恢复正常"
        r = duty.post(
            f"/duty/complaints/{wo['id']}/complete", data={"csrf": token.group(1), "note": note}
        )
        assert r.status_code == 303, r.text[:300]
        # Another firm's officer cannot open it.
        other = add_staff(api_db, "值班员 褚", new_phone(), firm_id=ids.firms["F02"])
        duty.reset()
        duty.sign_in(other.phone)
        assert duty.get(f"/duty/complaints/{wo['id']}").status_code == 404

    page = browser.get(f"/complaints/{code}")
    assert 'data-status="completed"' in page.text and "已解决" in page.text
    assert note in page.text and 'id="closed"' in page.text
    status = api_db.execute(
        "SELECT status, closed_reason FROM work_orders WHERE id = %s", (wo["id"],)
    ).fetchone()
    assert status == ("completed", "completed")
    after = report(api)["complaints"]
    assert after["received"] == before["received"] + 1
    assert after["handled_in_time"] == before["handled_in_time"] + 1
    assert after["closed"] == before["closed"] + 1
    assert after["share_in_time"] is not None


def test_late_and_rejected_complaints_in_the_report(browser: Pages, api_db: Conn, api: Api) -> None:
    before = report(api)["complaints"]
    late = work_order(api_db, tracking_code(file(browser, category="CP.NOISE")))
    bad = work_order(api_db, tracking_code(file(browser, category="CP.SERVICE")))
    # The first missed its response limit: due a minute ago, never taken on.
    api_db.execute(
        "UPDATE work_orders SET response_due = now() - interval '1 minute' WHERE id = %s",
        (late["id"],),
    )
    r = api.as_("firm_f01").post(
        f"/v1/work-orders/{bad['id']}/transitions", json={"to": "false_alarm", "note": "重复投诉"}
    )
    assert r.status_code == 200, r.text
    after = report(api)["complaints"]
    assert after["received"] == before["received"] + 2
    assert after["late"] == before["late"] + 1
    assert after["not_valid"] == before["not_valid"] + 1
    assert after["handled_in_time"] == before["handled_in_time"]
    # Complaints stay out of the device work orders' figures.
    assert "CP.NOISE" not in {c["key"] for c in report(api)["by_event_code"]}


def test_an_unknown_or_malformed_tracking_code(browser: Pages) -> None:
    for code in ("AAAAAAAAAAAAAAAA", "short", "<script>", "aaaaaaaaaaaaaaaa"):
        r = browser.get(f"/complaints/{code}")
        assert r.status_code == 404 and "tracking code is not right" in r.text


def test_public_pages_are_throttled_per_address(settings: Settings) -> None:
    with pages(settings) as b:
        codes = [b.get("/complaints/AAAAAAAAAAAAAAAA").status_code for _ in range(80)]
        assert codes[0] == 404 and 429 in codes
        r = b.get("/complaints/AAAAAAAAAAAAAAAA")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_a_work_order_has_an_alarm_or_is_a_complaint(api_db: Conn, ids: Ids) -> None:
    import psycopg

    with pytest.raises(psycopg.errors.CheckViolation):
        api_db.execute(
            "INSERT INTO work_orders (community_id, event_code, severity, responsible_party,"
            " supervisor, status, opened_at, resolution_due, emergency_fund, notify_regulator,"
            " list_version) VALUES (%s, 'EL.TRAPPED', 'P0', 'x', 'y', 'occurred', now(),"
            " now(), false, false, 't')",
            (ids.communities["C01"],),
        )
