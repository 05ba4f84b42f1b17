"""The community notice board (公示栏): a firm sets it through the API (validated, audited), the
public reads it at /board/{code} and prints it at /board/{code}/print (A4, with a QR code of the
live page), with each elevator's last service from maintenance windows and an overdue flag, and
nothing personal beyond the plan's public items. Real database, the app in-process."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import segno
from anyio.from_thread import start_blocking_portal

from api.app import create_app
from api.pages.board_rules import BoardRule, label, period, public_phone
from api.pages.view import BEIJING
from api.rate_limit import Buckets
from api.tokens import issue
from core.db import Conn, connect
from core.settings import Settings
from tests.api import report_data as make
from tests.api.conftest import Api, in_process

FIRM_NAME = '<script>alert("x")</script>安居&物业'
LEAD = "<b>李</b>项目"
LEAD_PHONE = "0359-6661234"
STAFF_PHONE = "13912345670"
PUBLIC_URL = "https://board.example.org/sw/"


@dataclass(frozen=True)
class Community:
    id: int
    code: str
    firm_id: int
    elevators: dict[str, int]  # uid -> device id
    token: str  # the firm admin's


@pytest.fixture(scope="module")
def community(api_database: str) -> Iterator[Community]:
    """NB-C1 of firm NB-F (named with HTML in it): two elevators and a fire panel, elevator and
    fire units under contract, and a duty officer with a personal phone and login."""
    with connect(api_database, autocommit=True) as api_db:
        yield make_community(api_db, "NB")


def make_community(api_db: Conn, prefix: str, staff_phone: str = STAFF_PHONE) -> Community:
    """Community ``{prefix}-C1`` (see ``community``), its firm ``{prefix}-F`` and its admin's
    token."""
    region = make.region(api_db, f"{prefix}-T")
    firm = make.firm(api_db, f"{prefix}-F", complaint_phone="0359-5550001")
    api_db.execute("UPDATE firms SET name_zh = %s WHERE id = %s", (FIRM_NAME, firm))
    cid = make.community(api_db, f"{prefix}-C1", region, firm)
    el = make.unit(api_db, f"{prefix}-EL", "elevator", "0359-7770001")
    fi = make.unit(api_db, f"{prefix}-FI", "fire", "96119")
    for kind, unit in (("elevator", el), ("fire", fi)):
        api_db.execute(
            "INSERT INTO community_maintenance_units (community_id, kind, maintenance_unit_id)"
            " VALUES (%s, %s, %s)",
            (cid, kind, unit),
        )
    elevators = {
        uid: make.device(api_db, uid, cid, "elevator", el)
        for uid in (f"{prefix}-E1", f"{prefix}-E2")
    }
    make.device(api_db, f"{prefix}-FP", cid, "fire_panel", fi)
    row = api_db.execute(
        "INSERT INTO people (name, role, firm_id) VALUES ('值班员 赵秘', 'duty_staff', %s)"
        " RETURNING id",
        (firm,),
    ).fetchone()
    assert row is not None
    api_db.execute(
        "INSERT INTO person_logins (person_id, phone, password_hash) VALUES (%s, %s, 'x')",
        (row[0], staff_phone),
    )
    token = issue(api_db, "firm_admin", "notice board test", {"firm": f"{prefix}-F"}).token
    return Community(cid, f"{prefix}-C1", firm, elevators, token)


def board_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "project_lead_name": LEAD,
        "project_lead_phone": LEAD_PHONE,
        "complaint_phone": None,
        "service_content_zh": "保洁、秩序维护、绿化养护、共用设施设备维修养护",
        "service_content_en": "Cleaning, order, greenery, upkeep of shared facilities",
        "fees": [
            {
                "item_zh": "物业服务费（住宅）",
                "item_en": "Service fee (homes)",
                "amount_cny": "1.80",
                "unit": "m2_month",
            },
            {"item_zh": "地面停车", "amount_cny": 150, "unit": "space_month", "note": "月租"},
        ],
        "unit_contacts": [{"kind": "elevator", "name": "孙工", "phone": "138 0013 8000"}],
    }
    body.update(changes)
    return body


def as_firm(api: Api, c: Community) -> dict[str, str]:
    return {"Authorization": f"Bearer {c.token}"}


def put_board(api: Api, c: Community, **changes: Any) -> httpx.Response:
    return api.anonymous().request(
        "PUT",
        f"/v1/communities/{c.id}/notice-board",
        json=board_body(**changes),
        headers=as_firm(api, c),
    )


def text(page: str) -> str:
    """The page's text: tags out, entities decoded, whitespace folded."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def elevator_row(page: str, uid: str) -> str:
    for row in re.findall(r"<tr class=\"(?:overdue|ok)\">.*?</tr>", page, re.S):
        if uid in row:
            return str(row)
    raise AssertionError(f"no row for {uid}")


