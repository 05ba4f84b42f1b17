"""Public disclosure: no login, exact maintenance and incident figures, nothing private."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from api.disclosure import CommunityDisclosure, Quarter, community_disclosure, last_quarter
from core.db import connect
from core.workcalendar import SHANGHAI
from tests.api import report_data as make
from tests.api.conftest import Api

NOW = datetime(2026, 11, 15, 12, tzinfo=SHANGHAI)  # the last complete quarter is 2026Q3


def local(month: int, day: int, hour: int = 9) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def community(api_database: str) -> str:
    """Community PUB-C1: two lifts, a fire panel and a fire-water terminal, their units, a
    maintenance history and work orders in and around 2026Q3."""
    with connect(api_database, autocommit=True) as db:
        region = make.region(db, "PUB-T")
        firm = make.firm(db, "PUB-F", complaint_phone="0359-5551234")
        cid = make.community(db, "PUB-C1", region, firm)
        el = make.unit(db, "PUB-EL", "elevator", "0359-7000001")
        fi = make.unit(db, "PUB-FI", "fire", "0359-7000002")
        for kind, unit in (("elevator", el), ("fire", fi)):
            db.execute(
                "INSERT INTO community_maintenance_units (community_id, kind, maintenance_unit_id)"
                " VALUES (%s, %s, %s)",
                (cid, kind, unit),
            )
        e1 = make.device(db, "PUB-EL1", cid, "elevator", el)
        e2 = make.device(db, "PUB-EL2", cid, "elevator", el)
        fp = make.device(db, "PUB-FP", cid, "fire_panel", fi)
        make.device(db, "PUB-FW", cid, "fire_water", fi)
        make.maintenance(db, e1, "routine", local(11, 10), 200)
        make.maintenance(db, e1, "routine", local(11, 20), 200)  # after NOW: not yet
        make.maintenance(db, e1, "routine", local(10, 26), 200)
        make.maintenance(db, e1, "routine", local(9, 20), 250)
        make.maintenance(db, e1, "annual_inspection", local(8, 1), 400)
        make.maintenance(db, e1, "repair", local(7, 15), 1500)
        make.maintenance(db, e2, "routine", local(10, 20))
        make.maintenance(db, e2, "routine", local(9, 5), 300)
        make.maintenance(db, e2, "routine", local(6, 30, 23), 999)  # 2026Q2
        make.maintenance(db, fp, "routine", local(11, 1))

        def trapped(dev: int, at: datetime, on_site: int, closed: int) -> None:
            make.work_order(
                db, dev, "EL.TRAPPED", at, responded_s=30, on_site_s=on_site, closed_s=closed
            )

        trapped(e1, local(7, 3), 900, 3000)  # within every limit
        trapped(e2, local(8, 9), 2400, 5000)  # arrived after 30 min
        make.work_order(
            db, e1, "EL.DOOR_FAULT", local(9, 30, 23), severity="P2", closed_s=60, false_alarm=True
        )
        make.work_order(
            db,
            fp,
            "FP.FAULT",
            local(9, 1),
            severity="P2",
            response_due_s=None,
            arrival_due_s=None,
            closed_s=3600,
        )
        trapped(e2, local(10, 5), 600, 1200)  # 2026Q4
        # Residents' complaints: apart from the incidents, counted as the report counts them.
        make.complaint(db, cid, "CP.NOISE", local(7, 20), responded_s=600, closed_s=7200)
        make.complaint(db, cid, "CP.REPAIR", local(9, 2), closed_s=90000)  # never taken on
        make.complaint(db, cid, "CP.SERVICE", local(10, 2))  # 2026Q4
    return "PUB-C1"


async def _disclose(url: str, code: str) -> CommunityDisclosure | None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        return await community_disclosure(conn, code, now=NOW)


def test_disclosure_has_exact_figures(api_database: str, community: str) -> None:
    d = asyncio.run(_disclose(api_database, community))
    assert d is not None
    assert d.property_firm is not None and d.property_firm.complaint_phone == "0359-5551234"
    assert [(u.kind, u.code, u.phone) for u in d.maintenance_units] == [
        ("elevator", "PUB-EL", "0359-7000001"),
        ("fire", "PUB-FI", "0359-7000002"),
    ]
    el1, el2 = d.elevators
    assert (el1.code, str(el1.last_service), el1.days_since_service) == ("PUB-EL1", "2026-11-10", 5)
    assert not el1.service_overdue
    assert str(el1.last_annual_inspection) == "2026-08-01" and str(el1.last_repair) == "2026-07-15"
    assert (str(el2.last_service), el2.days_since_service, el2.service_overdue) == (
        "2026-10-20",
        26,
        True,
    )
    assert el2.last_annual_inspection is None
    assert [
        (f.system, f.devices, f.last_service and str(f.last_service)) for f in d.fire_systems
    ] == [
        ("fire_panel", 1, "2026-11-01"),
        ("fire_water", 1, None),
    ]
    assert d.elevator_expenditure is not None
    assert d.elevator_expenditure.period.label == "2026Q3"
    assert (d.elevator_expenditure.total_cny, d.elevator_expenditure.visits_with_cost) == (
        2450.0,
        4,
    )
    inc = d.incidents
    assert (str(inc.period.start), str(inc.period.end)) == ("2026-07-01", "2026-10-01")
    assert (inc.work_orders, inc.false_alarms, inc.closed_within_limits) == (4, 1, 2)
    assert inc.share_closed_within_limits == 0.6667
    assert [(t.event_code, t.severity, t.work_orders) for t in inc.by_type] == [
        ("EL.TRAPPED", "P0", 2),
        ("EL.DOOR_FAULT", "P2", 1),
        ("FP.FAULT", "P2", 1),
    ]
    assert inc.by_type[0].name_en == "Passengers trapped in a lift"
    cp = d.complaints
    assert str(cp.period.start) == "2026-07-01"
    assert (cp.received, cp.closed, cp.not_valid, cp.handled_in_time, cp.late) == (2, 2, 0, 1, 1)
    assert cp.share_in_time == 0.5


def test_last_quarter_is_local() -> None:
    assert last_quarter(datetime(2026, 12, 31, 17, tzinfo=UTC)) == Quarter(2026, 4)  # 01:00 +08
    assert last_quarter(datetime(2026, 12, 31, 15, tzinfo=UTC)) == Quarter(2026, 3)
    assert last_quarter(local(4, 1, 0)) == Quarter(2026, 1)
    assert Quarter(2026, 4).end.isoformat() == "2027-01-01"


Client = Any  # an API caller of tests/api/conftest.py: .get(url, headers=...) -> httpx.Response


@pytest.fixture
def client(api: Api) -> Client:
    return api.anonymous()


def test_public_detail_needs_no_login_and_shows_nothing_private(
    client: Client, community: str
) -> None:
    r = client.get(f"/v1/public/communities/{community}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == "PUB-C1" and body["region"]["code"] == "PUB-T"
    assert [u["phone"] for u in body["maintenance_units"]] == ["0359-7000001", "0359-7000002"]
    text = r.text
    for private in ("s3cr3t", "secret_key", "CREDIT-SECRET", "13900000000", "password", "hash"):
        assert private not in text

    def keys(v: Any) -> set[str]:
        if isinstance(v, dict):
            return set(v) | {k for x in v.values() for k in keys(x)}
        if isinstance(v, list):
            return {k for x in v for k in keys(x)}
        return set()

    assert not {k for k in keys(body) if k == "id" or k.endswith("_id")}


def test_seeded_county_discloses_its_units_and_services(client: Client) -> None:
    body = client.get("/v1/public/communities/C01").json()
    phones = {u["code"]: u["phone"] for u in body["maintenance_units"]}
    assert phones == {"MU-EL1": "0359-6110001", "MU-FI1": "0359-6120001", "MU-WA1": "0359-6130001"}
    assert body["elevators"] and all(e["last_service"] for e in body["elevators"])
    assert {f["system"] for f in body["fire_systems"]} >= {"fire_panel", "fire_water"}


def test_unknown_community_is_404_with_the_error_body(client: Client) -> None:
    r = client.get("/v1/public/communities/NOPE")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_list_pages_through_every_community(client: Client, community: str) -> None:
    seen: list[str] = []
    url = "/v1/public/communities?limit=2"
    while True:
        r = client.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [c["code"] for c in page["items"]]
        if page["next"] is None:
            break
        url = f"/v1/public/communities?limit=2&cursor={page['next']}"
    assert len(seen) == len(set(seen)) and {"C01", "C02", "PUB-C1"} <= set(seen)
    item = next(
        c
        for c in client.get("/v1/public/communities?limit=500").json()["items"]
        if c["code"] == "PUB-C1"
    )
    assert item["property_firm"]["complaint_phone"] == "0359-5551234"
    assert client.get("/v1/public/communities?limit=0").status_code == 422


def test_disclosure_is_documented(client: Client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/public/communities/{code}" in spec["paths"]
    assert "CommunityDisclosure" in spec["components"]["schemas"]
