"""Scoping, per role, on the real database: every list holds only the caller's scope, and an id
from another scope is not found (404, the same answer as for an id that does not exist), for
reads and for changes alike; a role without the right gets 403 whatever the id."""

from __future__ import annotations

from typing import Any

import pytest

from core.db import Conn
from tests.api.conftest import Api, Ids, make_alarm

MISSING = 2_147_483_647  # an id no table holds


@pytest.fixture(scope="module")
def world(api: Api, ids: Ids, api_database: str) -> dict[str, Any]:
    """An open alarm with a work order on a lift of each community (C01's for MU-EL1, C02's for
    MU-EL2), plus an alarm without a work order in C02."""
    from core.db import connect

    with connect(api_database, autocommit=True) as db:
        a1, w1 = make_alarm(db, ids.devices[ids.device_in("C01")], code="EL.SCOPE")
        a2, w2 = make_alarm(db, ids.devices[ids.device_in("C02")], code="EL.SCOPE")
        a3, _ = make_alarm(
            db, ids.devices[ids.device_in("C02", n=1)], code="EL.NOWO", work_order=False
        )
    return {"alarm": {"C01": a1, "C02": a2}, "wo": {"C01": w1, "C02": w2}, "bare_alarm": a3}


SEES = {
    "regulator": {"C01", "C02"},
    "township_t01": {"C01"},
    "township_t02": {"C02"},
    "firm_f01": {"C01"},
    "firm_f02": {"C02"},
    "duty_c01": {"C01"},
    "duty_c02": {"C02"},
    "duty_f01": {"C01"},
}
OTHER = {"C01": "C02", "C02": "C01"}


def codes_of(api: Api, who: str, ids: Ids, url: str, key: str = "community_id") -> set[str]:
    by_id = {v: k for k, v in ids.communities.items()}
    items = api.as_(who).get(url, params={"limit": 500}).json()["items"]
    return {by_id.get(i[key], f"other:{i[key]}") for i in items} & {"C01", "C02"}


@pytest.mark.parametrize("who", sorted(SEES))
def test_lists_hold_only_the_callers_scope(
    api: Api, ids: Ids, world: dict[str, Any], who: str
) -> None:
    expected = SEES[who]
    assert codes_of(api, who, ids, "/v1/communities", key="id") == expected
    assert codes_of(api, who, ids, "/v1/devices") == expected
    assert codes_of(api, who, ids, "/v1/buildings") == expected
    assert codes_of(api, who, ids, "/v1/alarms") == expected
    assert codes_of(api, who, ids, "/v1/work-orders") == expected
    assert codes_of(api, who, ids, "/v1/telemetry/latest") == expected


def test_a_maintenance_unit_sees_only_the_work_orders_assigned_to_it(
    api: Api, ids: Ids, world: dict[str, Any]
) -> None:
    items = api.as_("unit_el1").get("/v1/work-orders", params={"limit": 500}).json()["items"]
    assert world["wo"]["C01"] in {i["id"] for i in items}
    assert {i["maintenance_unit_id"] for i in items} == {ids.units["MU-EL1"]}
    assert api.as_("unit_el1").get(f"/v1/work-orders/{world['wo']['C02']}").status_code == 404
    for url in ("/v1/communities", "/v1/devices", "/v1/alarms", "/v1/deliveries"):
        assert api.as_("unit_el1").get(url).json()["error"]["code"] == "forbidden"


def _reads(ids: Ids, world: dict[str, Any], community: str) -> list[str]:
    uid = ids.device_in(community)
    return [
        f"/v1/communities/{ids.communities[community]}",
        f"/v1/devices/{uid}",
        f"/v1/devices/{uid}/latest",
        f"/v1/devices/{uid}/readings?metric=speed",
        f"/v1/devices/{uid}/credentials",
        f"/v1/alarms/{world['alarm'][community]}",
        f"/v1/work-orders/{world['wo'][community]}",
        f"/v1/work-orders/{world['wo'][community]}/comments",
        f"/v1/communities/{ids.communities[community]}/on-duty",
    ]


@pytest.mark.parametrize("who", sorted(SEES.keys() - {"regulator"}))
def test_reading_another_scopes_ids_is_not_found(
    api: Api, ids: Ids, world: dict[str, Any], who: str
) -> None:
    (mine,) = SEES[who]
    client = api.as_(who)
    for url in _reads(ids, world, mine):
        assert client.get(url).status_code == 200, url
    for url in _reads(ids, world, OTHER[mine]):
        r = client.get(url)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "not_found"
    # The answer says nothing about existence: the same as for an id nobody has.
    foreign = client.get(f"/v1/alarms/{world['alarm'][OTHER[mine]]}").json()
    missing = client.get(f"/v1/alarms/{MISSING}").json()
    assert foreign == missing