def test_the_firm_sets_the_board_and_the_public_sees_it(
    api: Api, api_db: Conn, community: Community
) -> None:
    before = api_db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()
    r = put_board(api, community)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["project_lead_phone"] == LEAD_PHONE
    assert [f["amount_cny"] for f in got["fees"]] == [1.8, 150.0]
    assert got["unit_contacts"][0]["phone"] == "13800138000"  # spaces dropped
    r = api.anonymous().request(
        "PUT",
        f"/v1/communities/{community.id}/elevator-spending/2026Q3",
        json={"amount_cny": "12800.5", "note": "含年检"},
        headers=as_firm(api, community),
    )
    assert r.status_code == 200, r.text
    assert r.json()["period"] == "2026Q3"
    assert r.json()["period_end"] == "2026-10-01"

    # Every write is audited, placed in the firm's part of the log, named by the token.
    assert before is not None
    logged = api_db.execute(
        "SELECT resource, firm_ids, community_id, actor FROM audit_log WHERE id > %s",
        (before[0],),
    ).fetchall()
    resources = {r[0] for r in logged}
    assert {"notice_boards", "notice_board_fees", "notice_board_contacts"} <= resources
    assert "elevator_spending" in resources
    for _, firm_ids, cid, actor in logged:
        assert firm_ids == [community.firm_id] and cid == community.id
        assert "notice board test" in actor

    # The live page: no login, everything the plan lists, Chinese first with English.
    page = api.anonymous().get("/board/NB-C1")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # no script at all
    body = text(page.text)
    assert 'href="/board/NB-C1/complaint"' in page.text, "residents file complaints from here"
    for expected in (
        "NB-C1小区",
        "物业服务企业 Property management",
        FIRM_NAME,
        LEAD,
        LEAD_PHONE,
        "0359-5550001",  # the firm's complaint phone: the board gives none of its own
        "物业服务费（住宅）",
        "1.80 元/平方米·月",
        "150.00 元/车位·月",
        "电梯维保单位",
        "NB-EL维保",
        "0359-7770001",
        "孙工 13800138000",
        "消防维保单位",
        "96119",
        "2026Q3",
        "12,800.50",
        "含年检",
        "北京时间 Beijing time",
    ):
        assert expected in body, expected
    # The board's own complaint phone replaces the firm's.
    assert put_board(api, community, complaint_phone="400-800-1234").status_code == 200
    body = text(api.anonymous().get("/board/NB-C1").text)
    assert "400-800-1234" in body and "0359-5550001" not in body


def test_html_in_names_is_shown_as_text(api: Api, community: Community) -> None:
    assert put_board(api, community).status_code == 200
    for path in ("/board/NB-C1", "/board/NB-C1/print"):
        page = api.anonymous().get(path).text
        assert "<script" not in page
        assert "<b>李</b>" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;安居&amp;物业" in page
        assert "&lt;b&gt;李&lt;/b&gt;项目" in page


