"""Maintenance windows through the API: open, close early, list; bounds answered with 422 naming
the field; another firm's or unit's devices not found (404); alarms flagged; the firm-performance
report leaving out exactly the work orders whose alarm opened in a window; the audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.tokens import issue
from core.db import Conn, connect
from core.workcalendar import SHANGHAI
from lifecycle.maintenance import Window, covers
from lifecycle.maintenance_windows import maintenance_spans
from tests.api import report_data as make
from tests.api.conftest import Api, Ids, make_alarm

URL = "/v1/maintenance-windows"


@pytest.fixture(autouse=True)
def windows_removed(api_db: Conn) -> Iterator[None]:
    """Each test's windows are removed afterwards: one left behind would take other tests'
    alarms on the API's database out of the performance figures."""
    yield
    api_db.execute("TRUNCATE maintenance_windows CASCADE")


def body(ids: Ids, *uids: str, **more: Any) -> dict[str, Any]:
    return {
        "kind": "service",
        "device_ids": [ids.devices[u] for u in uids],
        "performer": "MU-EL1 crew",
        "work_done": "half-monthly service",
        **more,
    }


def test_a_firm_opens_a_window_and_its_alarms_are_flagged(api: Api, ids: Ids, api_db: Conn) -> None:
    lift, other = ids.device_in("C01", n=0), ids.device_in("C01", n=1)
    r = api.as_("firm_f01").post(URL, json=body(ids, lift, ends_at=None))
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["active"] and w["device_ids"] == [ids.devices[lift]]
    assert w["community_id"] == ids.communities["C01"] and w["closed_at"] is None
    start = datetime.fromisoformat(w["starts_at"])
    assert datetime.fromisoformat(w["ends_at"]) - start == timedelta(hours=8)  # the default
    inside, _ = make_alarm(api_db, ids.devices[lift], opened=start + timedelta(seconds=1))
    outside, _ = make_alarm(api_db, ids.devices[other], opened=start + timedelta(seconds=1))
    before, _ = make_alarm(
        api_db, ids.devices[lift], code="EL.DOOR_FAULT", opened=start - timedelta(minutes=1)
    )
    flags = {
        a: api.as_("firm_f01").get(f"/v1/alarms/{a}").json()["in_maintenance"]
        for a in (inside, outside, before)
    }
    assert flags == {inside: True, outside: False, before: False}
    listed = api.as_("firm_f01").get("/v1/alarms", params={"community_id": ids.communities["C01"]})
    assert {a["id"]: a["in_maintenance"] for a in listed.json()["items"]}[inside] is True
    # Listed for the firm and the unit maintaining the lift, not for the other firm.
    assert w["id"] in [x["id"] for x in api.as_("firm_f01").get(URL).json()["items"]]
    assert w["id"] in [x["id"] for x in api.as_("unit_el1").get(URL).json()["items"]]
    assert w["id"] not in [x["id"] for x in api.as_("firm_f02").get(URL).json()["items"]]
    assert api.as_("firm_f02").get(f"{URL}/{w['id']}").status_code == 404
    # Closing early: it ends now; it is over, so closing again is refused.
    r = api.as_("firm_f01").post(f"{URL}/{w['id']}/close", json={"work_done": "ropes checked"})
    assert r.status_code == 200, r.text
    closed = r.json()
    assert not closed["active"] and closed["closed_at"] and closed["work_done"] == "ropes checked"
    assert datetime.fromisoformat(closed["ends_at"]) <= datetime.now(UTC)
    later, _ = make_alarm(api_db, ids.devices[lift], code="EL.OVERSPEED")
    assert api.as_("firm_f01").get(f"/v1/alarms/{later}").json()["in_maintenance"] is False
    r = api.as_("firm_f01").post(f"{URL}/{w['id']}/close")
    assert r.status_code == 422 and "already ended" in r.text


def test_other_firms_and_units_cannot_open_windows_for_devices_they_do_not_manage(
    api: Api, ids: Ids
) -> None:
    c01_lift = ids.device_in("C01")
    for who in ("firm_f02", "unit_el2"):
        r = api.as_(who).post(URL, json=body(ids, c01_lift))
        assert r.status_code == 404, (who, r.text)
    # A unit may for the lifts it maintains; the window names it.
    r = api.as_("unit_el1").post(URL, json=body(ids, c01_lift, kind="repair"))
    assert r.status_code == 201, r.text
    assert r.json()["maintenance_unit_id"] == ids.units["MU-EL1"]
    # Duty staff do not open windows.
    assert api.as_("duty_c01").post(URL, json=body(ids, c01_lift)).status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"ends_in_h": 8.5}, "body.ends_at"),
        ({"kind": "repair", "ends_in_h": 73}, "body.ends_at"),
        ({"starts_in_h": -2}, "body.starts_at"),
        ({"starts_in_h": 24 * 40}, "body.starts_at"),
        ({"performer": "  "}, "body.performer"),
        ({"twice": True}, "body.device_ids"),
        ({"kind": "cleaning"}, "body.kind"),
        ({"two_communities": True}, "body.device_ids"),
    ],
)
def test_bad_windows_are_refused_naming_the_field(
    api: Api, ids: Ids, change: dict[str, Any], field: str
) -> None:
    now = datetime.now(UTC)
    uids = [ids.device_in("C01")]
    if change.get("twice"):
        uids = uids * 2
    if change.get("two_communities"):
        uids.append(ids.device_in("C02"))
    b = body(ids, *uids, kind=change.get("kind", "service"))
    if "performer" in change:
        b["performer"] = change["performer"]
    start = now + timedelta(hours=change.get("starts_in_h", 0))
    b["starts_at"] = start.isoformat()
    b["ends_at"] = (start + timedelta(hours=change.get("ends_in_h", 1))).isoformat()
    r = api.as_("regulator").post(URL, json=b)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert [f["field"] for f in error["fields"]] == [field] and error["fields"][0]["message"]


