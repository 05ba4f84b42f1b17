"""The duty roster through the API: a firm puts its people (and its lifts' maintenance staff) on
shift for its communities; who is on duty follows the shifts, handovers included."""

from __future__ import annotations

from typing import Any

from core.db import Conn
from notify.webhook import new_secret
from tests.api.conftest import Api, Ids


def test_a_firm_rosters_its_people_and_sees_who_is_on_duty(api: Api, ids: Ids) -> None:
    f01 = api.as_("firm_f01")
    day = f01.post("/v1/people", json={"name": "王值班", "role": "duty_staff"})
    assert day.status_code == 201, day.text
    assert day.json()["firm_id"] == ids.firms["F01"]  # a firm adds its own staff
    night = f01.post(
        "/v1/people", json={"name": "李夜班", "role": "duty_staff", "firm_id": ids.firms["F02"]}
    ).json()
    assert night["firm_id"] == ids.firms["F01"]
    channel = f01.post(
        f"/v1/people/{day.json()['id']}/channels",
        json={"kind": "webhook", "address": "https://hooks.example.org/in", "secret": new_secret()},
    )
    assert channel.status_code == 201
    assert channel.json()["has_secret"] is True
    assert "secret" not in channel.json()

    c01 = ids.communities["C01"]
    shifts = [
        (day.json()["id"], "2024-05-01T08:00:00+08:00", "2024-05-01T20:30:00+08:00"),
        (night["id"], "2024-05-01T20:00:00+08:00", "2024-05-02T08:30:00+08:00"),
    ]
    for person, start, end in shifts:
        r = f01.post(
            "/v1/shifts",
            json={
                "community_id": c01,
                "role": "duty_staff",
                "person_id": person,
                "starts_at": start,
                "ends_at": end,
            },
        )
        assert r.status_code == 201, r.text

    def on_duty(at: str) -> list[str]:
        r = api.as_("duty_c01").get(f"/v1/communities/{c01}/on-duty", params={"at": at})
        return [p["name"] for p in r.json()["people"]]

    assert on_duty("2024-05-01T12:00:00+08:00") == ["王值班"]
    assert on_duty("2024-05-01T20:15:00+08:00") == ["王值班", "李夜班"]  # the handover
    assert on_duty("2024-05-02T03:00:00+08:00") == ["李夜班"]
    assert on_duty("2024-05-02T09:00:00+08:00") == []
    listed = api.as_("township_t01").get("/v1/shifts", params={"at": "2024-05-01T20:15:00+08:00"})
    assert len(listed.json()["items"]) == 2
    assert (
        api.as_("township_t02")
        .get("/v1/shifts", params={"at": "2024-05-01T20:15:00+08:00"})
        .json()["items"]
        == []
    )
    backwards = f01.post(
        "/v1/shifts",
        json={
            "community_id": c01,
            "role": "duty_staff",
            "person_id": night["id"],
            "starts_at": "2024-05-02T08:00:00+08:00",
            "ends_at": "2024-05-01T08:00:00+08:00",
        },
    )
    assert backwards.status_code == 422
    off = f01.patch(f"/v1/people/{night['id']}", json={"active": False})
    assert off.json()["active"] is False
    assert on_duty("2024-05-02T03:00:00+08:00") == []


def people_ids(client: Any) -> list[int]:
    """Every person the caller sees (all pages: other tests add people to these firms)."""
    out: list[int] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        body = client.get("/v1/people", params=params).json()
        out += [p["id"] for p in body["items"]]
        if body["next"] is None:
            return out
        params["cursor"] = body["next"]


