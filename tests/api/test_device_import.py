"""CSV import of devices: every row checked, every problem reported with its row and column,
nothing imported when any row is bad; all of it imported (and credentials issued) otherwise."""

from __future__ import annotations

from core.db import Conn
from tests.api.conftest import Api, Ids, can_connect, eventually
from tests.conftest import Broker

HEADER = "uid,device_class,community,building,maintenance_unit,install_date,report_interval_s,attributes\n"


def test_a_file_with_bad_rows_reports_each_and_imports_nothing(
    api: Api, ids: Ids, api_db: Conn
) -> None:
    text = (
        HEADER
        + "API-IMP-1,elevator,C01,B01,MU-EL1,2023-01-05,10,{}\n"  # fine
        + "API-IMP-2,toaster,C01,B99,MU-XX,2023-13-01,0,[1]\n"  # five problems
        + "API-IMP-1,elevator,C02,,,,,\n"  # uid repeated; C02 is not F01's
        + f"{ids.device_in('C01')},elevator,C01,,,,,\n"  # already registered
        + "bad uid,pump_room,C01,,,,,\n"
    )
    r = api.as_("firm_f01").post(
        "/v1/devices/import", content=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_csv"
    assert "nothing was imported" in error["message"]
    found = {(f["row"], f["field"].split(".", 1)[1]) for f in error["fields"]}
    assert found == {
        (3, "device_class"),
        (3, "building"),
        (3, "maintenance_unit"),
        (3, "install_date"),
        (3, "report_interval_s"),
        (3, "attributes"),
        (4, "uid"),
        (4, "community"),
        (5, "uid"),
        (6, "uid"),
    }
    assert api_db.execute("SELECT count(*) FROM devices WHERE uid LIKE 'API-IMP-%'").fetchone() == (
        0,
    )


def test_a_bad_header_is_reported_on_row_one(api: Api) -> None:
    r = api.as_("regulator").post(
        "/v1/devices/import",
        content=b"uid,colour\nAPI-X,red\n",
        headers={"Content-Type": "text/csv"},
    )
    fields = {(f["row"], f["field"]) for f in r.json()["error"]["fields"]}
    assert fields == {(1, "row 1.colour"), (1, "row 1.device_class"), (1, "row 1.community")}


def test_a_good_file_imports_every_device_and_issues_working_credentials(
    api: Api, api_broker: Broker, api_db: Conn
) -> None:
    text = HEADER + "".join(
        f'API-IMP-OK{i},fire_water,C01,B01,MU-FI1,2024-02-0{i},30,"{{""zone"": {i}}}"\n'
        for i in range(1, 4)
    )
    r = api.as_("firm_f01").post(
        "/v1/devices/import?issue_credentials=true",
        files={"file": ("devices.csv", text.encode(), "text/csv")},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["imported"] == 3
    assert sorted(body["passwords"]) == ["API-IMP-OK1", "API-IMP-OK2", "API-IMP-OK3"]
    assert body["broker"]["synced"] is True
    rows = api_db.execute(
        "SELECT uid, report_interval_s, attributes FROM devices WHERE uid LIKE 'API-IMP-OK%'"
        " ORDER BY uid"
    ).fetchall()
    assert rows[0] == ("API-IMP-OK1", 30, {"zone": 1})
    password = body["passwords"]["API-IMP-OK2"]
    assert eventually(lambda: can_connect(api_broker, "API-IMP-OK2", password))