def test_the_database_rule_agrees_with_the_pure_one(api_db: Conn, ids: Ids) -> None:
    lift = ids.devices[ids.device_in("C02")]
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    h = timedelta(hours=1)
    spans = [(t0, t0 + 2 * h), (t0 + h, t0 + 3 * h), (t0 + 5 * h, t0 + 5 * h)]
    windows = []
    for start, end in spans:
        (wid,) = api_db.execute(
            "INSERT INTO maintenance_windows (community_id, kind, starts_at, ends_at, performer,"
            " opened_by) VALUES (%s, 'repair', %s, %s, 'crew', 'test') RETURNING id",
            (ids.communities["C02"], start, end),
        ).fetchone() or (0,)
        api_db.execute("INSERT INTO maintenance_window_devices VALUES (%s, %s)", (wid, lift))
        windows.append(Window(int(wid), "repair", start, end, frozenset({lift})))
    for k in range(-2, 16):
        t = t0 + k * h / 2
        (db_says,) = api_db.execute(
            "SELECT device_in_maintenance(%s, %s)", (lift, t)
        ).fetchone() or (None,)
        assert db_says == covers(windows, lift, t), t
    last = api_db.execute(
        "SELECT last_at FROM device_last_service WHERE device_id = %s AND kind = 'repair'",
        (lift,),
    ).fetchone()
    assert last is not None and last[0] >= t0 + h  # the empty window at t0+5h is no visit
    spans = maintenance_spans(api_db, "elevator", t0 - h, t0 + 6 * h)
    mine = [(s, e) for d, s, e in spans if d == lift]
    assert mine == [
        (t0.timestamp(), (t0 + 2 * h).timestamp()),
        ((t0 + h).timestamp(), (t0 + 3 * h).timestamp()),
    ]


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 6, day, hour, minute, tzinfo=SHANGHAI)


def test_performance_leaves_out_exactly_the_windows_devices_and_time(
    api: Api, api_database: str
) -> None:
    with connect(api_database, autocommit=True) as db:
        region = make.region(db, "MWT")
        firm = make.firm(db, "MWF")
        community = make.community(db, "MW-C1", region, firm)
        d1 = make.device(db, "MW-D1", community, created_at=local(1, 0))
        d2 = make.device(db, "MW-D2", community, created_at=local(1, 0))

        def window(start: datetime, end: datetime, *devices: int) -> None:
            (wid,) = db.execute(
                "INSERT INTO maintenance_windows (community_id, kind, starts_at, ends_at,"
                " performer, opened_by) VALUES (%s, 'service', %s, %s, 'crew', 'test')"
                " RETURNING id",
                (community, start, end),
            ).fetchone() or (0,)
            for d in devices:
                db.execute("INSERT INTO maintenance_window_devices VALUES (%s, %s)", (wid, d))

        window(local(10, 9), local(10, 12), d1)
        window(local(10, 11), local(10, 14), d1)  # overlaps the first

        def trapped(dev: int, at: datetime, responded_s: int) -> None:
            make.work_order(
                db, dev, "EL.TRAPPED", at, responded_s=responded_s, on_site_s=600, closed_s=3600
            )

        trapped(d1, local(10, 8, 59), 30)  # before: counts, met
        trapped(d1, local(10, 10), 600)  # in the first: left out (would miss)
        trapped(d1, local(10, 13), 600)  # in the second only: left out
        trapped(d1, local(10, 14), 600)  # the windows have ended: counts, missed
        trapped(d2, local(10, 10), 600)  # another device: counts, missed
        token = issue(db, "firm_admin", "mw admin", {"firm": "MWF"}).token
    r = api.anonymous().get(
        "/v1/reports/firm-performance?from=2024-06-01&to=2024-07-01",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    [f] = [x for x in r.json()["firms"] if x["firm"]["code"] == "MWF"]
    assert f["work_orders"] == 3
    assert f["limits"]["response"] == {"met": 1, "missed": 2, "share_met": 0.3333}


def test_windows_are_in_the_audit_log(api: Api, ids: Ids, api_db: Conn) -> None:
    r = api.as_("firm_f01").post(URL, json=body(ids, ids.device_in("C01", n=1)))
    assert r.status_code == 201, r.text
    wid = r.json()["id"]
    api.as_("firm_f01").post(f"{URL}/{wid}/close")
    rows = api_db.execute(
        "SELECT action, via, actor, firm_ids, community_id FROM audit_log"
        " WHERE resource = 'maintenance_windows' AND resource_id = %s ORDER BY id",
        (str(wid),),
    ).fetchall()
    assert [(a, v) for a, v, *_ in rows] == [("insert", "api"), ("update", "api")]
    assert all("firm_admin" in r[2] for r in rows)
    # Whose it is: the firm's part of the log, which the firm reads and another firm does not.
    assert {(tuple(r[3]), r[4]) for r in rows} == {((ids.firms["F01"],), ids.communities["C01"])}
    devices = api_db.execute(
        "SELECT firm_ids FROM audit_log WHERE resource = 'maintenance_window_devices'"
        " AND resource_id = %s",
        (f"{wid}/{ids.devices[ids.device_in('C01', n=1)]}",),
    ).fetchall()
    assert devices == [([ids.firms["F01"]],)]
