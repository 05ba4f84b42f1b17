"""Alarms through the API: filters, acknowledgement (the work order becomes responded and its
escalation stops), clearing by hand (the work order closes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.db import Conn
from tests.api.conftest import Api, Ids, make_alarm


def test_filters_by_state_severity_device_community_and_time(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    uid = ids.device_in("C01", "fire_water")
    long_ago = datetime(2023, 6, 1, tzinfo=UTC)
    old, _ = make_alarm(api_db, ids.devices[uid], code="FW.OLD", severity="P2", opened=long_ago)
    new, _ = make_alarm(api_db, ids.devices[uid], code="FW.NEW", severity="P1")
    duty = api.as_("duty_c01")

    def found(**params: object) -> list[int]:
        return [a["id"] for a in duty.get("/v1/alarms", params=params).json()["items"]]

    assert found(device=uid) == [new, old]  # newest first
    assert found(device=uid, severity="P2") == [old]
    assert found(device=uid, severity=["P1", "P2"]) == [new, old]
    assert found(device=uid, opened_until="2024-01-01T00:00:00+08:00") == [old]
    assert found(device=uid, opened_from=(long_ago + timedelta(days=1)).isoformat()) == [new]
    assert found(device=uid, state="cleared") == []
    assert found(community_id=ids.communities["C02"]) == []  # not this caller's
    naive = duty.get("/v1/alarms", params={"opened_from": "2024-01-01T00:00:00"})
    assert naive.status_code == 422
    assert naive.json()["error"]["fields"][0]["field"] == "query.opened_from"


def test_acknowledging_moves_the_work_order_to_responded_and_stops_escalation(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    alarm, wo = make_alarm(api_db, ids.devices[ids.device_in("C01", n=1)], code="EL.ACK")
    api_db.execute(
        "INSERT INTO escalation_steps (work_order_id, step, notify, due_at)"
        " VALUES (%s, 1, 'project_manager', now() + interval '10 minutes')",
        (wo,),
    )
    r = api.as_("duty_c01").post(f"/v1/alarms/{alarm}/acknowledge")
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    assert r.json()["acknowledged_by"].startswith("api test duty_c01 (duty_staff")
    detail = api.as_("duty_c01").get(f"/v1/work-orders/{wo}").json()
    assert detail["status"] == "responded"
    assert detail["transitions"][-1]["note"] == "acknowledged"
    cancelled = api_db.execute(
        "SELECT cancelled_at IS NOT NULL FROM escalation_steps WHERE work_order_id = %s", (wo,)
    ).fetchone()
    assert cancelled == (True,)
    # Again: nothing changes, no error.
    again = api.as_("firm_f01").post(f"/v1/alarms/{alarm}/acknowledge")
    assert again.status_code == 200
    assert again.json()["acknowledged_by"] == r.json()["acknowledged_by"]


def test_clearing_by_hand_closes_the_work_order(api: Api, ids: Ids, api_db: Conn) -> None:
    alarm, wo = make_alarm(api_db, ids.devices[ids.device_in("C02", n=2)], code="EL.CLR")
    api_db.execute(  # the opening notice analytics wrote
        "INSERT INTO outbox (kind, alarm_id, work_order_id, community_id, severity,"
        " responsible_party, payload) SELECT 'alarm_opened', a.id, %s, d.community_id, 'P0',"
        " 'firm_duty_room', jsonb_build_object('kind', 'alarm_opened', 'code', 'EL.CLR')"
        " FROM alarms a JOIN devices d ON d.id = a.device_id WHERE a.id = %s",
        (wo, alarm),
    )
    r = api.as_("duty_c02").post(
        f"/v1/alarms/{alarm}/clear", json={"reason": "false_alarm", "note": "test button"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cleared"
    assert r.json()["cleared_reason"] == "manual: false_alarm: test button"
    notice = api_db.execute(
        "SELECT payload->>'kind', payload->>'code', payload->>'cleared_reason' FROM outbox"
        " WHERE alarm_id = %s AND kind = 'alarm_cleared'",
        (alarm,),
    ).fetchall()
    assert notice == [("alarm_cleared", "EL.CLR", "manual: false_alarm: test button")]
    detail = api.as_("duty_c02").get(f"/v1/work-orders/{wo}").json()
    assert (detail["status"], detail["closed_reason"]) == ("false_alarm", "false_alarm")
    twice = api.as_("duty_c02").post(f"/v1/alarms/{alarm}/clear", json={"reason": "resolved"})
    assert twice.status_code == 409
    ack = api.as_("duty_c02").post(f"/v1/alarms/{alarm}/acknowledge")
    assert ack.status_code == 409
    assert ack.json()["error"]["code"] == "not_open"
