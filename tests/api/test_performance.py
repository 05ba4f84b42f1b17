"""The firm-performance report: known work orders in, exact figures out, scoped per role."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest

from api.performance import (
    FirmFigures,
    PeriodError,
    Scope,
    assemble,
    check_period,
    scope_for,
)
from api.tokens import issue
from core.db import connect
from core.workcalendar import SHANGHAI
from tests.api import report_data as make
from tests.api.conftest import Api

PERIOD = "/v1/reports/firm-performance?from=2024-02-01&to=2024-03-01"


def local(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def firms(api_database: str) -> dict[str, str]:
    """Firm PA (two lifts, six work orders in February 2024 and one before) in township PT1, firm
    PB (one lift, two in February, one just after) in PT2; returns a token per role."""
    with connect(api_database, autocommit=True) as db:
        pt1, pt2 = make.region(db, "PT1"), make.region(db, "PT2")
        pa, pb = make.firm(db, "PA"), make.firm(db, "PB")
        ca, cb = make.community(db, "PA-C1", pt1, pa), make.community(db, "PB-C1", pt2, pb)
        created = local(1, 1)
        d1 = make.device(db, "PA-D1", ca, created_at=created)
        d2 = make.device(db, "PA-D2", ca, created_at=created)
        e1 = make.device(db, "PB-D1", cb, created_at=created)

        def trapped(dev: int, at: datetime, responded: int, on_site: int, closed: int) -> int:
            return make.work_order(
                db, dev, "EL.TRAPPED", at, responded_s=responded, on_site_s=on_site, closed_s=closed
            )

        def door(dev: int, at: datetime, closed: int, resolution: int = 7200) -> int:
            return make.work_order(
                db,
                dev,
                "EL.DOOR_FAULT",
                at,
                severity="P2",
                response_due_s=None,
                arrival_due_s=None,
                resolution_due_s=resolution,
                closed_s=closed,
            )

        door(d1, local(1, 20), closed=86400, resolution=172800)
        trapped(d1, local(2, 5), 30, 600, 3600)
        trapped(d1, local(2, 10), 120, 1200, 5400)
        trapped(d2, local(2, 12), 45, 2400, 10800)
        make.work_order(db, d2, "EL.TRAPPED", local(2, 13), closed_s=300, false_alarm=True)
        door(d1, local(2, 14), closed=86400, resolution=172800)
        w6 = trapped(d2, local(2, 20), 50, 1500, 3600)
        db.execute(
            "INSERT INTO work_order_breaches (work_order_id, limit_kind, due, recorded_at)"
            " VALUES (%s, 'response', %s, %s)",
            (w6, local(2, 20), local(2, 20)),
        )
        trapped(e1, local(2, 7), 20, 900, 3000)
        door(e1, local(2, 1, 0), closed=3600)
        door(e1, local(3, 1, 0), closed=3600)
        # PA-D1 is offline for one whole day of February; PA-D2 never reports a status.
        for t, online in ((local(1, 15), True), (local(2, 11, 0), False), (local(2, 12, 0), True)):
            db.execute(
                "INSERT INTO device_status (ts, device_id, online) VALUES (%s, %s, %s)",
                (t, d1, online),
            )
        return {
            "county_regulator": issue(db, "county_regulator", "county", {}).token,
            "township": issue(db, "township", "pt1", {"region": "PT1"}).token,
            "firm_admin": issue(db, "firm_admin", "pa admin", {"firm": "PA"}).token,
            "duty_staff": issue(db, "duty_staff", "pb duty", {"firm": "PB"}).token,
            "duty_community": issue(db, "duty_staff", "pb room", {"community": "PB-C1"}).token,
            "maintenance_unit": issue(db, "maintenance_unit", "lifts", {"unit": "MU-EL1"}).token,
        }


Client = Any  # an API caller of tests/api/conftest.py: .get(url, headers=...) -> httpx.Response


@pytest.fixture
def client(api: Api) -> Client:
    return api.anonymous()


def report(client: Client, token: str, url: str = PERIOD) -> dict[str, Any]:
    r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def by_code(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["firm"]["code"]: f for f in body["firms"]}


def test_regulator_sees_exact_figures_ranked(client: Client, firms: dict[str, str]) -> None:
    body = report(client, firms["county_regulator"])
    assert (body["from"], body["to"]) == ("2024-02-01", "2024-03-01")
    f = by_code(body)
    pa, pb = f["PA"], f["PB"]
    assert pa["work_orders"] == 6 and pa["false_alarms"] == 1 and pa["communities"] == 1
    assert pa["by_event_code"] == [
        {"key": "EL.TRAPPED", "work_orders": 5},
        {"key": "EL.DOOR_FAULT", "work_orders": 1},
    ]
    assert pa["by_severity"] == [{"key": "P0", "work_orders": 5}, {"key": "P2", "work_orders": 1}]
    # response: 30 s met, 120 s missed, 45 s met, 50 s met but recorded as breached
    assert pa["limits"]["response"] == {"met": 2, "missed": 2, "share_met": 0.5}
    assert pa["limits"]["arrival"] == {"met": 3, "missed": 1, "share_met": 0.75}
    assert pa["limits"]["resolution"] == {"met": 4, "missed": 1, "share_met": 0.8}
    assert pa["compliance"] == {"met": 2, "missed": 3, "share_met": 0.4}
    # percentile_cont over [30, 45, 50, 120] and [600, 1200, 1500, 2400]
    assert pa["response_time"] == {"samples": 4, "median_s": 47.5, "p90_s": 99.0}
    assert pa["arrival_time"] == {"samples": 4, "median_s": 1350.0, "p90_s": 2130.0}
    # repeats: 02-10 after 02-05 (PA-D1), 02-14 after 01-20 (before the period), 02-20 after 02-12
    assert pa["repeat_faults"] == {"work_orders": 3, "share": 0.6, "window_days": 30}
    assert pa["availability"] == {"devices": 2, "devices_reporting": 1, "share_online": 0.9655}
    # PB: the order at 02-01 00:00 counts, the one at 03-01 00:00 does not
    assert pb["work_orders"] == 2 and pb["compliance"] == {"met": 2, "missed": 0, "share_met": 1.0}
    assert pb["availability"] == {"devices": 1, "devices_reporting": 0, "share_online": None}
    assert pb["rank"] is not None and pa["rank"] == pb["rank"] + 1
    ranks = [x["rank"] for x in body["firms"]]
    ranked = [r for r in ranks if r is not None]
    assert ranks[: len(ranked)] == list(range(1, len(ranked) + 1))


def test_each_role_sees_its_own(client: Client, firms: dict[str, str]) -> None:
    assert set(by_code(report(client, firms["township"]))) == {"PA"}
    assert set(by_code(report(client, firms["firm_admin"]))) == {"PA"}
    assert set(by_code(report(client, firms["duty_staff"]))) == {"PB"}
    assert report(client, firms["duty_community"])["firms"] == []
    assert report(client, firms["maintenance_unit"])["firms"] == []
    r = client.get(PERIOD)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("from=2024-03-01&to=2024-02-01", "query.to"),
        ("from=2024-03-01&to=2024-03-01", "query.to"),
        ("from=2024-01-01&to=2025-01-03", "query.to"),
        ("to=2024-03-01", "query.from"),
        ("from=2024-13-01&to=2024-03-01", "query.from"),
    ],
)
def test_period_is_validated(client: Client, firms: dict[str, str], query: str, field: str) -> None:
    r = client.get(
        f"/v1/reports/firm-performance?{query}",
        headers={"Authorization": f"Bearer {firms['county_regulator']}"},
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert [f["field"] for f in error["fields"]] == [field]


def test_a_leap_year_is_one_year(client: Client, firms: dict[str, str]) -> None:
    url = "/v1/reports/firm-performance?from=2024-01-01&to=2025-01-01"
    assert "PA" in by_code(report(client, firms["county_regulator"], url))


def test_period_rules() -> None:
    check_period(date(2024, 1, 1), date(2024, 1, 2))
    with pytest.raises(PeriodError) as e:
        check_period(date(2024, 1, 2), date(2024, 1, 1))
    assert e.value.field == "to"
    with pytest.raises(PeriodError):
        check_period(date(2023, 1, 1), date(2023, 1, 1) + timedelta(days=367))


def test_scope_per_role() -> None:
    assert scope_for("county_regulator", None, None) == Scope(None, None)
    assert scope_for("township", None, frozenset({3})) == Scope(None, frozenset({3}))
    assert scope_for("firm_admin", 7, frozenset({3, 4})) == Scope(frozenset({7}), frozenset({3, 4}))
    assert scope_for("maintenance_unit", None, frozenset()).empty


def test_ranking_puts_undecided_firms_last() -> None:
    a = FirmFigures("A", "甲", "A", 1, work_orders=4, all_met=1, any_missed=3)
    b = FirmFigures("B", "乙", "B", 1, work_orders=2, all_met=2, any_missed=0)
    c = FirmFigures("C", "丙", "C", 1)
    d = FirmFigures("D", "丁", "D", 1, work_orders=4, all_met=3, any_missed=1)
    out = assemble([a, b, c, d])
    assert [(p.firm.code, p.rank) for p in out] == [("B", 1), ("D", 2), ("A", 3), ("C", None)]
    assert out[0].compliance.share_met == 1.0 and out[3].limits["response"].share_met is None


def test_report_is_documented(client: Client) -> None:
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/reports/firm-performance"]["get"]
    assert {p["name"] for p in op["parameters"]} >= {"from", "to"}
    assert "FirmPerformance" in spec["components"]["schemas"]