def test_people_and_shifts_of_another_scope_are_out_of_reach(api: Api, ids: Ids) -> None:
    theirs = api.as_("firm_f02").post("/v1/people", json={"name": "赵", "role": "firm_manager"})
    pid = theirs.json()["id"]
    f01 = api.as_("firm_f01")
    assert f01.get(f"/v1/people/{pid}").status_code == 404
    assert f01.patch(f"/v1/people/{pid}", json={"name": "x"}).status_code == 404
    assert (
        f01.post(
            f"/v1/people/{pid}/channels", json={"kind": "email", "address": "a@b.c"}
        ).status_code
        == 404
    )
    shift = f01.post(
        "/v1/shifts",
        json={
            "community_id": ids.communities["C01"],
            "role": "firm_manager",
            "person_id": pid,
            "starts_at": "2024-05-01T08:00:00+08:00",
            "ends_at": "2024-05-01T20:00:00+08:00",
        },
    )
    assert shift.status_code == 422
    assert shift.json()["error"]["fields"][0]["field"] == "body.person_id"
    assert pid not in people_ids(f01)
    assert pid in people_ids(api.as_("township_t02"))
    assert pid not in people_ids(api.as_("township_t01"))
    staff = api.as_("unit_el1").post("/v1/people", json={"name": "钱", "role": "maintenance_staff"})
    assert staff.json()["unit_id"] == ids.units["MU-EL1"]
    # C01's lifts are MU-EL1's: F01 may put its staff on C01's roster.
    assert staff.json()["id"] in people_ids(f01)


def test_the_delivery_log_is_scoped_by_community(api: Api, ids: Ids, api_db: Conn) -> None:
    from tests.api.conftest import make_alarm

    rows: dict[str, int] = {}
    for community in ("C01", "C02"):
        alarm, wo = make_alarm(api_db, ids.devices[ids.device_in(community)], code="EL.LOG")
        person = api_db.execute(
            "INSERT INTO people (name, role) VALUES ('log', 'duty_staff') RETURNING id"
        ).fetchone()
        assert person is not None
        channel = api_db.execute(
            "INSERT INTO contact_channels (person_id, kind, address) VALUES (%s, 'email', 'x@y.z')"
            " RETURNING id",
            (person[0],),
        ).fetchone()
        assert channel is not None
        outbox = api_db.execute(
            "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity, payload)"
            " VALUES ('alarm_opened', %s, %s, %s, 'P0', '{}') RETURNING id",
            (alarm, wo, ids.communities[community]),
        ).fetchone()
        assert outbox is not None
        delivery = api_db.execute(
            "INSERT INTO deliveries (outbox_id, person_id, channel_id, attempt, status,"
            " http_status, latency_ms) VALUES (%s, %s, %s, 1, 'accepted', 250, 12.5) RETURNING id",
            (outbox[0], person[0], channel[0]),
        ).fetchone()
        assert delivery is not None
        rows[community] = int(delivery[0])
    log = api.as_("firm_f01").get("/v1/deliveries", params={"limit": 500}).json()["items"]
    assert rows["C01"] in [d["id"] for d in log]
    assert rows["C02"] not in [d["id"] for d in log]
    assert {d["community_id"] for d in log} == {ids.communities["C01"]}
    everyone = api.as_("regulator").get("/v1/deliveries", params={"status": "accepted"}).json()
    assert {rows["C01"], rows["C02"]} <= {d["id"] for d in everyone["items"]}
    # A resident's complaint is told to the duty staff too: its deliveries have no alarm.
    complaint = api_db.execute(
        "INSERT INTO work_orders (source, community_id, firm_id, event_code, severity,"
        " responsible_party, supervisor, status, opened_at, resolution_due, emergency_fund,"
        " notify_regulator, list_version) SELECT 'complaint', c.id, c.firm_id, 'CP.NOISE', 'P3',"
        " 'property_firm', 'township', 'occurred', now(), now() + interval '1 day', false, false,"
        " 'test' FROM communities c WHERE c.id = %s RETURNING id",
        (ids.communities["C01"],),
    ).fetchone()
    assert complaint is not None
    told = api_db.execute(
        "INSERT INTO outbox (kind, work_order_id, community_id, severity, payload)"
        " VALUES ('complaint_filed', %s, %s, 'P3', '{}') RETURNING id",
        (complaint[0], ids.communities["C01"]),
    ).fetchone()
    assert told is not None
    sent = api_db.execute(
        "INSERT INTO deliveries (outbox_id, person_id, channel_id, attempt, status,"
        " http_status, latency_ms) VALUES (%s, %s, %s, 1, 'accepted', 250, 3.0) RETURNING id",
        (told[0], person[0], channel[0]),
    ).fetchone()
    assert sent is not None
    r = api.as_("firm_f01").get("/v1/deliveries", params={"limit": 500})
    assert r.status_code == 200, r.text
    [row] = [d for d in r.json()["items"] if d["id"] == sent[0]]
    assert row["alarm_id"] is None and row["work_order_id"] == complaint[0]