def test_an_elevator_is_overdue_15_days_after_its_last_service(
    api: Api, api_db: Conn, community: Community
) -> None:
    e1, e2 = community.elevators["NB-E1"], community.elevators["NB-E2"]
    # Both serviced now, through the API (a maintenance window, as a unit or the firm opens it).
    r = api.anonymous().post(
        "/v1/maintenance-windows",
        json={
            "kind": "service",
            "device_ids": [e1, e2],
            "performer": "NB-EL 钱师傅",
            "work_done": "半月保",
        },
        headers=as_firm(api, community),
    )
    assert r.status_code == 201, r.text
    window = r.json()["id"]
    today = datetime.now(UTC).astimezone(BEIJING).date()
    page = api.anonymous().get("/board/NB-C1").text
    for uid in ("NB-E1", "NB-E2"):
        row = elevator_row(page, uid)
        assert 'class="ok"' in row and today.isoformat() in row and "逾期" not in row
    assert "钱师傅" not in page  # who did the visit is not published

    # Fast-forward: that visit was 16 days ago, and E2 had another 3 days ago.
    api_db.execute(
        "UPDATE maintenance_windows SET starts_at = starts_at - interval '16 days',"
        " ends_at = ends_at - interval '16 days' WHERE id = %s",
        (window,),
    )
    recent = datetime.now(UTC) - timedelta(days=3)
    api_db.execute(
        "WITH w AS (INSERT INTO maintenance_windows (community_id, kind, starts_at, ends_at,"
        " performer, opened_by) VALUES (%s, 'service', %s, %s, 'NB-EL', 'test') RETURNING id)"
        " INSERT INTO maintenance_window_devices SELECT id, %s FROM w",
        (community.id, recent, recent + timedelta(hours=2), e2),
    )
    page = api.anonymous().get("/board/NB-C1").text
    row1, row2 = elevator_row(page, "NB-E1"), elevator_row(page, "NB-E2")
    assert row1.startswith('<tr class="overdue">') and "逾期 Overdue" in row1
    assert "16 天前" in row1
    assert row2.startswith('<tr class="ok">') and "3 天前" in row2 and "逾期" not in row2
    assert "1 台逾期" in text(page)
    # A window closed before it started covers nothing and records no visit.
    api_db.execute(
        "UPDATE maintenance_windows SET ends_at = starts_at WHERE community_id = %s"
        " AND opened_by = 'test'",
        (community.id,),
    )
    assert "逾期 Overdue" in elevator_row(api.anonymous().get("/board/NB-C1").text, "NB-E2")


def test_no_personal_data_of_residents_or_staff(
    api: Api, api_db: Conn, community: Community
) -> None:
    assert put_board(api, community).status_code == 200
    private = [
        str(v)
        for (v,) in api_db.execute(
            "SELECT name FROM people WHERE firm_id = %(f)s"
            " UNION SELECT l.phone FROM person_logins l JOIN people p ON p.id = l.person_id"
            "  WHERE p.firm_id = %(f)s"
            " UNION SELECT contact_phone FROM firms WHERE id = %(f)s"
            " UNION SELECT credit_code FROM firms WHERE id = %(f)s",
            {"f": community.firm_id},
        )
    ]
    assert STAFF_PHONE in private and "CREDIT-SECRET" in private
    for path in ("/board/NB-C1", "/board/NB-C1/print"):
        body = text(api.anonymous().get(path).text)
        for value in private:
            assert value not in body, (path, value)
        assert "s3cr3t" not in body and "secret_key" not in body  # device attributes


def test_the_print_page_has_a_qr_code_of_the_live_page(
    api_settings: Settings, api: Api, community: Community
) -> None:
    assert put_board(api, community).status_code == 200
    # Without SHOUWANG_API_PUBLIC_URL: no QR code, and the page says what it needs.
    page = api.anonymous().get("/board/NB-C1/print").text
    assert "SHOUWANG_API_PUBLIC_URL" in page and "<svg" not in page
    assert 'href="/board/static/board-print.css"' in page

    settings = api_settings.model_copy(update={"api_public_url": PUBLIC_URL})
    with in_process(settings) as client:
        page = client.request("GET", "/board/NB-C1/print").text
        css = client.request("GET", "/board/static/board-print.css")
    url = "https://board.example.org/sw/board/NB-C1"
    assert url in page
    svg = re.search(r'<svg viewBox="0 0 (\d+) \1" class="qr">.*?</svg>', page, re.S)
    assert svg is not None
    expected = segno.make(url, error="m", micro=False)
    assert modules(svg.group(0)) == [list(map(bool, row)) for row in expected.matrix]
    assert modules(svg.group(0)) != [
        list(map(bool, row)) for row in segno.make(url + "x", error="m").matrix
    ]
    assert css.status_code == 200 and "@page{size:A4" in css.text


