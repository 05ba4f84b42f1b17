"""Work orders through the API: the lifecycle (analytics.store.transition), assignment to a
maintenance unit (who then sees it), comments, and each limit's status with the breaches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.db import Conn
from tests.api.conftest import Api, Ids, make_alarm


def test_a_unit_works_its_order_through_the_lifecycle(api: Api, ids: Ids, api_db: Conn) -> None:
    _, wo = make_alarm(api_db, ids.devices[ids.device_in("C01")], code="EL.LIFE")
    unit = api.as_("unit_el1")
    on_site = unit.post(f"/v1/work-orders/{wo}/transitions", json={"to": "on_site", "note": "到场"})
    assert on_site.status_code == 200, on_site.text
    body = on_site.json()
    assert body["status"] == "on_site"
    assert body["responded_at"] == body["on_site_at"]  # the skipped step is stamped too
    assert [t["to_status"] for t in body["transitions"]] == ["occurred", "on_site"]
    assert body["transitions"][-1]["actor"].startswith("api test unit_el1")
    back = unit.post(f"/v1/work-orders/{wo}/transitions", json={"to": "responded"})
    assert back.status_code == 409
    assert back.json()["error"]["code"] == "invalid_transition"
    assert "on_site" in back.json()["error"]["message"]
    done = unit.post(f"/v1/work-orders/{wo}/transitions", json={"to": "completed"})
    assert (done.json()["status"], done.json()["closed_reason"]) == ("completed", "completed")
    assert (
        unit.post(f"/v1/work-orders/{wo}/transitions", json={"to": "completed"}).status_code == 409
    )


def test_assigning_a_unit_hands_it_the_order_and_leaves_a_comment(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    _, wo = make_alarm(api_db, ids.devices[ids.device_in("C01", n=1)], code="EL.ASSIGN")
    assert api.as_("unit_el2").get(f"/v1/work-orders/{wo}").status_code == 404
    r = api.as_("duty_c01").post(
        f"/v1/work-orders/{wo}/assign",
        json={"maintenance_unit_id": ids.units["MU-EL2"], "note": "EL1 busy"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["maintenance_unit_id"] == ids.units["MU-EL2"]
    assert api.as_("unit_el2").get(f"/v1/work-orders/{wo}").status_code == 200
    assert api.as_("unit_el1").get(f"/v1/work-orders/{wo}").status_code == 404
    unknown = api.as_("duty_c01").post(
        f"/v1/work-orders/{wo}/assign", json={"maintenance_unit_id": 999_999}
    )
    assert unknown.status_code == 422
    said = api.as_("unit_el2").post(f"/v1/work-orders/{wo}/comments", json={"body": "on our way"})
    assert said.status_code == 201
    comments = api.as_("firm_f01").get(f"/v1/work-orders/{wo}/comments").json()["items"]
    assert [c["body"] for c in comments] == ["assigned to MU-EL2: EL1 busy", "on our way"]
    assert comments[1]["author"].startswith("api test unit_el2")
    mine = api.as_("unit_el2").get(
        "/v1/work-orders", params={"maintenance_unit_id": ids.units["MU-EL2"]}
    )
    assert wo in [w["id"] for w in mine.json()["items"]]


def test_each_limit_has_its_status_and_breaches_are_listed(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    opened = datetime.now(UTC) - timedelta(hours=1)
    _, wo = make_alarm(api_db, ids.devices[ids.device_in("C02", n=3)], code="EL.SLA", opened=opened)
    api_db.execute(
        "UPDATE work_orders SET responded_at = %s, resolution_due = now() + interval '3 hours'"
        " WHERE id = %s",
        (opened + timedelta(minutes=2), wo),
    )
    api_db.execute(
        "INSERT INTO work_order_breaches (work_order_id, limit_kind, due, recorded_at)"
        " SELECT id, 'arrival', arrival_due, now() FROM work_orders WHERE id = %s",
        (wo,),
    )
    body = api.as_("firm_f02").get(f"/v1/work-orders/{wo}").json()
    status = {s["kind"]: s["outcome"] for s in body["sla"]}
    assert status == {"response": "met", "arrival": "missed", "resolution": "pending"}
    assert [b["limit_kind"] for b in body["breaches"]] == ["arrival"]
    breached = api.as_("firm_f02").get("/v1/work-orders", params={"breached": True, "open": True})
    assert wo in [w["id"] for w in breached.json()["items"]]
    fine = api.as_("firm_f02").get("/v1/work-orders", params={"breached": False})
    assert wo not in [w["id"] for w in fine.json()["items"]]
