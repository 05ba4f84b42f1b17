"""The platform's own alarms and the platform operators' roster through the API: a platform
operator reads and acknowledges them and keeps the roster, the county regulator reads them and
keeps the roster, every other role is refused (403, whatever the id); who is put on shift here
is who notify tells."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from api.tokens import issue
from core.db import Conn, connect
from core.errors import RegistryError
from core.settings import Settings
from core.severity import Severity
from lifecycle.platform import PlatformKind, clear_alarm, raise_alarm
from notify.recipients import platform_on_duty
from tests.api.conftest import TOKENS, Api, Ids
from tests.conftest import settings_env, shouwang

MISSING = 2_147_483_647
REFUSED = sorted(
    k for k, (role, _) in TOKENS.items() if role not in ("platform_operator", "county_regulator")
)


@pytest.fixture(scope="module")
def alarms(api_database: str) -> Iterator[dict[str, int]]:
    """Three platform alarms: the feed silent (active), a detector quarantined (acknowledged by
    someone earlier), a stage restarted (cleared); in this order, so newest first is reversed."""
    with connect(api_database, autocommit=True) as db:
        db.execute("TRUNCATE platform_alarms")
        feed = raise_alarm(db, PlatformKind.FEED_SILENT, severity=Severity.P1)
        quarantined = raise_alarm(
            db, PlatformKind.DETECTOR_QUARANTINED, "C01-B01-EL1", severity=Severity.P3
        )
        db.execute(
            "UPDATE platform_alarms SET state = 'acknowledged', acknowledged_by = 'earlier',"
            " acknowledged_at = now() WHERE id = %s",
            (quarantined.id,),
        )
        restarted = raise_alarm(db, PlatformKind.STAGE_RESTARTED, "ingest", severity=Severity.P2)
        clear_alarm(db, PlatformKind.STAGE_RESTARTED, "ingest", reason="ran_clean")
        yield {"feed": feed.id, "quarantined": quarantined.id, "restarted": restarted.id}
        db.execute("TRUNCATE platform_alarms")


@pytest.mark.parametrize("who", REFUSED)
def test_other_roles_are_refused_whatever_the_id(
    api: Api, alarms: dict[str, int], who: str
) -> None:
    caller = api.as_(who)
    shift = {
        "person_id": 1,
        "starts_at": "2024-05-01T08:00:00+08:00",
        "ends_at": "2024-05-01T20:00:00+08:00",
    }
    for answer in (
        caller.get("/v1/platform/alarms"),
        caller.get(f"/v1/platform/alarms/{alarms['feed']}"),
        caller.get(f"/v1/platform/alarms/{MISSING}"),
        caller.post(f"/v1/platform/alarms/{alarms['feed']}/acknowledge"),
        caller.post(f"/v1/platform/alarms/{MISSING}/acknowledge"),
        caller.get("/v1/platform/shifts"),
        caller.post("/v1/platform/shifts", json=shift),
        caller.delete(f"/v1/platform/shifts/{MISSING}"),
    ):
        assert answer.status_code == 403, (answer.request.url, answer.text)
        assert answer.json()["error"]["code"] == "forbidden"
    assert api.anonymous().get("/v1/platform/alarms").status_code == 401


def test_the_regulator_reads_but_does_not_acknowledge(api: Api, alarms: dict[str, int]) -> None:
    regulator = api.as_("regulator")
    listed = regulator.get("/v1/platform/alarms").json()["items"]
    assert [a["id"] for a in listed] == [alarms["restarted"], alarms["quarantined"], alarms["feed"]]
    one = regulator.get(f"/v1/platform/alarms/{alarms['feed']}")
    assert one.status_code == 200
    assert (one.json()["kind"], one.json()["state"]) == ("feed_silent", "active")
    refused = regulator.post(f"/v1/platform/alarms/{alarms['feed']}/acknowledge")
    assert refused.status_code == 403
    assert "acknowledge platform alarms" in refused.json()["error"]["message"]


def test_a_platform_operator_reads_nothing_of_the_communities(api: Api) -> None:
    operator = api.as_("platform")
    for url in ("/v1/communities", "/v1/devices", "/v1/alarms", "/v1/work-orders", "/v1/shifts"):
        assert operator.get(url).status_code == 403, url
    assert operator.get("/v1/firms").json()["items"] == []


def test_the_list_filters_and_pages(api: Api, alarms: dict[str, int]) -> None:
    operator = api.as_("platform")

    def ids(**params: Any) -> list[int]:
        r = operator.get("/v1/platform/alarms", params=params)
        assert r.status_code == 200, r.text
        return [a["id"] for a in r.json()["items"]]

    assert ids(state="active") == [alarms["feed"]]
    assert ids(state=["active", "acknowledged"]) == [alarms["quarantined"], alarms["feed"]]
    assert ids(open=True) == [alarms["quarantined"], alarms["feed"]]
    assert ids(open=False) == [alarms["restarted"]]
    assert ids(kind="stage_restarted") == [alarms["restarted"]]
    assert ids(kind=["feed_silent", "stage_restarted"], open=True) == [alarms["feed"]]
    first = operator.get("/v1/platform/alarms", params={"limit": 2}).json()
    assert [a["id"] for a in first["items"]] == [alarms["restarted"], alarms["quarantined"]]
    rest = operator.get("/v1/platform/alarms", params={"limit": 2, "cursor": first["next"]}).json()
    assert ([a["id"] for a in rest["items"]], rest["next"]) == ([alarms["feed"]], None)
    cleared = operator.get(f"/v1/platform/alarms/{alarms['restarted']}").json()
    assert (cleared["cleared_reason"], cleared["subject"]) == ("ran_clean", "ingest")

    bad_kind = operator.get("/v1/platform/alarms", params={"kind": "offline"})
    assert bad_kind.status_code == 422
    assert bad_kind.json()["error"]["fields"][0]["field"] == "query.kind[0]"
    assert operator.get("/v1/platform/alarms", params={"state": "open"}).status_code == 422
    assert operator.get("/v1/platform/alarms", params={"cursor": "nope"}).status_code == 400
    assert operator.get(f"/v1/platform/alarms/{MISSING}").status_code == 404
    assert operator.get("/v1/platform/alarms/0").status_code == 422


def test_acknowledging_records_the_token_holder_once(
    api: Api, alarms: dict[str, int], api_db: Conn
) -> None:
    feed = alarms["feed"]
    acked = api.as_("platform").post(f"/v1/platform/alarms/{feed}/acknowledge")
    assert acked.status_code == 200, acked.text
    body = acked.json()
    assert (body["state"], body["acknowledged_by"]) == ("acknowledged", "api test platform")
    first_at = body["acknowledged_at"]
    assert first_at is not None

    again = api.as_("platform_2").post(f"/v1/platform/alarms/{feed}/acknowledge")
    assert again.status_code == 200
    assert (again.json()["acknowledged_by"], again.json()["acknowledged_at"]) == (
        "api test platform",
        first_at,
    ), "the first acknowledgement stands"

    # The fault goes on: the alarm triggers again and stays acknowledged.
    raise_alarm(api_db, PlatformKind.FEED_SILENT, severity=Severity.P1)
    seen = api.as_("regulator").get(f"/v1/platform/alarms/{feed}").json()
    assert (seen["id"], seen["triggers"], seen["state"], seen["acknowledged_by"]) == (
        feed,
        2,
        "acknowledged",
        "api test platform",
    )
    earlier = api.as_("platform").post(f"/v1/platform/alarms/{alarms['quarantined']}/acknowledge")
    assert earlier.json()["acknowledged_by"] == "earlier"

    cleared = api.as_("platform").post(f"/v1/platform/alarms/{alarms['restarted']}/acknowledge")
    assert cleared.status_code == 409
    assert cleared.json()["error"]["code"] == "not_open"
    assert "cleared" in cleared.json()["error"]["message"]
    assert api_db.execute(
        "SELECT state, acknowledged_by FROM platform_alarms WHERE id = %s", (alarms["restarted"],)
    ).fetchone() == ("cleared", None)
    missing = api.as_("platform").post(f"/v1/platform/alarms/{MISSING}/acknowledge")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def _person(api: Api, who: str, **body: Any) -> Any:
    return api.as_(who).post("/v1/people", json={"role": "platform_operator", **body})


def test_platform_operators_are_added_by_the_regulator_and_each_other(api: Api, ids: Ids) -> None:
    it = _person(api, "regulator", name="县信息中心 王工", language="zh")
    assert it.status_code == 201, it.text
    assert (it.json()["firm_id"], it.json()["unit_id"], it.json()["region_id"]) == (None,) * 3
    vendor = _person(api, "platform", name="vendor on-call", language="en")
    assert vendor.status_code == 201, vendor.text
    vid = vendor.json()["id"]
    channel = api.as_("platform").post(
        f"/v1/people/{vid}/channels", json={"kind": "email", "address": "oncall@vendor.example"}
    )
    assert channel.status_code == 201, channel.text
    assert api.as_("regulator").get(f"/v1/people/{vid}").json()["channels"][0]["kind"] == "email"
    removed = api.as_("regulator").delete(f"/v1/people/{vid}/channels/{channel.json()['id']}")
    assert removed.status_code == 204

    # Validation: no firm, unit or region; nobody else adds them; they add nobody else.
    for field, value in (
        ("firm_id", ids.firms["F01"]),
        ("unit_id", ids.units["MU-EL1"]),
        ("region_id", ids.regions["T01"]),
    ):
        refused = _person(api, "regulator", name="x", **{field: value})
        assert refused.status_code == 422
        assert refused.json()["error"]["fields"][0]["field"] == f"body.{field}"
    for who in ("firm_f01", "unit_el1"):
        refused = _person(api, who, name="x")
        assert refused.status_code == 422, who
        assert "county regulator or a platform operator" in refused.json()["error"]["message"]
    for who in ("township_t01", "duty_c01"):
        assert _person(api, who, name="x").status_code == 403, who
    staff = api.as_("platform").post("/v1/people", json={"name": "x", "role": "duty_staff"})
    assert staff.status_code == 422
    assert "platform_operator people only" in staff.json()["error"]["message"]
    turned = api.as_("regulator").patch(f"/v1/people/{vid}", json={"role": "duty_staff"})
    assert turned.status_code == 422
    assert turned.json()["error"]["fields"][0]["field"] == "body.role"

    # Scope: platform operators see and change platform operators only; firms see none of them.
    firm_person = api.as_("firm_f01").post("/v1/people", json={"name": "赵", "role": "duty_staff"})
    fid = firm_person.json()["id"]
    made_operator = api.as_("regulator").patch(
        f"/v1/people/{fid}", json={"role": "platform_operator"}
    )
    assert made_operator.status_code == 422
    operator = api.as_("platform")
    listed = operator.get("/v1/people", params={"limit": 500}).json()["items"]
    assert {p["role"] for p in listed} == {"platform_operator"}
    assert {it.json()["id"], vid} <= {p["id"] for p in listed}
    assert operator.get(f"/v1/people/{fid}").status_code == 404
    assert operator.patch(f"/v1/people/{fid}", json={"name": "y"}).status_code == 404
    assert (
        operator.post(
            f"/v1/people/{fid}/channels", json={"kind": "email", "address": "a@b.c"}
        ).status_code
        == 404
    )
    assert api.as_("firm_f01").get(f"/v1/people/{vid}").status_code == 404
    assert api.as_("firm_f01").patch(f"/v1/people/{vid}", json={"name": "y"}).status_code == 404
    by_role = api.as_("regulator").get("/v1/people", params={"role": "platform_operator"})
    assert vid in [p["id"] for p in by_role.json()["items"]]
    assert fid not in [p["id"] for p in by_role.json()["items"]]
    assert operator.patch(f"/v1/people/{vid}", json={"name": "vendor 24h"}).status_code == 200


def test_the_platform_roster_is_who_notify_tells(api: Api, api_db: Conn) -> None:
    api_db.execute("TRUNCATE platform_shifts")
    day = _person(api, "regulator", name="白班 IT").json()
    night = _person(api, "platform", name="night on-call").json()
    for who in (day, night):
        r = api.as_("platform").post(
            f"/v1/people/{who['id']}/channels",
            json={
                "kind": "webhook",
                "address": "https://oncall.vendor.example/hook",
                "secret": "whsec_c2hvdXdhbmcgdGVzdCB3ZWJob29rIHNlY3JldCAzMkI=",
            },
        )
        assert r.status_code == 201
    rows = [
        ("regulator", day["id"], "2024-05-01T08:00:00+08:00", "2024-05-01T20:30:00+08:00"),
        ("platform", night["id"], "2024-05-01T20:00:00+08:00", "2024-05-02T08:30:00+08:00"),
    ]
    made = []
    for who, person, start, end in rows:
        r = api.as_(who).post(
            "/v1/platform/shifts", json={"person_id": person, "starts_at": start, "ends_at": end}
        )
        assert r.status_code == 201, r.text
        assert r.json()["person_name"] == (day if person == day["id"] else night)["name"]
        made.append(r.json()["id"])

    handover = datetime(2024, 5, 1, 12, 15, tzinfo=UTC)  # 20:15 in Shanghai
    assert [r.person_id for r in platform_on_duty(api_db, handover)] == sorted(
        [day["id"], night["id"]]
    )
    listed = api.as_("regulator").get(
        "/v1/platform/shifts", params={"at": "2024-05-01T20:15:00+08:00"}
    )
    assert [s["id"] for s in listed.json()["items"]] == made
    only_night = api.as_("platform").get(
        "/v1/platform/shifts", params={"at": "2024-05-02T03:00:00+08:00"}
    )
    assert [s["person_id"] for s in only_night.json()["items"]] == [night["id"]]
    assert (
        api.as_("platform")
        .get("/v1/platform/shifts", params={"ends_after": "2024-05-02T08:00:00+08:00"})
        .json()["items"][0]["id"]
        == made[1]
    )
    assert (
        api.as_("platform").get(f"/v1/platform/shifts/{made[0]}").json()["person_id"] == day["id"]
    )

    gone = api.as_("platform").delete(f"/v1/platform/shifts/{made[0]}")
    assert gone.status_code == 204
    assert [r.person_id for r in platform_on_duty(api_db, handover)] == [night["id"]]
    assert api.as_("regulator").delete(f"/v1/platform/shifts/{made[0]}").status_code == 404
    assert api.as_("regulator").get(f"/v1/platform/shifts/{made[0]}").status_code == 404
    assert api.as_("platform").get("/v1/platform/shifts", params={"at": "now"}).status_code == 422
    naive = api.as_("platform").get("/v1/platform/shifts", params={"at": "2024-05-01T20:15:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["fields"][0]["field"] == "query.at"


def test_a_shift_is_refused_what_it_must_be(api: Api, ids: Ids) -> None:
    operator = _person(api, "regulator", name="checks").json()
    inactive = _person(api, "regulator", name="left").json()
    api.as_("regulator").patch(f"/v1/people/{inactive['id']}", json={"active": False})
    staff = api.as_("firm_f01").post("/v1/people", json={"name": "钱", "role": "duty_staff"})
    good = {"starts_at": "2024-06-01T08:00:00+08:00", "ends_at": "2024-06-01T20:00:00+08:00"}

    def post(**body: Any) -> Any:
        return api.as_("platform").post("/v1/platform/shifts", json={**good, **body})

    for person in (staff.json()["id"], inactive["id"], MISSING):
        r = post(person_id=person)
        assert r.status_code == 422, person
        assert r.json()["error"]["fields"][0]["field"] == "body.person_id"
        assert "active platform_operator" in r.json()["error"]["message"]
    backwards = post(person_id=operator["id"], ends_at="2024-06-01T07:00:00+08:00")
    assert backwards.status_code == 422
    assert "ends_at must be after starts_at" in backwards.text
    naive = post(person_id=operator["id"], starts_at="2024-06-01T08:00:00")
    assert naive.status_code == 422
    assert "time zone" in naive.text
    assert post(person_id=0).status_code == 422
    assert post(person_id=operator["id"]).status_code == 201


def test_a_platform_operator_token_takes_no_scope(api_db: Conn) -> None:
    with pytest.raises(RegistryError, match=r"takes no scope.*leave out --firm"):
        issue(api_db, "platform_operator", "bad", {"firm": "F01"})
    with pytest.raises(psycopg.errors.CheckViolation):
        api_db.execute(
            "INSERT INTO api_tokens (token_hash, role, name, firm_id)"
            " SELECT %s, 'platform_operator', 'x', id FROM firms LIMIT 1",
            (b"\x01" * 32,),
        )


def test_the_token_command_issues_a_platform_operator_token(
    api: Api, api_settings: Settings
) -> None:
    env = settings_env(api_settings)
    argv = ("api", "token", "issue", "--role", "platform_operator", "--name", "vendor on-call")
    out = subprocess.run(
        shouwang(*argv), env=env, capture_output=True, text=True, timeout=60, check=True
    )
    token = out.stdout.strip()
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.request("GET", "/v1/platform/alarms", headers=headers).status_code == 200
    assert api.client.request("GET", "/v1/communities", headers=headers).status_code == 403
    listed = subprocess.run(
        shouwang("api", "token", "list"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "\tplatform_operator\tplatform\tvendor on-call\t" in listed
    refused = subprocess.run(
        shouwang(*argv, "--region", "T01"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "takes no scope" in refused.stderr
