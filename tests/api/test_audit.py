"""The audit log through the API: each kind of change made through the API or the command line
is recorded with its caller, before and after, never a secret; ``GET /v1/audit`` shows the county
regulator everything, a firm admin its own firm's part, and nobody else anything; no caller's
name outlives its request on a pooled connection."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal
from psycopg.rows import dict_row
from pydantic import SecretStr

from api.app import create_app
from core.db import Conn, connect
from core.settings import Settings
from core.severity import Severity
from lifecycle.acknowledge import make_token
from lifecycle.platform import PlatformKind, clear_alarm, raise_alarm
from tests.api.conftest import TOKENS, Api, Ids, in_process, make_alarm
from tests.api.test_responsibility import candidate
from tests.conftest import settings_env, shouwang
from tests.core.test_holiday_schedule import EXAMPLE_2027


def actor(api_db: Conn, who: str) -> str:
    """How the token ``who`` of tests/api/conftest.py is named in the log."""
    row = api_db.execute(
        "SELECT id FROM api_tokens WHERE name = %s ORDER BY id DESC LIMIT 1", (f"api test {who}",)
    ).fetchone()
    assert row is not None
    return f"api test {who} ({TOKENS[who][0]}, token {row[0]})"


def last_id(db: Conn) -> int:
    row = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()
    assert row is not None
    return int(row[0])


def logged(db: Conn, after: int, resource: str, **where: Any) -> list[dict[str, Any]]:
    """The entries on ``resource`` since id ``after`` (and ``where``: column = value), oldest
    first."""
    clause = "".join(f" AND {k} = %({k})s" for k in where)
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT * FROM audit_log WHERE id > %(after)s AND resource = %(resource)s{clause}"
            " ORDER BY id",
            {"after": after, "resource": resource, **where},
        )
        return cur.fetchall()


def changes(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["action"], e["actor"]) for e in entries]


def test_registry_changes_are_recorded_with_caller_before_and_after(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    start = last_id(api_db)
    reg, f01 = api.as_("regulator"), api.as_("firm_f01")
    me, firm_admin = actor(api_db, "regulator"), actor(api_db, "firm_f01")
    region = reg.post(
        "/v1/regions",
        json={
            "code": "AUD-T9",
            "kind": "township",
            "parent_id": ids.regions["DEMO"],
            "name_zh": "审计镇",
        },
    )
    assert region.status_code == 201, region.text
    rid = region.json()["id"]
    assert reg.patch(f"/v1/regions/{rid}", json={"name_en": "Audit"}).status_code == 200
    assert reg.delete(f"/v1/regions/{rid}").status_code == 204
    got = logged(api_db, start, "regions", resource_id=str(rid))
    assert changes(got) == [("insert", me), ("update", me), ("delete", me)]
    assert got[0]["after"]["code"] == "AUD-T9" and got[0]["before"] is None
    assert (got[1]["before"], got[1]["after"]) == ({"name_en": ""}, {"name_en": "Audit"})
    assert got[2]["before"]["name_en"] == "Audit" and got[2]["after"] is None
    assert all(e["via"] == "api" and e["region_id"] == rid for e in got)
    token = api_db.execute("SELECT id FROM api_tokens WHERE name = 'api test regulator'").fetchone()
    assert {e["token_id"] for e in got} == {token[0]}  # type: ignore[index]

    unit = reg.post(
        "/v1/maintenance-units", json={"code": "AUD-MU", "kind": "fire", "name_zh": "审计维保"}
    ).json()
    assert reg.delete(f"/v1/maintenance-units/{unit['id']}").status_code == 204
    assert changes(logged(api_db, start, "maintenance_units")) == [("insert", me), ("delete", me)]

    firm = reg.post("/v1/firms", json={"code": "AUD-F9", "name_zh": "审计物业"}).json()
    community = reg.post(
        "/v1/communities",
        json={
            "code": "AUD-C9",
            "region_id": ids.regions["T01"],
            "firm_id": firm["id"],
            "name_zh": "审计小区",
        },
    ).json()
    building = reg.post(
        "/v1/buildings",
        json={"community_id": community["id"], "code": "B01", "name": "1号楼", "floors": 9},
    ).json()
    assert reg.patch(f"/v1/buildings/{building['id']}", json={"floors": 11}).status_code == 200
    device = reg.post(
        "/v1/devices",
        json={
            "uid": "AUD-C9-EL1",
            "device_class": "elevator",
            "community_id": community["id"],
            "building_id": building["id"],
        },
    )
    assert device.status_code == 201, device.text
    did = str(device.json()["id"])
    assert reg.patch("/v1/devices/AUD-C9-EL1", json={"location": "东梯"}).status_code == 200
    assert reg.delete("/v1/devices/AUD-C9-EL1").status_code == 204  # decommissioned

    assert changes(logged(api_db, start, "firms", resource_id=str(firm["id"]))) == [("insert", me)]
    c = logged(api_db, start, "communities", resource_id=str(community["id"]))
    assert changes(c) == [("insert", me)] and c[0]["firm_ids"] == [firm["id"]]
    b = logged(api_db, start, "buildings", resource_id=str(building["id"]))
    assert changes(b) == [("insert", me), ("update", me)]
    assert (b[1]["before"], b[1]["after"]) == ({"floors": 9}, {"floors": 11})
    d = logged(api_db, start, "devices", resource_id=did)
    assert changes(d) == [("insert", me), ("update", me), ("update", me)]
    assert d[1]["after"] == {"location": "东梯"} and d[2]["after"] == {"active": False}
    assert {(e["community_id"], tuple(e["firm_ids"])) for e in d} == {
        (community["id"], (firm["id"],))
    }

    # A firm admin's own changes, and a CSV import: one entry per device, in one transaction.
    own = f01.patch(f"/v1/firms/{ids.firms['F01']}", json={"complaint_phone": "0359-7654321"})
    assert own.status_code == 200
    f = logged(api_db, start, "firms", resource_id=str(ids.firms["F01"]))
    assert changes(f) == [("update", firm_admin)]
    assert f[0]["after"] == {"complaint_phone": "0359-7654321"}
    csv = "uid,device_class,community\nAUD-IMP-1,fire_water,C01\nAUD-IMP-2,fire_water,C01\n"
    imported = f01.post(
        "/v1/devices/import", content=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 201, imported.text
    rows = [
        e
        for e in logged(api_db, start, "devices")
        if e["after"] and str(e["after"].get("uid", "")).startswith("AUD-IMP")
    ]
    assert changes(rows) == [("insert", firm_admin)] * 2
    assert len({e["xact"] for e in rows}) == 1
    assert {tuple(e["firm_ids"]) for e in rows} == {(ids.firms["F01"],)}
    api_db.execute("DELETE FROM devices WHERE uid IN ('AUD-IMP-1', 'AUD-IMP-2', 'AUD-C9-EL1')")
    api_db.execute("DELETE FROM buildings WHERE id = %s", (building["id"],))
    api_db.execute("DELETE FROM communities WHERE id = %s", (community["id"],))
    api_db.execute("DELETE FROM firms WHERE id = %s", (firm["id"],))


def _everything(api_db: Conn, start: int) -> str:
    row = api_db.execute(
        "SELECT coalesce(string_agg(concat(before::text, after::text, actor, resource_id), ' '),"
        " '') FROM audit_log WHERE id > %s",
        (start,),
    ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def own_device(api: Api, ids: Ids, api_db: Conn) -> Iterator[str]:
    """A lift of C01's of this module's own (its credential is issued and revoked here)."""
    uid = f"AUD-EL-{time.monotonic_ns()}"
    made = api.as_("regulator").post(
        "/v1/devices",
        json={"uid": uid, "device_class": "elevator", "community_id": ids.communities["C01"]},
    )
    assert made.status_code == 201, made.text
    yield uid
    api_db.execute("DELETE FROM mqtt_accounts WHERE username = %s", (uid,))
    api_db.execute("DELETE FROM devices WHERE uid = %s", (uid,))


def test_credentials_roster_and_channels_are_recorded_without_their_secrets(
    api: Api, ids: Ids, api_db: Conn, own_device: str
) -> None:
    start = last_id(api_db)
    f01 = api.as_("firm_f01")
    me = actor(api_db, "firm_f01")
    uid = own_device
    first = f01.post(f"/v1/devices/{uid}/credentials")
    assert first.status_code == 201, first.text
    second = f01.post(f"/v1/devices/{uid}/credentials")
    assert f01.delete(f"/v1/devices/{uid}/credentials").status_code == 200
    account = logged(api_db, start, "mqtt_accounts", resource_id=uid)
    assert [e["actor"] for e in account] == [me] * len(account) and len(account) >= 2
    assert account[-1]["after"]["revoked_at"] is not None
    assert all(
        v == "(redacted)"
        for e in account
        for image in (e["before"], e["after"])
        if image and "password_hash" in image
        for v in [image["password_hash"]]
    )
    assert any(e["after"] and "password_hash" in e["after"] for e in account)
    assert {tuple(e["firm_ids"]) for e in account} == {(ids.firms["F01"],)}

    person = f01.post("/v1/people", json={"name": "审计值班", "role": "duty_staff"}).json()
    assert f01.patch(f"/v1/people/{person['id']}", json={"language": "en"}).status_code == 200
    robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=AUDIT-ROBOT-KEY-0001"
    channel = f01.post(
        f"/v1/people/{person['id']}/channels",
        json={"kind": "wecom", "address": robot, "secret": "AUDIT-SIGNING-SECRET"},
    )
    assert channel.status_code == 201, channel.text
    shift = f01.post(
        "/v1/shifts",
        json={
            "community_id": ids.communities["C01"],
            "role": "duty_staff",
            "person_id": person["id"],
            "starts_at": "2024-06-01T08:00:00+08:00",
            "ends_at": "2024-06-01T20:00:00+08:00",
        },
    )
    assert shift.status_code == 201, shift.text
    assert f01.delete(f"/v1/shifts/{shift.json()['id']}").status_code == 204
    assert (
        f01.delete(f"/v1/people/{person['id']}/channels/{channel.json()['id']}").status_code == 204
    )

    p = logged(api_db, start, "people", resource_id=str(person["id"]))
    assert changes(p) == [("insert", me), ("update", me)]
    assert (p[1]["before"], p[1]["after"]) == ({"language": "zh"}, {"language": "en"})
    ch = logged(api_db, start, "contact_channels", resource_id=str(channel.json()["id"]))
    assert changes(ch) == [("insert", me), ("delete", me)]
    assert ch[0]["after"]["address"] == "https://qyapi.weixin.qq.com/…"
    assert ch[0]["after"]["secret"] == "(redacted)"
    assert {tuple(e["firm_ids"]) for e in ch} == {(ids.firms["F01"],)}
    s = logged(api_db, start, "duty_shifts", resource_id=str(shift.json()["id"]))
    assert changes(s) == [("insert", me), ("delete", me)]
    assert s[0]["community_id"] == ids.communities["C01"]

    # Nowhere in the log: the passwords shown once, the robot's key, the signing secret.
    text = _everything(api_db, start)
    for secret in (
        first.json()["password"],
        second.json()["password"],
        "AUDIT-ROBOT-KEY",
        "AUDIT-SIGNING-SECRET",
    ):
        assert secret not in text
    api_db.execute("DELETE FROM people WHERE id = %s", (person["id"],))


def test_list_and_calendar_versions_are_recorded_without_their_content(
    api: Api, api_db: Conn
) -> None:
    start = last_id(api_db)
    reg = api.as_("regulator")
    me = actor(api_db, "regulator")
    text = candidate("2026.9-audit")
    try:
        published = reg.post("/v1/responsibility-list", json={"content": text})
        assert published.status_code == 201, published.text
        got = logged(api_db, start, "responsibility_lists", resource_id="2026.9-audit")
        assert changes(got) == [("insert", me)]
        assert got[0]["after"]["content"] == f"({len(text)} characters)"
        assert got[0]["after"]["digest"] == published.json()["digest"]
    finally:  # the responsibility tests expect no published list
        api_db.execute("DELETE FROM responsibility_lists WHERE version = '2026.9-audit'")

    api_db.execute("DELETE FROM holiday_schedules WHERE year = 2027")
    schedule = EXAMPLE_2027.read_text(encoding="utf-8")
    loaded = reg.post("/v1/calendar/schedules", json={"content": schedule})
    assert loaded.status_code == 201, loaded.text
    got = [e for e in logged(api_db, start, "holiday_schedules") if e["action"] == "insert"]
    assert changes(got) == [("insert", me)]
    assert got[0]["after"]["year"] == 2027 and "characters)" in got[0]["after"]["content"]


def test_alarm_and_work_order_state_set_by_people_is_recorded_and_analytics_is_not(
    api: Api, api_settings: Settings, ids: Ids, api_db: Conn
) -> None:
    start = last_id(api_db)
    # Filed and re-triggered as analytics does, on a connection that names nobody: not recorded.
    alarm, wo = make_alarm(api_db, ids.devices[ids.device_in("C01", n=1)], code="EL.AUDIT")
    api_db.execute("UPDATE alarms SET triggers = triggers + 1 WHERE id = %s", (alarm,))
    feed = raise_alarm(api_db, PlatformKind.STAGE_RESTARTED, "audit", severity=Severity.P3)
    for table in ("alarms", "work_orders", "platform_alarms"):
        assert logged(api_db, start, table) == [], table

    duty, unit, f01 = api.as_("duty_c01"), api.as_("unit_el1"), api.as_("firm_f01")
    assert duty.post(f"/v1/alarms/{alarm}/acknowledge").status_code == 200
    moved = unit.post(f"/v1/work-orders/{wo}/transitions", json={"to": "on_site"})
    assert moved.status_code == 200, moved.text
    assigned = f01.post(
        f"/v1/work-orders/{wo}/assign", json={"maintenance_unit_id": ids.units["MU-EL2"]}
    )
    assert assigned.status_code == 200, assigned.text
    acked = api.as_("platform").post(f"/v1/platform/alarms/{feed.id}/acknowledge")
    assert acked.status_code == 200, acked.text

    a = logged(api_db, start, "alarms", resource_id=str(alarm))
    assert changes(a) == [("update", actor(api_db, "duty_c01"))]
    assert a[0]["before"]["state"] == "active" and a[0]["after"]["state"] == "acknowledged"
    assert a[0]["community_id"] == ids.communities["C01"]
    assert a[0]["firm_ids"] == [ids.firms["F01"]]
    w = logged(api_db, start, "work_orders", resource_id=str(wo))
    assert [
        (e["actor"], e["after"].get("status"), e["after"].get("maintenance_unit_id")) for e in w
    ] == [
        (actor(api_db, "duty_c01"), "responded", None),
        (actor(api_db, "unit_el1"), "on_site", None),
        (actor(api_db, "firm_f01"), None, ids.units["MU-EL2"]),
    ]
    p = logged(api_db, start, "platform_alarms", resource_id=str(feed.id))
    assert changes(p) == [("update", actor(api_db, "platform"))]
    clear_alarm(api_db, PlatformKind.STAGE_RESTARTED, "audit", reason="test")

    # By the link in a notification: the person the link was sent to.
    second, _ = make_alarm(api_db, ids.devices[ids.device_in("C01", n=1)], code="EL.AUDIT2")
    settings = api_settings.model_copy(update={"notify_ack_secret": SecretStr("audit-ack")})
    link = make_token("audit-ack", second, "值班员 审计", int(time.time()) + 600)
    with in_process(settings) as client:
        used = client.request("POST", f"/v1/ack/{link}", headers={"Accept": "application/json"})
    assert used.status_code == 200, used.text
    by_link = logged(api_db, start, "alarms", resource_id=str(second))
    assert changes(by_link) == [("update", "值班员 审计 (acknowledgement link)")]
    assert by_link[0]["via"] == "api" and by_link[0]["token_id"] is None
    for done, reason in ((second, "false_alarm"), (alarm, "resolved")):
        cleared = f01.post(f"/v1/alarms/{done}/clear", json={"reason": reason})
        assert cleared.status_code == 200, cleared.text
        last = logged(api_db, start, "alarms", resource_id=str(done))[-1]
        assert (last["actor"], last["after"]["state"]) == (actor(api_db, "firm_f01"), "cleared")


def test_the_cli_records_its_operator(api: Api, api_settings: Settings, api_db: Conn) -> None:
    start = last_id(api_db)
    done = subprocess.run(
        shouwang(
            "api", "token", "issue", "--role", "firm_admin", "--name", "audit cli", "--firm", "F01"
        ),
        env=settings_env(api_settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip().splitlines()[-1]
    got = logged(api_db, start, "api_tokens")
    assert [(e["action"], e["via"]) for e in got] == [("insert", "cli")]
    assert got[0]["actor"].startswith("cli:") and got[0]["token_id"] is None
    assert got[0]["after"]["name"] == "audit cli"
    assert got[0]["after"]["token_hash"] == "(redacted)"
    assert secret not in _everything(api_db, start)
    # The firm's admin reads it: a token of its firm.
    listed = api.as_("firm_f01").get(
        "/v1/audit", params={"resource": "api_tokens", "resource_id": got[0]["resource_id"]}
    )
    assert [e["via"] for e in listed.json()["items"]] == ["cli"]
    revoked = subprocess.run(
        shouwang("api", "token", "revoke", got[0]["resource_id"]),
        env=settings_env(api_settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert revoked.returncode == 0, revoked.stderr
    again = logged(api_db, start, "api_tokens", action="update")
    assert [(e["actor"], list(e["after"])) for e in again] == [(got[0]["actor"], ["revoked_at"])]


@pytest.fixture(scope="module")
def both_firms(api: Api, ids: Ids, api_database: str) -> dict[str, int]:
    """A change in each firm's community and one outside any firm; the first entry's id."""
    with connect(api_database) as db:
        start = last_id(db)
    reg = api.as_("regulator")
    for code in ("C01", "C02"):
        b = reg.post(
            "/v1/buildings",
            json={
                "community_id": ids.communities[code],
                "code": f"AUD-{code}",
                "name": "x",
                "floors": 2,
            },
        )
        assert b.status_code == 201, b.text
        assert reg.delete(f"/v1/buildings/{b.json()['id']}").status_code == 204
    unit = reg.post(
        "/v1/maintenance-units", json={"code": "AUD-MU2", "kind": "water", "name_zh": "水"}
    ).json()
    assert reg.delete(f"/v1/maintenance-units/{unit['id']}").status_code == 204
    return {"start": start}


READERS = {"regulator", "firm_f01", "firm_f02"}


@pytest.mark.parametrize("who", sorted(TOKENS))
def test_who_reads_the_audit_log(api: Api, ids: Ids, both_firms: dict[str, int], who: str) -> None:
    r = api.as_(who).get("/v1/audit", params={"limit": 500})
    if who not in READERS:
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        return
    assert r.status_code == 200, r.text
    items = [e for e in r.json()["items"] if e["id"] > both_firms["start"]]
    communities = {e["community_id"] for e in items if e["resource"] == "buildings"}
    units = [e for e in items if e["resource"] == "maintenance_units"]
    if who == "regulator":
        assert communities == {ids.communities["C01"], ids.communities["C02"]}
        assert len(units) == 2
    else:
        firm = ids.firms["F01" if who == "firm_f01" else "F02"]
        community = ids.communities["C01" if who == "firm_f01" else "C02"]
        assert communities == {community}
        assert units == []  # no firm's
        assert all(firm in e["firm_ids"] for e in r.json()["items"])
    assert api.anonymous().get("/v1/audit").status_code == 401


def test_filters_and_pages(api: Api, ids: Ids, api_db: Conn, both_firms: dict[str, int]) -> None:
    reg = api.as_("regulator")
    me = actor(api_db, "regulator")
    first = reg.get(
        "/v1/audit", params={"resource": "buildings", "actor": me, "via": "api", "limit": 1}
    ).json()
    assert len(first["items"]) == 1 and first["next"]
    second = reg.get(
        "/v1/audit",
        params={
            "resource": "buildings",
            "actor": me,
            "via": "api",
            "limit": 1,
            "cursor": first["next"],
        },
    ).json()
    assert second["items"][0]["id"] < first["items"][0]["id"]
    deleted = reg.get(
        "/v1/audit",
        params={
            "resource": "buildings",
            "action": "delete",
            "community_id": ids.communities["C02"],
            "limit": 500,
        },
    ).json()["items"]
    assert deleted and all(e["before"]["community_id"] == ids.communities["C02"] for e in deleted)
    now = datetime.now(UTC)
    recent = reg.get(
        "/v1/audit",
        params={
            "since": (now - timedelta(hours=1)).isoformat(),
            "until": now.isoformat(),
            "firm_id": ids.firms["F02"],
            "limit": 500,
        },
    ).json()["items"]
    assert recent and all(ids.firms["F02"] in e["firm_ids"] for e in recent)
    # The firm filter cannot widen a firm admin's view.
    other = api.as_("firm_f01").get("/v1/audit", params={"firm_id": ids.firms["F02"]})
    assert other.status_code == 200 and other.json()["items"] == []
    naive = reg.get("/v1/audit", params={"since": "2024-05-01T08:00:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["fields"][0]["field"] == "query.since"
    unknown = reg.get("/v1/audit", params={"resource": "readings"})
    assert unknown.status_code == 422


@asynccontextmanager
async def _app(settings: Settings) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield app, c


@pytest.fixture
def one_connection(api_settings: Settings) -> Iterator[tuple[Any, Any]]:
    """An app whose pool holds one connection, so the next request gets the same one."""
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(
            _app(api_settings.model_copy(update={"api_pool_size": 1}))
        ) as (app, client),
    ):
        yield portal, (app, client)


def test_no_callers_name_outlives_its_request(
    one_connection: tuple[Any, Any],
    tokens: dict[str, str],
    ids: Ids,
    api_db: Conn,
    own_device: str,
) -> None:
    portal, (app, client) = one_connection
    headers = {"Authorization": f"Bearer {tokens['firm_f01']}"}

    async def named_on_pools() -> tuple[str, str]:
        async with app.state.pool.connection() as c:
            cur = await c.execute("SELECT coalesce(current_setting('shouwang.actor', true), '')")
            row = await cur.fetchone()
        with app.state.sync_pool.connection() as s:
            sync = s.execute("SELECT coalesce(current_setting('shouwang.actor', true), '')")
            srow = sync.fetchone()
        return str(row[0]), str(srow[0])  # type: ignore[index]

    def call(method: str, url: str, **kw: Any) -> httpx.Response:
        return portal.call(lambda: client.request(method, url, headers=headers, **kw))  # type: ignore[no-any-return]

    start = last_id(api_db)
    ok = call("PATCH", f"/v1/firms/{ids.firms['F01']}", json={"contact_phone": "0359-1111111"})
    assert ok.status_code == 200, ok.text
    assert portal.call(named_on_pools) == ("", "")
    refused = call("PATCH", f"/v1/firms/{ids.firms['F02']}", json={"name_en": "x"})
    assert refused.status_code == 404  # named, then refused inside the route
    assert portal.call(named_on_pools) == ("", "")
    uid = own_device
    issued = call("POST", f"/v1/devices/{uid}/credentials")  # on the synchronous pool
    assert issued.status_code == 201, issued.text
    assert portal.call(named_on_pools) == ("", "")

    # A change made on the same connection afterwards by nobody is nobody's.
    async def unnamed_change() -> None:
        async with app.state.pool.connection() as c:
            await c.execute(
                "UPDATE firms SET contact_phone = '0359-2222222' WHERE id = %s", (ids.firms["F01"],)
            )

    portal.call(unnamed_change)
    f = logged(api_db, start, "firms", resource_id=str(ids.firms["F01"]))
    assert [e["via"] for e in f] == ["api", "sql"]
    assert [e["via"] for e in logged(api_db, start, "mqtt_accounts", resource_id=uid)] == ["api"]