def test_channel_addresses_are_checked_when_written(api: Api) -> None:
    """What notify would refuse is refused when written, naming the field and what to fix."""
    f01 = api.as_("firm_f01")
    pid = f01.post("/v1/people", json={"name": "张渠道", "role": "duty_staff"}).json()["id"]
    secret = new_secret()
    hook = "https://hooks.example.org/in"
    for body, field, why in [
        ({"address": "http://hooks.example.org/in"}, "body.address", "https only"),
        ({"address": "https://user:pw@hooks.example.org/in"}, "body.address", "credentials"),
        ({"address": "https://127.0.0.1/in"}, "body.address", "refused: loopback"),
        ({"address": "https://10.0.0.1/in"}, "body.address", "refused: private"),
        ({"address": "https://169.254.169.254/latest"}, "body.address", "refused: link-local"),
        ({"address": "https://[::1]/in"}, "body.address", "refused: loopback"),
        ({"address": "https://[::ffff:127.0.0.1]/in"}, "body.address", "refused: loopback"),
        ({"address": "https://localhost/in"}, "body.address", "refused: loopback"),
        ({"address": hook, "secret": None}, "body.secret", "needs a signing secret"),
        ({"address": hook, "secret": "s3cret"}, "body.secret", "Standard Webhooks secret"),
        ({"address": hook, "secret": "whsec_QUJD"}, "body.secret", "24 to 64"),
        (
            {"kind": "wecom", "address": "https://evil.example/cgi-bin/webhook/send?key=k"},
            "body.address",
            "qyapi.weixin.qq.com",
        ),
        (
            {"kind": "dingtalk", "address": "https://oapi.dingtalk.com/robot/send"},
            "body.address",
            "access_token",
        ),
        ({"kind": "email", "address": "Boss <boss@example.org>"}, "body.address", "spaces"),
        ({"kind": "email", "address": "a,b@example.org"}, "body.address", "plain"),
        ({"kind": "mqtt", "address": f"duty-{pid}"}, "body.kind", "issue-duty-app"),
    ]:
        sent = {"kind": "webhook", "secret": secret, **body}
        r = f01.post(f"/v1/people/{pid}/channels", json=sent)
        assert r.status_code == 422, (sent, r.text)
        [error] = r.json()["error"]["fields"]
        assert error["field"] == field and why in error["message"], (sent, error)
        assert "key=k" not in r.text, "a robot's key is not repeated"
    assert f01.get(f"/v1/people/{pid}").json()["channels"] == [], "nothing was stored"
    ok = f01.post(
        f"/v1/people/{pid}/channels", json={"kind": "webhook", "address": hook, "secret": secret}
    )
    assert ok.status_code == 201, ok.text


def test_robot_and_webhook_addresses_show_in_full_only_to_who_manages_the_person(
    api: Api,
) -> None:
    f01 = api.as_("firm_f01")
    pid = f01.post("/v1/people", json={"name": "孙机器人", "role": "duty_staff"}).json()["id"]
    robot = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=MASKED-KEY-0001"
    hook = "https://hooks.example.org/in/TOKEN-0002"
    assert (
        f01.post(f"/v1/people/{pid}/channels", json={"kind": "wecom", "address": robot}).status_code
        == 201
    )
    added = f01.post(
        f"/v1/people/{pid}/channels",
        json={"kind": "webhook", "address": hook, "secret": new_secret()},
    )
    assert added.status_code == 201 and added.json()["address"] == hook
    assert (
        f01.post(
            f"/v1/people/{pid}/channels", json={"kind": "email", "address": "sun@example.org"}
        ).status_code
        == 201
    )
    full = [c["address"] for c in f01.get(f"/v1/people/{pid}").json()["channels"]]
    assert full == [robot, hook, "sun@example.org"]
    seen = api.as_("township_t01").get(f"/v1/people/{pid}")
    assert seen.status_code == 200, seen.text
    assert [c["address"] for c in seen.json()["channels"]] == [
        "https://qyapi.weixin.qq.com/…",
        "https://hooks.example.org/…",
        "sun@example.org",
    ]
    assert "MASKED-KEY" not in seen.text and "TOKEN-0002" not in seen.text
