"""The working calendar through the API: where working days come from, the missing-schedule
warning, and a county regulator loading a year's holiday schedule (checked, versioned, audited)."""

from __future__ import annotations

from datetime import date

from core.db import Conn
from tests.api.conftest import Api
from tests.core.test_holiday_schedule import EXAMPLE_2027

TEXT = EXAMPLE_2027.read_text(encoding="utf-8")
YAML = {"Content-Type": "application/yaml"}


def test_a_regulator_loads_a_schedule_and_the_warning_goes(api: Api, api_db: Conn) -> None:
    api_db.execute("DELETE FROM holiday_schedules")
    before = api.as_("regulator").get("/v1/calendar").json()
    by_year = {y["year"]: y for y in before["years"]}
    today = date.fromisoformat(before["today"])
    if today < date(2027, 1, 1):  # chinese-calendar knows 2026, and November is warning time
        assert by_year[2027]["source"] == "weekdays"
        assert any(w["year"] == 2027 for w in before["warnings"]), before["warnings"]

    assert (
        api.as_("firm_f01").post("/v1/calendar/schedules", json={"content": TEXT}).status_code
        == 403
    )
    loaded = api.as_("regulator").post(
        "/v1/calendar/schedules", content=TEXT.encode(), headers=YAML
    )
    assert loaded.status_code == 201, loaded.text
    body = loaded.json()
    assert (body["year"], body["version"], body["created"]) == (2027, 1, True)
    assert "regulator" in body["loaded_by"]

    again = api.as_("regulator").post("/v1/calendar/schedules", json={"content": TEXT})
    assert again.status_code == 200 and again.json()["version"] == 1

    fixed = TEXT.replace(
        "{name: 端午节, from: 2027-06-09}", "{name: 端午节, from: 2027-06-09, to: 2027-06-11}"
    )
    v2 = api.as_("regulator").post("/v1/calendar/schedules", json={"content": fixed})
    assert v2.status_code == 201 and v2.json()["version"] == 2

    after = api.as_("duty_c01").get("/v1/calendar").json()
    assert {y["year"]: y["source"] for y in after["years"]}[2027] == "schedule"
    assert not any(w["year"] == 2027 for w in after["warnings"])

    schedule = api.as_("duty_c01").get("/v1/calendar/schedules/2027").json()
    assert [v["version"] for v in schedule["versions"]] == [2, 1]
    assert {"day": "2027-02-20", "reason": "春节"} in schedule["workdays"]
    assert {"name": "端午节", "first": "2027-06-09", "last": "2027-06-11"} in schedule["holidays"]
    assert api.as_("duty_c01").get("/v1/calendar/schedules/2031").status_code == 404
    rows = api_db.execute(
        "SELECT version, source, loaded_by FROM holiday_schedules WHERE year = 2027 ORDER BY version"
    ).fetchall()
    assert [(v, s) for v, s, _ in rows] == [(1, "api"), (2, "api")], "every version is kept"


def test_an_invalid_schedule_is_refused_with_its_errors_and_nothing_is_stored(
    api: Api, api_db: Conn
) -> None:
    (before,) = api_db.execute("SELECT count(*) FROM holiday_schedules").fetchone() or (0,)
    bad = TEXT.replace("{date: 2027-02-20, for: 春节}", "{date: 2027-02-17, for: 春节}").replace(
        "to: 2027-10-07", "to: 2027-09-07"
    )
    check = api.as_("firm_f01").post("/v1/calendar/schedules/validate", json={"content": bad})
    assert check.status_code == 200
    assert check.json()["valid"] is False
    lines = bad.splitlines()
    found = {lines[e["line"] - 1].strip() for e in check.json()["errors"]}
    assert found == {
        "- {date: 2027-02-17, for: 春节}",
        "- {name: 国庆节, from: 2027-10-01, to: 2027-09-07}",
    }
    refused = api.as_("regulator").post(
        "/v1/calendar/schedules", content=bad.encode(), headers=YAML
    )
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == "invalid_schedule"
    assert {f["line"] for f in error["fields"]} == {e["line"] for e in check.json()["errors"]}
    assert api_db.execute("SELECT count(*) FROM holiday_schedules").fetchone() == (before,)
    not_yaml = api.as_("regulator").post(
        "/v1/calendar/schedules", content=b"\xff\xfe", headers=YAML
    )
    assert not_yaml.status_code == 400