def modules(svg: str, border: int = 4) -> list[list[bool]]:
    """The dark modules drawn by segno's SVG path (``M x y`` then ``h n`` runs and ``m dx dy``
    moves, at scale 1): the QR code's matrix as the page carries it."""
    m = re.search(r'viewBox="0 0 (\d+) \d+"', svg)
    path = re.search(r'class="qrline"[^>]* d="([^"]+)"', svg)
    assert m is not None and path is not None
    size = int(m.group(1)) - 2 * border
    grid = [[False] * size for _ in range(size)]
    x = y = 0.0
    for cmd, a, b in re.findall(r"([Mmh])(-?[\d.]+)(?: (-?[\d.]+))?", path.group(1)):
        if cmd == "M":
            x, y = float(a), float(b)
        elif cmd == "m":
            x, y = x + float(a), y + float(b)
        else:
            for i in range(int(float(a))):
                grid[int(y - 0.5) - border][int(x) + i - border] = True
            x += float(a)
    return grid


def test_unknown_community_is_a_404_page(api: Api) -> None:
    for path in ("/board/NO-SUCH", "/board/NO-SUCH/print", "/board/bad%20code", "/board/%3Cx%3E"):
        r = api.anonymous().get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "没有这个小区" in r.text and "No such community" in r.text
        assert "<x>" not in r.text


def test_every_field_is_validated(api: Api, community: Community) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"project_lead_phone": "12-34"}, "body.project_lead_phone", "mobile number"),
        ({"project_lead_phone": "13800138000x"}, "body.project_lead_phone", "area code"),
        ({"complaint_phone": "021 1234"}, "body.complaint_phone", "400/800"),
        ({"project_lead_name": "  "}, "body.project_lead_name", "at least 1"),
        ({"project_lead_name": "名" * 51}, "body.project_lead_name", "at most 50"),
        ({"service_content_zh": "字" * 1001}, "body.service_content_zh", "at most 1000"),
        (
            {"fees": [{"item_zh": "费", "amount_cny": -1, "unit": "month"}]},
            "body.fees[0].amount_cny",
            "0 or more",
        ),
        (
            {"fees": [{"item_zh": "费", "amount_cny": "1.805", "unit": "month"}]},
            "body.fees[0].amount_cny",
            "two decimals",
        ),
        (
            {"fees": [{"item_zh": "费", "amount_cny": "1", "unit": "per_sqm"}]},
            "body.fees[0].unit",
            "m2_month",
        ),
        (
            {"fees": [{"item_zh": "费", "amount_cny": "1"}]},
            "body.fees[0].unit",
            "required",
        ),
        (
            {"unit_contacts": [{"kind": "water", "name": "周工", "phone": "13800138000"}]},
            "body.unit_contacts[0].kind",
            "no water maintenance unit under contract",
        ),
        (
            {
                "unit_contacts": [
                    {"kind": "fire", "name": "周工", "phone": "13800138000"},
                    {"kind": "fire", "name": "吴工", "phone": "13800138001"},
                ]
            },
            "body.unit_contacts[1].kind",
            "twice",
        ),
    ]
    for changes, field, words in cases:
        r = put_board(api, community, **changes)
        assert r.status_code == 422, (changes, r.text)
        error = r.json()["error"]
        assert error["code"] == "invalid"
        assert field in [f["field"] for f in error["fields"]], (field, error)
        assert any(words in f["message"] for f in error["fields"]), (words, error)

    spend = f"/v1/communities/{community.id}/elevator-spending"
    headers = as_firm(api, community)
    for p, body, status, words in (
        ("2026-13", {"amount_cny": 1}, 422, "01 to 12"),
        ("26Q3", {"amount_cny": 1}, 422, "2026Q3"),
        ("2026Q1", {"amount_cny": -5}, 422, "0 or more"),
        ("2026Q1", {"amount_cny": "NaN"}, 422, ""),
    ):
        r = api.anonymous().request("PUT", f"{spend}/{p}", json=body, headers=headers)
        assert r.status_code == status and words in r.text, r.text
    # Periods do not overlap: a month inside a published quarter is refused (409).
    ok = api.anonymous().request("PUT", f"{spend}/2026Q2", json={"amount_cny": 1}, headers=headers)
    assert ok.status_code == 200
    r = api.anonymous().request("PUT", f"{spend}/2026-05", json={"amount_cny": 1}, headers=headers)
    assert r.status_code == 409 and "overlaps" in r.text
    gone = api.anonymous().request("DELETE", f"{spend}/2026Q2", headers=headers)
    assert gone.status_code == 204


