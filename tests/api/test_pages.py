"""The duty pages over the real database: signing in, the lockout and rate limits, CSRF, the
actions moving the work order as the JSON API does, photo limits, another firm's alarm, and the
links from notifications (single use, one alarm, a group's link needs a sign-in)."""

from __future__ import annotations

import re
import struct
import time
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from pydantic import SecretStr

from core.db import Conn
from core.settings import Settings
from lifecycle.acknowledge import GROUP, make_token, read_token
from notify.ack_links import AckLinks
from notify.recipients import Recipient
from tests.api.conftest import Api, Ids, make_alarm
from tests.api.pages_helpers import PAGE_SETTINGS, PASSWORD, Pages, Staff, add_staff, pages

SECRET = "pages-link-secret"
ZONE = ZoneInfo("Asia/Shanghai")


def png(extra: int = 0) -> bytes:
    """A valid 1x1 PNG, padded with ``extra`` bytes of an ancillary chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pad = chunk(b"teXt", b"x" * extra) if extra else b""
    idat = chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + pad + idat + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def settings(api_settings: Settings) -> Settings:
    return api_settings.model_copy(
        update={
            **PAGE_SETTINGS,
            "notify_ack_secret": SecretStr(SECRET),
            "pages_photo_max_bytes": 4096,
        }
    )


@pytest.fixture(scope="module")
def staff(api_database: str, ids: Ids) -> dict[str, Staff]:
    from core.db import connect

    with connect(api_database, autocommit=True) as db:
        c01, c02 = ids.communities["C01"], ids.communities["C02"]
        return {
            "li": add_staff(
                db, "值班员 李", "13800000001", firm_id=ids.firms["F01"], shift_community=c01
            ),
            "wang": add_staff(
                db, "值班员 王", "13800000002", firm_id=ids.firms["F01"], shift_community=c01
            ),
            "zhao": add_staff(
                db, "值班员 赵", "13800000003", firm_id=ids.firms["F02"], shift_community=c02
            ),
            "mech": add_staff(
                db,
                "维保 孙",
                "13800000004",
                role="maintenance_staff",
                unit_id=ids.units["MU-EL1"],
                shift_community=c01,
            ),
        }


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[Pages]:
    with pages(settings) as p:
        yield p


@pytest.fixture
def browser(client: Pages) -> Pages:
    client.reset()
    return client


_codes = iter(range(1, 10_000))


def alarm_in(db: Conn, ids: Ids, community: str = "C01", n: int = 1, **kw: Any) -> tuple[int, int]:
    """An alarm and its work order; each with its own event code (a P0 lift's, unnamed) unless
    one is given, so one alarm never clears another's."""
    kw.setdefault("code", f"EL.PAGES{next(_codes)}")
    alarm, wo = make_alarm(db, ids.devices[ids.device_in(community, n=n)], **kw)
    assert wo is not None
    return alarm, wo


def wo_status(db: Conn, wo: int) -> str:
    row = db.execute("SELECT status FROM work_orders WHERE id = %s", (wo,)).fetchone()
    assert row is not None
    return str(row[0])


def test_sign_in_shows_my_open_work_orders_with_names_and_countdown(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    alarm, _ = alarm_in(api_db, ids, code="EL.TRAPPED")
    assert browser.get("/duty").status_code == 303  # not signed in: to the login page
    r = browser.sign_in(staff["li"].phone)
    assert r.status_code == 303 and r.headers["location"] == "/duty"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/duty" in cookie
    home = browser.get("/duty")
    assert home.status_code == 200, home.text
    assert f'href="/duty/alarms/{alarm}"' in home.text
    assert "电梯困人" in home.text and "Passengers trapped" in home.text  # the list's name
    assert "剩余" in home.text or "超时" in home.text  # a countdown
    assert "值班员 王" in home.text  # on duty now
    assert home.headers["content-security-policy"].startswith("default-src 'none'")
    page = browser.get(f"/duty/alarms/{alarm}")
    assert page.status_code == 200 and "确认接警" in page.text
    opened = api_db.execute("SELECT opened_at FROM alarms WHERE id = %s", (alarm,)).fetchone()
    assert opened is not None
    assert opened[0].astimezone(ZONE).strftime("%Y-%m-%d %H:%M") in page.text  # Beijing time


def test_cookies_are_secure_unless_set_otherwise(
    api_settings: Settings, staff: dict[str, Staff]
) -> None:
    secure = api_settings.model_copy(update={**PAGE_SETTINGS, "pages_cookie_secure": True})
    with pages(secure) as p:
        r = p.get("/duty/login")
        assert "sw_csrf=" in r.headers["set-cookie"] and "Secure" in r.headers["set-cookie"]
        # Over plain HTTP the browser keeps a Secure cookie to itself: no sign-in without TLS,
        # and the page says why and what to do.
        refused = p.sign_in(staff["wang"].phone)
        assert refused.status_code == 403
        assert "SHOUWANG_PAGES_COOKIE_SECURE=false" in refused.text and "https://" in refused.text
        # Over HTTPS the same cookies come back: signed in.
        p.client.base_url = httpx.URL("https://api")
        signed_in = p.sign_in(staff["wang"].phone)
        assert signed_in.status_code == 303 and "Secure" in signed_in.headers["set-cookie"]
    with pages(api_settings.model_copy(update=PAGE_SETTINGS)) as p:
        r = p.get("/duty/login")
        assert "Secure" not in r.headers["set-cookie"]
        # A form sent without its cookie where cookies are not Secure: just expired.
        bare = p.post("/duty/login", data={"phone": "13800000000", "password": "x" * 12})
        assert bare.status_code == 403 and "expired" in bare.text
        assert "SHOUWANG_PAGES_COOKIE_SECURE" not in bare.text


def test_wrong_passwords_lock_the_login(
    api_settings: Settings, staff: dict[str, Staff], api_db: Conn
) -> None:
    locking = api_settings.model_copy(
        update={**PAGE_SETTINGS, "pages_lockout_failures": 3, "pages_lockout_minutes": 10}
    )
    phone = "13800000009"
    person = add_staff(api_db, "值班员 锁", phone, firm_id=_firm(api_db))
    with pages(locking) as p:
        for _ in range(3):
            r = p.sign_in(phone, "wrong password!")
            assert r.status_code == 401 and "Wrong phone number or password" in r.text
        r = p.sign_in(phone)  # the right password, while locked
        assert r.status_code == 423 and "locked" in r.text
        unknown = p.sign_in("13999999999", "whatever-it-is")
        assert unknown.status_code == 401  # the same answer as a wrong password
    row = api_db.execute(
        "SELECT failures, locked_until > now() FROM person_logins WHERE person_id = %s",
        (person.id,),
    ).fetchone()
    assert row == (4, True)
    logged = api_db.execute(
        "SELECT count(*) FROM audit_log WHERE resource = 'login_failures' AND after ->> 'phone' = %s",
        (phone,),
    ).fetchone()
    assert logged == (4,)
    hashes = api_db.execute(
        "SELECT after ->> 'password_hash' FROM audit_log WHERE resource = 'person_logins'"
        " AND resource_id = %s",
        (str(person.id),),
    ).fetchall()
    assert hashes and all(h[0] in ("(redacted)", None) for h in hashes)
    # A new password from the admin lifts the lock.
    from api.pages.sessions import set_password

    set_password(api_db, person.id, phone, PASSWORD, datetime.now(UTC))
    with pages(locking) as p:
        assert p.sign_in(phone).status_code == 303


def _firm(db: Conn) -> int:
    row = db.execute("SELECT id FROM firms WHERE code = 'F01'").fetchone()
    assert row is not None
    return int(row[0])


def test_failures_from_one_address_are_limited(
    api_settings: Settings, staff: dict[str, Staff], api_db: Conn
) -> None:
    row = api_db.execute(  # earlier tests' failures from this address count too
        "SELECT count(*) FROM login_failures WHERE client = '127.0.0.1'"
        " AND at > now() - interval '1 minute'"
    ).fetchone()
    assert row is not None
    limited = api_settings.model_copy(
        update={
            **PAGE_SETTINGS,
            "pages_failures_per_client": row[0] + 2,
            "pages_failure_window_minutes": 1,
        }
    )
    with pages(limited) as p:
        for n in range(2):
            assert p.sign_in(f"1370000000{n}", "nope-nope-nope").status_code == 401
        r = p.sign_in(staff["li"].phone)  # even a right password, from that address
        assert r.status_code == 429 and "Too many tries" in r.text


def test_forms_need_their_csrf_token(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    r = browser.post("/duty/login", data={"phone": staff["li"].phone, "password": PASSWORD})
    assert r.status_code == 403 and "sw_session" not in r.headers.get("set-cookie", "")
    assert browser.sign_in(staff["li"].phone).status_code == 303
    alarm, wo = alarm_in(api_db, ids)
    for data in ({}, {"csrf": "forged-token-forged-token"}):
        r = browser.post(f"/duty/alarms/{alarm}/acknowledge", data=data)
        assert r.status_code == 403, r.text
    assert wo_status(api_db, wo) == "occurred"
    r = browser.post("/duty/logout", data={"csrf": "nope"})
    assert r.status_code == 403
    assert browser.get("/duty").status_code == 200  # still signed in


def report(api: Api) -> dict[str, Any]:
    today = datetime.now(ZONE).date()
    r = api.as_("firm_f01").get(
        f"/v1/reports/firm-performance?from={today}&to={today + timedelta(days=1)}"
    )
    assert r.status_code == 200, r.text
    firms = r.json()["firms"]
    assert len(firms) == 1
    return dict(firms[0])


def test_actions_move_the_work_order_as_the_api_does(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn, api: Api
) -> None:
    before = report(api)
    alarm, wo = alarm_in(api_db, ids, opened=datetime.now(UTC) - timedelta(minutes=2))
    assert browser.sign_in(staff["li"].phone).status_code == 303
    assert browser.act(alarm, "acknowledge").status_code == 303
    assert wo_status(api_db, wo) == "responded"
    row = api_db.execute("SELECT state, acknowledged_by FROM alarms WHERE id = %s", (alarm,))
    assert row.fetchone() == ("acknowledged", f"值班员 李 (duty pages, person {staff['li'].id})")
    r = browser.act(
        alarm,
        "arrive",
        data={"latitude": "31.2304", "longitude": "121.4737"},
        files={"photo": ("site.png", png(), "image/png")},
    )
    assert r.status_code == 303, r.text
    assert wo_status(api_db, wo) == "on_site"
    arrival = api_db.execute(
        "SELECT latitude, photo_type, octet_length(photo), person_id FROM work_order_arrivals"
        " WHERE work_order_id = %s",
        (wo,),
    ).fetchone()
    assert arrival == (31.2304, "image/png", len(png()), staff["li"].id)
    assert browser.act(alarm, "complete", data={"note": ""}).status_code == 422  # a note needed
    assert browser.act(alarm, "complete", data={"note": "换了门机板"}).status_code == 303
    detail = api.as_("firm_f01").get(f"/v1/work-orders/{wo}").json()
    assert detail["status"] == "completed"
    assert {s["kind"]: s["outcome"] for s in detail["sla"]} == {
        "response": "met",
        "arrival": "met",
        "resolution": "met",
    }
    assert detail["transitions"][-1]["note"] == "换了门机板"
    after = report(api)
    assert after["work_orders"] == before["work_orders"] + 1
    assert after["response_time"]["samples"] == before["response_time"]["samples"] + 1
    assert after["arrival_time"]["samples"] == before["arrival_time"]["samples"] + 1
    page = browser.get(f"/duty/alarms/{alarm}")
    assert "已完成" in page.text and "/photo" in page.text
    found = re.search(r'href="(/duty/arrivals/[0-9]+/photo)"', page.text)
    assert found, page.text
    photo = browser.get(found.group(1))
    assert photo.status_code == 200 and photo.content == png()
    # Completed: nothing more to do; a second completion is refused by the lifecycle.
    assert browser.act(alarm, "complete", data={"note": "again"}).status_code == 409


def test_photos_are_limited_in_size_and_type(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    alarm, wo = alarm_in(api_db, ids)
    assert browser.sign_in(staff["li"].phone).status_code == 303
    big = browser.act(alarm, "arrive", files={"photo": ("big.png", png(8000), "image/png")})
    assert big.status_code == 413 and "KiB" in big.text
    fake = browser.act(alarm, "arrive", files={"photo": ("x.png", b"<svg onload=x>", "image/png")})
    assert fake.status_code == 415
    bad = browser.act(alarm, "arrive", data={"latitude": "nan", "longitude": "1"})
    assert bad.status_code == 422
    assert wo_status(api_db, wo) == "occurred"
    assert browser.act(alarm, "arrive").status_code == 303  # location and photo are optional
    assert wo_status(api_db, wo) == "on_site"


def test_another_firms_alarm_is_not_found(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    theirs, wo = alarm_in(api_db, ids, community="C02")
    assert browser.sign_in(staff["li"].phone).status_code == 303
    assert browser.get(f"/duty/alarms/{theirs}").status_code == 404
    mine = browser.csrf("/duty")
    r = browser.post(f"/duty/alarms/{theirs}/acknowledge", data={"csrf": mine})
    assert r.status_code == 404
    assert wo_status(api_db, wo) == "occurred"


def test_false_alarm_and_handover(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    alarm, wo = alarm_in(api_db, ids)
    assert browser.sign_in(staff["li"].phone).status_code == 303
    assert f"/duty/alarms/{alarm}" in browser.get("/duty").text
    api_db.execute(  # another firm's officer on shift here too: still not a colleague
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, 'duty_staff', %s, now() - interval '1 hour', now() + interval '1 hour')",
        (ids.communities["C01"], staff["zhao"].id),
    )
    options = browser.get(f"/duty/alarms/{alarm}").text.split('name="to"')[1].split("</select>")[0]
    assert f'value="{staff["wang"].id}"' in options
    assert f'value="{staff["zhao"].id}"' not in options
    r = browser.act(alarm, "handover", data={"to": str(staff["zhao"].id)})
    assert r.status_code == 422
    r = browser.act(alarm, "handover", data={"to": str(staff["wang"].id), "note": "我去开会"})
    assert r.status_code == 303
    assert f"/duty/alarms/{alarm}" not in browser.get("/duty").text  # no longer mine
    browser.reset()
    assert browser.sign_in(staff["wang"].phone).status_code == 303
    assert f"/duty/alarms/{alarm}" in browser.get("/duty").text
    assert browser.act(alarm, "false-alarm", data={"reason": ""}).status_code == 422
    assert browser.act(alarm, "false-alarm", data={"reason": "测试按钮"}).status_code == 303
    assert wo_status(api_db, wo) == "false_alarm"


def test_maintenance_staff_take_on_their_units_work_orders(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    alarm, wo = alarm_in(api_db, ids, unit_id=ids.units["MU-EL1"])
    other, _ = alarm_in(api_db, ids, n=0, unit_id=ids.units["MU-EL2"])
    assert browser.sign_in(staff["mech"].phone).status_code == 303
    assert browser.get(f"/duty/alarms/{other}").status_code == 404
    assert browser.act(alarm, "acknowledge").status_code == 303
    assert wo_status(api_db, wo) == "responded"  # the unit takes it on; the alarm stays
    row = api_db.execute("SELECT state FROM alarms WHERE id = %s", (alarm,)).fetchone()
    assert row == ("active",)


def test_a_personal_link_opens_its_one_alarm_once(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    alarm, wo = alarm_in(api_db, ids)
    other, _ = alarm_in(api_db, ids, n=0)
    li = staff["li"]
    links = AckLinks(SECRET, "http://api/v1/ack")
    r = Recipient(li.id, 1, "email", "li@example.com", "", name=li.name)
    url = links.for_recipient({"kind": "alarm_opened", "alarm_id": alarm}, r, datetime.now(UTC))[
        "ack_url"
    ]
    token = url.rsplit("/", 1)[1]
    assert read_token(SECRET, token, now=time.time()).person_id == li.id
    hop = browser.get(f"/v1/ack/{token}")  # the link as sent: on to the duty pages
    assert hop.status_code == 303 and hop.headers["location"] == f"/duty/link/{token}"
    shown = browser.get(f"/duty/link/{token}")
    assert shown.status_code == 200 and li.name in shown.text
    assert browser.get(f"/duty/link/{token}").status_code == 200  # a preview uses nothing up
    opened = browser.post(f"/duty/link/{token}", data={"csrf": browser.csrf(f"/duty/link/{token}")})
    assert opened.status_code == 303 and opened.headers["location"] == f"/duty/alarms/{alarm}"
    assert browser.get(f"/duty/alarms/{alarm}").status_code == 200
    assert browser.get(f"/duty/alarms/{other}").status_code == 403  # only its own alarm
    assert browser.get("/duty").status_code == 403  # anything more: sign in
    assert browser.act(alarm, "acknowledge").status_code == 303
    assert wo_status(api_db, wo) == "responded"
    browser.reset()
    again = browser.get(f"/duty/link/{token}")
    assert again.status_code == 410 and "once" in again.text
    expired = make_token(SECRET, alarm, li.name, int(time.time()) - 1, person_id=li.id)
    assert browser.get(f"/duty/link/{expired}").status_code == 410
    assert browser.get(f"/duty/link/{token[:-3]}abc").status_code == 400


def test_a_link_for_another_firms_alarm_opens_nothing(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    theirs, wo = alarm_in(api_db, ids, community="C02")
    li = staff["li"]
    token = make_token(SECRET, theirs, li.name, int(time.time()) + 600, person_id=li.id)
    csrf = browser.csrf(f"/duty/link/{token}")
    assert browser.post(f"/duty/link/{token}", data={"csrf": csrf}).status_code == 303
    assert browser.get(f"/duty/alarms/{theirs}").status_code == 404
    assert wo_status(api_db, wo) == "occurred"


def test_a_group_robots_link_always_needs_a_sign_in(
    browser: Pages, staff: dict[str, Staff], ids: Ids, api_db: Conn
) -> None:
    alarm, wo = alarm_in(api_db, ids)
    robot = Recipient(staff["li"].id, 2, "wecom", "https://qyapi.example/hook", "", name="群")
    url = AckLinks(SECRET, "http://api/v1/ack").for_recipient(
        {"kind": "alarm_opened", "alarm_id": alarm}, robot, datetime.now(UTC)
    )["ack_url"]
    token = url.rsplit("/", 1)[1]
    assert read_token(SECRET, token, now=time.time()).person_id == GROUP
    r = browser.get(f"/duty/link/{token}")
    assert r.status_code == 303 and r.headers["location"].startswith("/duty/login?next=")
    r = browser.post(f"/duty/link/{token}", data={"csrf": browser.csrf("/duty/login")})
    assert r.status_code == 303 and "sw_session" not in r.headers.get("set-cookie", "")
    acked = browser.post(f"/v1/ack/{token}", headers={"Accept": "application/json"})
    assert acked.status_code == 401 and acked.json()["error"]["code"] == "sign_in_required"
    assert wo_status(api_db, wo) == "occurred"
    # After signing in, the same link's target opens.
    assert (
        browser.sign_in(staff["li"].phone, next=f"/duty/alarms/{alarm}").headers["location"]
        == f"/duty/alarms/{alarm}"
    )
    assert browser.sign_in(staff["li"].phone, next="//evil.example/").headers["location"] == "/duty"


def test_logout_ends_the_session(browser: Pages, staff: dict[str, Staff], api_db: Conn) -> None:
    assert browser.sign_in(staff["wang"].phone).status_code == 303
    cookie = browser.client.cookies.get("sw_session")
    assert browser.post("/duty/logout", data={"csrf": browser.csrf("/duty")}).status_code == 303
    browser.client.cookies.set("sw_session", cookie or "", path="/duty")
    assert browser.get("/duty").status_code == 303  # the old cookie no longer works
    row = api_db.execute(
        "SELECT count(*) FROM audit_log WHERE resource = 'page_sessions'"
        " AND action = 'update' AND after ? 'ended_at'"
    ).fetchone()
    assert row is not None and row[0] >= 1


def test_admins_set_logins_of_their_own_staff(api: Api, ids: Ids, api_db: Conn) -> None:
    row = api_db.execute(
        "INSERT INTO people (name, role, firm_id) VALUES ('新人', 'duty_staff', %s) RETURNING id",
        (ids.firms["F01"],),
    ).fetchone()
    assert row is not None
    pid = row[0]
    body = {"phone": "138 0000 0077", "password": "a-good-password"}
    assert (
        api.as_("firm_f02").request("PUT", f"/v1/people/{pid}/login", json=body).status_code == 404
    )
    weak = api.as_("firm_f01").request(
        "PUT", f"/v1/people/{pid}/login", json={**body, "password": "short"}
    )
    assert weak.status_code == 422 and weak.json()["error"]["fields"][0]["field"] == "body.password"
    ok = api.as_("firm_f01").request("PUT", f"/v1/people/{pid}/login", json=body)
    assert ok.status_code == 204, ok.text
    stored = api_db.execute(
        "SELECT phone, password_hash LIKE '$argon2id$%%' FROM person_logins WHERE person_id = %s",
        (pid,),
    ).fetchone()
    assert stored == ("13800000077", True)


def test_without_a_session_actions_lead_to_the_sign_in(
    browser: Pages, ids: Ids, api_db: Conn
) -> None:
    alarm, wo = alarm_in(api_db, ids)
    r = browser.post(f"/duty/alarms/{alarm}/acknowledge", data={"csrf": "x" * 30})
    assert r.status_code == 303
    assert r.headers["location"] == f"/duty/login?next=/duty/alarms/{alarm}"
    browser.client.cookies.set("sw_session", "made-up-session-value", path="/duty")
    assert browser.get(f"/duty/alarms/{alarm}").status_code == 303
    assert wo_status(api_db, wo) == "occurred"
