"""The registry through the API: create, read, change and delete regions, firms, maintenance
units, communities, buildings and devices within the schema's constraints; pagination."""

from __future__ import annotations

from core.db import Conn
from tests.api.conftest import Api, Ids


def test_a_community_with_a_building_and_a_device_from_nothing_to_gone(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    reg = api.as_("regulator")
    firm = reg.post("/v1/firms", json={"code": "API-F9", "name_zh": "九号物业"})
    assert firm.status_code == 201, firm.text
    community = reg.post(
        "/v1/communities",
        json={
            "code": "API-C9",
            "region_id": ids.regions["T01"],
            "firm_id": firm.json()["id"],
            "name_zh": "九号小区",
            "address": "九号路",
        },
    ).json()
    building = reg.post(
        "/v1/buildings",
        json={"community_id": community["id"], "code": "B01", "name": "1号楼", "floors": 18},
    )
    assert building.status_code == 201, building.text
    device = reg.post(
        "/v1/devices",
        json={
            "uid": "API-C9-B01-EL1",
            "device_class": "elevator",
            "community_id": community["id"],
            "building_id": building.json()["id"],
            "maintenance_unit_id": ids.units["MU-EL1"],
            "install_date": "2022-03-01",
            "attributes": {"rated_speed": 1.75},
        },
    )
    assert device.status_code == 201, device.text
    assert device.json()["attributes"] == {"rated_speed": 1.75}
    assert device.json()["active"] is True

    # Constraints answer in the error body, naming what is wrong.
    dup = reg.post("/v1/buildings", json={**building.json(), "id": None})
    assert dup.status_code == 409
    assert dup.json()["error"]["code"] == "conflict"
    in_use = reg.delete(f"/v1/buildings/{building.json()['id']}")
    assert in_use.status_code == 409
    assert "devices" in in_use.json()["error"]["message"]
    too_tall = reg.patch(f"/v1/buildings/{building.json()['id']}", json={"floors": 201})
    assert too_tall.status_code == 422
    assert too_tall.json()["error"]["fields"][0]["field"] == "body.floors"
    foreign_building = reg.patch(
        "/v1/devices/API-C9-B01-EL1", json={"building_id": _some_building(api, ids, "C02")}
    )
    assert foreign_building.status_code == 422
    assert foreign_building.json()["error"]["fields"][0]["field"] == "body.building_id"

    # The firm admin of the new firm now sees it, and changes the device's location.
    moved = reg.patch("/v1/devices/API-C9-B01-EL1", json={"location": "2号电梯井"})
    assert moved.json()["location"] == "2号电梯井"
    assert reg.delete("/v1/devices/API-C9-B01-EL1").status_code == 204
    assert reg.get("/v1/devices/API-C9-B01-EL1").json()["active"] is False
    # A decommissioned device keeps its record (and history): the community stays referenced.
    assert reg.delete(f"/v1/communities/{community['id']}").status_code == 409
    api_db.execute("DELETE FROM devices WHERE uid = 'API-C9-B01-EL1'")
    assert reg.delete(f"/v1/buildings/{building.json()['id']}").status_code == 204
    assert reg.delete(f"/v1/communities/{community['id']}").status_code == 204
    assert reg.get(f"/v1/communities/{community['id']}").status_code == 404
    assert reg.delete(f"/v1/firms/{firm.json()['id']}").status_code == 204


def _some_building(api: Api, ids: Ids, community: str) -> int:
    items = api.as_("regulator").get(
        "/v1/buildings", params={"community_id": ids.communities[community]}
    )
    return int(items.json()["items"][0]["id"])


def test_a_firm_admin_changes_its_own_firm_and_its_devices_only(api: Api, ids: Ids) -> None:
    f01 = api.as_("firm_f01")
    own = f01.patch(f"/v1/firms/{ids.firms['F01']}", json={"complaint_phone": "0359-1234567"})
    assert own.status_code == 200
    assert own.json()["complaint_phone"] == "0359-1234567"
    assert f01.patch(f"/v1/firms/{ids.firms['F02']}", json={"name_en": "x"}).status_code == 404
    assert f01.patch(f"/v1/firms/{ids.firms['F01']}", json={"code": "X"}).status_code == 403
    assert f01.get(f"/v1/firms/{ids.firms['F02']}").status_code == 404
    assert [f["code"] for f in f01.get("/v1/firms").json()["items"]] == ["F01"]


def test_maintenance_units_are_public_and_a_unit_edits_its_own_phone(api: Api, ids: Ids) -> None:
    listed = api.as_("duty_c01").get("/v1/maintenance-units", params={"kind": "elevator"})
    assert {u["code"] for u in listed.json()["items"]} >= {"MU-EL1", "MU-EL2", "MU-EL3"}
    mine = api.as_("unit_el1").patch(
        f"/v1/maintenance-units/{ids.units['MU-EL1']}", json={"phone": "0359-6110009"}
    )
    assert mine.json()["phone"] == "0359-6110009"
    other = api.as_("unit_el1").patch(
        f"/v1/maintenance-units/{ids.units['MU-EL2']}", json={"phone": "1"}
    )
    assert other.status_code == 404


def test_lists_page_with_an_opaque_cursor_until_next_is_null(api: Api) -> None:
    reg = api.as_("regulator")
    seen: list[str] = []
    url, params = "/v1/devices", {"limit": 7}
    pages = 0
    while True:
        body = reg.get(url, params=params).json()
        seen += [d["uid"] for d in body["items"]]
        pages += 1
        if body["next"] is None:
            break
        params = {"limit": 7, "cursor": body["next"]}
    everything = reg.get(url, params={"limit": 500}).json()["items"]
    assert seen == [d["uid"] for d in everything]
    assert pages == -(-len(everything) // 7)  # ceil: no empty last page
    bad = reg.get(url, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == [
        {"field": "query.cursor", "message": "not a cursor from this list"}
    ]
    assert reg.get(url, params={"limit": 501}).status_code == 422


def test_every_error_has_the_same_body(api: Api) -> None:
    reg = api.as_("regulator")
    answers = [
        api.anonymous().get("/v1/devices"),
        reg.get("/v1/no-such-thing"),
        reg.get("/v1/devices/no-such-device"),
        reg.post("/v1/devices", json={"uid": "bad uid!", "device_class": "toaster"}),
        reg.post("/v1/devices", content=b"{not json", headers={"Content-Type": "application/json"}),
        reg.delete("/v1/devices"),
    ]
    assert [a.status_code for a in answers] == [401, 404, 404, 422, 422, 405]
    for a in answers:
        error = a.json()["error"]
        assert set(error) == {"code", "message", "fields"}
        assert error["message"]
    fields = {f["field"] for f in answers[3].json()["error"]["fields"]}
    assert fields == {"body.uid", "body.device_class", "body.community_id"}