def test_only_the_firm_and_the_regulator_set_a_board(api: Api, community: Community) -> None:
    url = f"/v1/communities/{community.id}/notice-board"
    assert api.as_("firm_f01").request("PUT", url, json=board_body()).status_code == 404
    assert api.as_("duty_c01").request("PUT", url, json=board_body()).status_code == 403
    assert api.as_("township_t01").request("PUT", url, json=board_body()).status_code == 403
    assert api.anonymous().request("PUT", url, json=board_body()).status_code == 401
    assert api.as_("regulator").request("PUT", url, json=board_body()).status_code == 200
    assert api.as_("firm_f01").get(url).status_code == 404  # another firm's community
    assert api.as_("regulator").get(url).json()["project_lead_name"] == LEAD
    # Taken down: the page keeps what the registry holds and says the rest is not published.
    assert api.as_("duty_c01").request("DELETE", url).status_code == 403
    assert (
        api.anonymous().request("DELETE", url, headers=as_firm(api, community)).status_code == 204
    )
    assert api.as_("regulator").get(url).status_code == 404
    body = text(api.anonymous().get("/board/NB-C1").text)
    assert LEAD not in body and "项目负责人 Project lead 未公示 not published" in body
    assert "NB-EL维保" in body and "0359-5550001" in body


def test_a_contact_is_shown_only_while_its_unit_is_under_contract(
    api: Api, api_db: Conn, community: Community
) -> None:
    assert put_board(api, community).status_code == 200
    assert "孙工" in api.anonymous().get("/board/NB-C1").text
    other = make.unit(api_db, "NB-EL-NEW", "elevator", "0359-7770009")
    api_db.execute(
        "UPDATE community_maintenance_units SET maintenance_unit_id = %s"
        " WHERE community_id = %s AND kind = 'elevator'",
        (other, community.id),
    )
    try:
        page = text(api.anonymous().get("/board/NB-C1").text)
        assert "NB-EL-NEW维保" in page and "孙工" not in page
    finally:
        api_db.execute(
            "UPDATE community_maintenance_units SET maintenance_unit_id = u.id"
            " FROM maintenance_units u WHERE u.code = 'NB-EL' AND community_id = %s"
            " AND community_maintenance_units.kind = 'elevator'",
            (community.id,),
        )


def test_pages_are_rate_limited_per_client(api_settings: Settings, community: Community) -> None:
    app = create_app(api_settings)
    app.state.board_buckets = Buckets(rate=0.001, burst=2)

    async def run() -> list[httpx.Response]:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
        ):
            return [await c.get("/board/NB-C1") for _ in range(3)]

    with start_blocking_portal() as portal:
        answers = portal.call(run)
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert "Too many requests" in answers[2].text


def test_rules() -> None:
    assert public_phone("+86 138 0013 8000") == "13800138000"
    for ok in ("0359-5550001", "03595550001", "010-12345678-123", "400-123-4567", "12345"):
        assert public_phone(ok) == ok
    for bad in ("", "110x", "1380013800", "+1 555 1234", "0359-555"):
        with pytest.raises(BoardRule):
            public_phone(bad)
    q = period("2026Q4")
    assert (q.start.isoformat(), q.end.isoformat(), q.label) == (
        "2026-10-01",
        "2027-01-01",
        "2026Q4",
    )
    m = period("2026-12")
    assert (m.end.isoformat(), m.label) == ("2027-01-01", "2026-12")
    assert period("2026").label == "2026"
    assert label(q.start, m.end) == "2026Q4"
    assert label(m.start, q.end.replace(month=2)) == "2026-12-01–2027-02-01"