def test_changing_another_scopes_records_is_not_found_and_changes_nothing(
    api: Api, ids: Ids, world: dict[str, Any], api_db: Conn
) -> None:
    c02_uid = ids.device_in("C02")
    c02_building = (
        api.as_("regulator")
        .get("/v1/buildings", params={"community_id": ids.communities["C02"]})
        .json()["items"][0]["id"]
    )
    attempts = [
        ("firm_f01", "PATCH", f"/v1/devices/{c02_uid}", {"location": "moved"}),
        ("firm_f01", "DELETE", f"/v1/devices/{c02_uid}", None),
        ("firm_f01", "POST", f"/v1/devices/{c02_uid}/credentials", None),
        ("firm_f01", "DELETE", f"/v1/devices/{c02_uid}/credentials", None),
        ("firm_f01", "PATCH", f"/v1/buildings/{c02_building}", {"name": "x"}),
        ("firm_f01", "DELETE", f"/v1/buildings/{c02_building}", None),
        ("township_t01", "PATCH", f"/v1/communities/{ids.communities['C02']}", {"name_zh": "x"}),
        ("township_t01", "DELETE", f"/v1/communities/{ids.communities['C02']}", None),
        ("duty_c01", "POST", f"/v1/alarms/{world['alarm']['C02']}/acknowledge", None),
        ("duty_c01", "POST", f"/v1/alarms/{world['alarm']['C02']}/clear", {"reason": "resolved"}),
        (
            "firm_f01",
            "POST",
            f"/v1/work-orders/{world['wo']['C02']}/transitions",
            {"to": "on_site"},
        ),
        (
            "firm_f01",
            "POST",
            f"/v1/work-orders/{world['wo']['C02']}/assign",
            {"maintenance_unit_id": ids.units["MU-EL1"]},
        ),
        ("firm_f01", "POST", f"/v1/work-orders/{world['wo']['C02']}/comments", {"body": "hi"}),
        (
            "unit_el1",
            "POST",
            f"/v1/work-orders/{world['wo']['C02']}/transitions",
            {"to": "on_site"},
        ),
        ("unit_el1", "POST", f"/v1/work-orders/{world['wo']['C02']}/comments", {"body": "hi"}),
    ]
    before = api_db.execute(
        "SELECT (SELECT row(d.*)::text FROM devices d WHERE uid = %s),"
        " (SELECT row(a.*)::text FROM alarms a WHERE id = %s),"
        " (SELECT row(w.*)::text FROM work_orders w WHERE id = %s),"
        " (SELECT count(*) FROM work_order_comments WHERE work_order_id = %s)",
        (c02_uid, world["alarm"]["C02"], world["wo"]["C02"], world["wo"]["C02"]),
    ).fetchone()
    for who, method, url, body in attempts:
        r = api.as_(who).request(method, url, json=body)
        assert r.status_code == 404, (who, method, url, r.text)
    after = api_db.execute(
        "SELECT (SELECT row(d.*)::text FROM devices d WHERE uid = %s),"
        " (SELECT row(a.*)::text FROM alarms a WHERE id = %s),"
        " (SELECT row(w.*)::text FROM work_orders w WHERE id = %s),"
        " (SELECT count(*) FROM work_order_comments WHERE work_order_id = %s)",
        (c02_uid, world["alarm"]["C02"], world["wo"]["C02"], world["wo"]["C02"]),
    ).fetchone()
    assert after == before


def test_references_to_another_scope_in_a_body_are_refused_as_unknown(api: Api, ids: Ids) -> None:
    c02 = ids.communities["C02"]
    cases = [
        ("/v1/buildings", {"community_id": c02, "code": "X1", "name": "x", "floors": 3}),
        ("/v1/devices", {"uid": "API-SCOPE-1", "device_class": "elevator", "community_id": c02}),
    ]
    for url, body in cases:
        r = api.as_("firm_f01").post(url, json=body)
        assert r.status_code == 422
        assert r.json()["error"]["fields"] == [
            {"field": "body.community_id", "message": "no such community in your scope"}
        ]


@pytest.mark.parametrize(
    ("who", "method", "url", "body"),
    [
        ("duty_c01", "PATCH", "/v1/devices/{uid}", {"location": "x"}),
        ("duty_c01", "POST", "/v1/communities", {"code": "X", "region_id": 2, "name_zh": "x"}),
        ("township_t01", "POST", "/v1/alarms/{alarm}/acknowledge", None),
        ("regulator", "POST", "/v1/alarms/{alarm}/acknowledge", None),
        ("firm_f01", "POST", "/v1/responsibility-list", {"content": "version: x"}),
        ("unit_el1", "GET", "/v1/communities", None),
        ("unit_el1", "POST", "/v1/work-orders/{wo}/assign", {"maintenance_unit_id": 1}),
        ("firm_f01", "POST", "/v1/firms", {"code": "X", "name_zh": "x"}),
        (
            "township_t01",
            "POST",
            "/v1/shifts",
            {
                "community_id": 1,
                "role": "duty_staff",
                "person_id": 1,
                "starts_at": "2024-05-01T08:00:00+08:00",
                "ends_at": "2024-05-01T20:00:00+08:00",
            },
        ),
    ],
)
def test_a_role_without_the_right_is_forbidden_whatever_the_id(
    api: Api, ids: Ids, world: dict[str, Any], who: str, method: str, url: str, body: Any
) -> None:
    for fill in (
        {"uid": ids.device_in("C01"), "alarm": world["alarm"]["C01"], "wo": world["wo"]["C01"]},
        {"uid": "no-such-device", "alarm": MISSING, "wo": MISSING},
    ):
        r = api.as_(who).request(method, url.format(**fill), json=body)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"


def test_a_township_sees_the_communities_of_its_sub_regions(api: Api, ids: Ids) -> None:
    reg = api.as_("regulator")
    centre = reg.post(
        "/v1/regions",
        json={
            "code": "API-T01-SC",
            "kind": "community_centre",
            "parent_id": ids.regions["T01"],
            "name_zh": "东城社区服务中心",
        },
    )
    assert centre.status_code == 201, centre.text
    community = reg.post(
        "/v1/communities",
        json={"code": "API-C-SUB", "region_id": centre.json()["id"], "name_zh": "子区小区"},
    )
    assert community.status_code == 201, community.text
    cid = community.json()["id"]
    assert api.as_("township_t01").get(f"/v1/communities/{cid}").status_code == 200
    assert api.as_("township_t02").get(f"/v1/communities/{cid}").status_code == 404
    regions = api.as_("township_t01").get("/v1/regions").json()["items"]
    assert {r["code"] for r in regions} == {"T01", "API-T01-SC"}
