"""Spreadsheet exports through the API: the CSV and XLSX of work orders, alarms and the
firm-performance report hold exactly what the JSON endpoints answer for the same filters and
caller, with formula injection neutralised, and nothing outside the caller's scope."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import openpyxl
import pytest

from api import exports
from api.tokens import issue
from core.db import connect
from core.workcalendar import SHANGHAI
from tests.api import report_data as make
from tests.api.conftest import Api

HYPERLINK = '=HYPERLINK("http://x","y")'
PERIOD = {"opened_from": "2023-06-01T00:00:00+08:00", "opened_until": "2023-07-01T00:00:00+08:00"}
REPORT = {"from": "2023-06-01", "to": "2023-07-01"}
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def local(day: int, hour: int = 10) -> datetime:
    return datetime(2023, 6, day, hour, tzinfo=SHANGHAI)


@dataclass(frozen=True)
class Data:
    tokens: dict[str, str]
    community: int  # firm EXF's, named with formula payloads
    other_community: int  # firm EXG's
    work_orders: list[int]  # EXF's in June 2023, the complaint included
    other_work_order: int
    places: dict[int, tuple[str, str]]  # community id -> (code, name_zh)
    locations: dict[str, str]  # device uid -> location


@pytest.fixture(scope="module")
def data(api_database: str) -> Data:
    """Firm EXF (named ``+1+1`` / ``@SUM(A1)``), its community (``=HYPERLINK(...)``), two
    lifts (at locations ``-2`` and tab ``=1``), four work orders of June 2023 and a complaint;
    firm EXG with one lift and one work order."""
    with connect(api_database, autocommit=True) as db:
        region = make.region(db, "EXT1")
        firm = db.execute(
            "INSERT INTO firms (code, name_zh, name_en) VALUES ('EXF', '+1+1', '@SUM(A1)')"
            " RETURNING id"
        ).fetchone()
        assert firm is not None
        c1 = db.execute(
            "INSERT INTO communities (code, region_id, firm_id, name_zh, name_en, address)"
            " VALUES ('EXC1', %s, %s, %s, %s, '-1 road') RETURNING id",
            (region, firm[0], HYPERLINK, "\t=1"),
        ).fetchone()
        assert c1 is not None
        community = int(c1[0])
        other_firm = make.firm(db, "EXG")
        other = make.community(db, "EXG-C1", region, other_firm)
        d1 = make.device(db, "EX-D1", community)
        d2 = make.device(db, "EX-D2", community)
        db.execute("UPDATE devices SET location = '-2' WHERE id = %s", (d1,))
        db.execute("UPDATE devices SET location = E'\\t=1' WHERE id = %s", (d2,))
        e1 = make.device(db, "EXG-D1", other)
        orders = [
            make.work_order(
                db, d1, "EL.TRAPPED", local(5), responded_s=30, on_site_s=600, closed_s=3600
            ),
            make.work_order(
                db, d1, "EL.TRAPPED", local(9), responded_s=120, on_site_s=2400, closed_s=9000
            ),
            make.work_order(db, d2, "EL.TRAPPED", local(12), closed_s=300, false_alarm=True),
            make.work_order(db, d2, "EL.DOOR_FAULT", local(20), severity="P2"),
        ]
        db.execute(
            "INSERT INTO work_order_breaches (work_order_id, limit_kind, due, recorded_at)"
            " SELECT id, 'arrival', arrival_due, arrival_due FROM work_orders WHERE id = %s",
            (orders[1],),
        )
        db.execute(
            "UPDATE alarms SET acknowledged_by = '@SUM(A1)', acknowledged_at = alarms.opened_at,"
            ' detail = \'{"note": "=1+1"}\' FROM work_orders w'
            " WHERE w.id = %s AND alarms.id = w.alarm_id",
            (orders[3],),
        )
        complaint = db.execute(
            "INSERT INTO work_orders (source, community_id, firm_id, event_code, severity,"
            " responsible_party, supervisor, status, opened_at, response_due, resolution_due,"
            " responded_at, closed_at, closed_reason, emergency_fund, notify_regulator,"
            " list_version) SELECT 'complaint', c.id, c.firm_id, 'CP.NOISE', 'P3',"
            " 'property_firm', 'county_housing_bureau', 'completed', %s, %s, %s, %s, %s,"
            " 'completed', false, false, 'test' FROM communities c WHERE c.id = %s RETURNING id",
            (local(15), local(15, 11), local(16), local(15, 10), local(15, 12), community),
        ).fetchone()
        assert complaint is not None
        orders.append(int(complaint[0]))
        other_order = make.work_order(db, e1, "EL.TRAPPED", local(6), closed_s=600)
        places = {
            int(i): (str(code), str(name))
            for i, code, name in db.execute("SELECT id, code, name_zh FROM communities")
        }
        locations = {str(u): str(loc) for u, loc in db.execute("SELECT uid, location FROM devices")}
        tokens = {
            "exf": issue(db, "firm_admin", "exf admin", {"firm": "EXF"}).token,
            "exg": issue(db, "firm_admin", "exg admin", {"firm": "EXG"}).token,
            "regulator": issue(db, "county_regulator", "exports", {}).token,
            "unit": issue(db, "maintenance_unit", "exports unit", {"unit": "MU-EL1"}).token,
        }
    return Data(tokens, community, other, orders, other_order, places, locations)


def get(api: Api, token: str, url: str, params: Any = None) -> httpx.Response:
    return api.anonymous().get(url, params=params, headers={"Authorization": f"Bearer {token}"})


def download(api: Api, token: str, url: str, params: Any = None) -> bytes:
    r = get(api, token, url, params)
    assert r.status_code == 200, r.text
    return r.content


def sheet(data: bytes) -> list[list[Any]]:
    ws = openpyxl.load_workbook(io.BytesIO(data)).active
    assert ws is not None
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f", cell.coordinate
    return [[c.value for c in row] for row in ws.iter_rows()]


def table(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def beijing(iso: str | None) -> datetime | None:
    if iso is None:
        return None
    t = datetime.fromisoformat(iso).astimezone(SHANGHAI)
    return t.replace(tzinfo=None, microsecond=0)


def as_xlsx(v: Any) -> Any:
    return exports.text(v) if isinstance(v, str) else v


def as_csv(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, float):
        return repr(v)
    return exports.text(v) if isinstance(v, str) else str(v)


def both_match(api: Api, token: str, path: str, params: Any, expected: list[list[Any]]) -> None:
    """The XLSX and the CSV at ``path`` (without extension) are ``expected`` under its header."""
    xlsx = sheet(download(api, token, f"{path}.xlsx", params))
    assert xlsx[1:] == [[as_xlsx(v) for v in row] for row in expected]
    rows = table(download(api, token, f"{path}.csv", params))
    assert rows[0] == xlsx[0]
    assert rows[1:] == [[as_csv(v) for v in row] for row in expected]


TIMES = ("opened_at", "response_due", "arrival_due", "resolution_due")
DONE = ("responded_at", "on_site_at", "closed_at")


def work_order_row(w: dict[str, Any], d: Data) -> list[Any]:
    """What the export's row says, from the JSON list's item (and the registry's names)."""
    code, name = d.places[w["community_id"]]
    outcome = {s["kind"]: s["outcome"] for s in w["sla"]}
    return [
        *(w[k] for k in ("id", "source", "alarm_id", "device_uid")),
        d.locations[w["device_uid"]] if w["device_uid"] else None,
        w["community_id"],
        code,
        name,
        *(w[k] for k in ("firm_id", "maintenance_unit_id", "event_code", "severity")),
        *(w[k] for k in ("responsible_party", "supervisor", "status")),
        *(beijing(w[k]) for k in TIMES + DONE),
        *(w[k] for k in ("closed_reason", "emergency_fund", "notify_regulator")),
        *(outcome.get(k) for k in ("response", "arrival", "resolution")),
        ", ".join(b["limit_kind"] for b in w["breaches"]) or None,
        w["list_version"],
    ]


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"status": ["completed", "false_alarm"]},
        {"status": "occurred", "severity": "P2"},
        {"breached": "true"},
        {"opened_from": "2023-06-10T00:00:00+08:00"},
    ],
)
def test_work_orders_export_is_the_list_for_the_same_filters(
    api: Api, data: Data, extra: dict[str, Any]
) -> None:
    params = {**PERIOD, "community_id": data.community, **extra}
    token = data.tokens["exf"]
    listed = get(api, token, "/v1/work-orders", {**params, "limit": 500}).json()["items"]
    assert listed, "the filters should match something"
    expected = [work_order_row(w, data) for w in listed]
    both_match(api, token, "/v1/exports/work-orders", params, expected)
    if not extra:
        assert [w["id"] for w in listed] == sorted(data.work_orders, reverse=True)


def test_the_work_orders_file_reads_as_a_spreadsheet(api: Api, data: Data) -> None:
    r = get(api, data.tokens["exf"], "/v1/exports/work-orders.xlsx", PERIOD)
    assert r.headers["content-type"] == XLSX
    today = datetime.now(SHANGHAI).date().isoformat()
    assert r.headers["content-disposition"] == (
        f'attachment; filename="work-orders_{today}.xlsx";'
        f" filename*=UTF-8''%E5%B7%A5%E5%8D%95_work-orders_{today}.xlsx"
    )
    rows = sheet(r.content)
    assert rows[0][:2] == ["工单编号 Work order", "来源 Source"]
    assert "开单时间（北京时间） Opened (Beijing time)" in rows[0]
    first = dict(zip(rows[0], rows[-1], strict=True))  # the oldest: 06-05 10:00 Beijing time
    assert first["开单时间（北京时间） Opened (Beijing time)"] == datetime(2023, 6, 5, 10, 0)
    assert first["关闭时间（北京时间） Closed (Beijing time)"] == datetime(2023, 6, 5, 11, 0)
    assert first["工单编号 Work order"] == data.work_orders[0]
    csv_r = get(api, data.tokens["exf"], "/v1/exports/work-orders.csv", PERIOD)
    assert csv_r.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="work-orders_' in csv_r.headers["content-disposition"]
    assert csv_r.text.startswith("\ufeff工单编号 Work order,")
    assert "\r\n" in csv_r.text


def alarm_row(a: dict[str, Any], d: Data) -> list[Any]:
    code, name = d.places[a["community_id"]]
    times = ("opened_at", "last_triggered_at", "normal_since", "cleared_at")
    return [
        a["id"],
        a["device_uid"],
        d.locations[a["device_uid"]],
        a["community_id"],
        code,
        name,
        *(a[k] for k in ("event_code", "severity", "state", "detector")),
        *(beijing(a[k]) for k in times),
        *(a[k] for k in ("cleared_reason", "triggers", "flaps")),
        beijing(a["acknowledged_at"]),
        *(a[k] for k in ("acknowledged_by", "work_order_id", "in_maintenance", "list_version")),
        None,  # the detail, compared below
    ]


@pytest.mark.parametrize("extra", [{}, {"state": "active"}, {"state": ["cleared"]}])
def test_alarms_export_is_the_list_for_the_same_filters(
    api: Api, data: Data, extra: dict[str, Any]
) -> None:
    params = {**PERIOD, "community_id": data.community, **extra}
    token = data.tokens["exf"]
    listed = get(api, token, "/v1/alarms", {**params, "limit": 500}).json()["items"]
    assert listed
    xlsx = sheet(download(api, token, "/v1/exports/alarms.xlsx", params))
    rows = table(download(api, token, "/v1/exports/alarms.csv", params))
    assert rows[0] == xlsx[0] and xlsx[0][-1] == "详情 Detail"
    expected = [alarm_row(a, data) for a in listed]
    assert [r[:-1] for r in xlsx[1:]] == [[as_xlsx(v) for v in e[:-1]] for e in expected]
    assert [r[:-1] for r in rows[1:]] == [[as_csv(v) for v in e[:-1]] for e in expected]
    details = [r[-1] for r in rows[1:]]
    assert details == [r[-1] for r in xlsx[1:]]
    assert '{"note": "=1+1"}' in details or extra == {"state": ["cleared"]}


def firm_row(f: dict[str, Any]) -> list[Any]:
    def counted(counts: list[dict[str, Any]]) -> str:
        return "; ".join(f"{c['key']}: {c['work_orders']}" for c in counts)

    def shares(x: dict[str, Any]) -> list[Any]:
        return [x["met"], x["missed"], x["share_met"]]

    def durations(x: dict[str, Any]) -> list[Any]:
        return [x["samples"], x["median_s"], x["p90_s"]]

    r, a, c = f["repeat_faults"], f["availability"], f["complaints"]
    return [
        f["rank"],
        *(f["firm"][k] for k in ("code", "name_zh", "name_en")),
        *(f[k] for k in ("communities", "work_orders", "false_alarms")),
        counted(f["by_event_code"]),
        counted(f["by_severity"]),
        *(v for k in ("response", "arrival", "resolution") for v in shares(f["limits"][k])),
        *shares(f["compliance"]),
        *durations(f["response_time"]),
        *durations(f["arrival_time"]),
        *(r["work_orders"], r["share"], r["window_days"]),
        *(a["devices"], a["devices_reporting"], a["share_online"]),
        *(c[k] for k in ("received", "closed", "not_valid", "handled_in_time", "late")),
        c["share_in_time"],
    ]


@pytest.mark.parametrize("who", ["regulator", "exf", "exg"])
def test_performance_export_is_the_report(api: Api, data: Data, who: str) -> None:
    token = data.tokens[who]
    report = get(api, token, "/v1/reports/firm-performance", REPORT).json()
    expected = [firm_row(f) for f in report["firms"]]
    both_match(api, token, "/v1/reports/firm-performance", REPORT, expected)
    codes = [f["firm"]["code"] for f in report["firms"]]
    if who == "regulator":
        assert {"EXF", "EXG"} <= set(codes)
    else:
        assert codes == [who.upper()]


def test_performance_export_has_the_firm_s_figures(api: Api, data: Data) -> None:
    rows = sheet(download(api, data.tokens["exf"], "/v1/reports/firm-performance.xlsx", REPORT))
    (row,) = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    assert row["企业编号 Firm code"] == "EXF"
    assert row["工单数 Work orders"] == 4 and row["误报数 False alarms"] == 1
    assert row["按事件代码 By event code"] == "EL.TRAPPED: 3; EL.DOOR_FAULT: 1"
    # 2400 s after the 1800 s limit (and recorded), and the open door fault past its limit
    assert row["到场时限未达标 Arrival limit missed"] == 2
    assert row["投诉受理 Complaints received"] == 1
    assert row["投诉按时办结 Complaints handled in time"] == 1
    assert row["投诉按时率 Complaints share in time"] == 1.0
    r = get(api, data.tokens["exf"], "/v1/reports/firm-performance.csv", REPORT)
    assert r.headers["content-disposition"] == (
        'attachment; filename="firm-performance_2023-06-01_2023-07-01.csv";'
        " filename*=UTF-8''%E4%BC%81%E4%B8%9A%E7%BB%A9%E6%95%88"
        "_firm-performance_2023-06-01_2023-07-01.csv"
    )


def cells(rows: list[list[Any]]) -> Iterator[Any]:
    return (v for row in rows for v in row)


def test_formula_payloads_come_out_as_text_in_both_formats(api: Api, data: Data) -> None:
    token = data.tokens["exf"]
    wo_xlsx = download(api, token, "/v1/exports/work-orders.xlsx", PERIOD)
    wo = sheet(wo_xlsx)
    assert "'" + HYPERLINK in cells(wo) and "'-2" in cells(wo)
    perf = sheet(download(api, token, "/v1/reports/firm-performance.xlsx", REPORT))
    assert perf[1][2:4] == ["'+1+1", "'@SUM(A1)"]
    alarms = sheet(download(api, token, "/v1/exports/alarms.xlsx", PERIOD))
    assert "'@SUM(A1)" in cells(alarms)
    as_text = table(download(api, token, "/v1/exports/work-orders.csv", PERIOD))
    assert "'" + HYPERLINK in cells(as_text) and "'-2" in cells(as_text)
    perf_csv = table(download(api, token, "/v1/reports/firm-performance.csv", REPORT))
    assert perf_csv[1][2:4] == ["'+1+1", "'@SUM(A1)"]
    assert "'\t=1" in cells(wo) and "'\t=1" in cells(as_text)
    for rows in (wo, perf, alarms, as_text, perf_csv):
        for v in cells(rows):
            if isinstance(v, str):  # (no figure here is negative: a CSV's numbers pass too)
                assert not v.startswith(exports.TRIGGERS), v
                assert v.lstrip()[:1] not in ("=", "+", "-", "@"), v
    with zipfile.ZipFile(io.BytesIO(wo_xlsx)) as z:
        assert all(b"<f>" not in z.read(n) for n in z.namelist() if n.startswith("xl/"))


def test_another_firm_gets_none_of_this_firm_s_rows(api: Api, data: Data) -> None:
    for who in ("exg", "firm_f01"):
        token = data.tokens.get(who) or api.tokens[who]
        wo = sheet(download(api, token, "/v1/exports/work-orders.xlsx", PERIOD))
        ids = {r[0] for r in wo[1:]}
        assert not ids & set(data.work_orders)
        alarms = table(download(api, token, "/v1/exports/alarms.csv", PERIOD))
        assert all(r[3] != str(data.community) for r in alarms[1:])
        perf = table(download(api, token, "/v1/reports/firm-performance.csv", REPORT))
        assert "EXF" not in [r[1] for r in perf[1:]]
    mine = sheet(download(api, data.tokens["exg"], "/v1/exports/work-orders.xlsx", PERIOD))
    assert [r[0] for r in mine[1:]] == [data.other_work_order]
    # Asking for the other firm's community by id changes nothing: it is out of scope.
    asked = {**PERIOD, "community_id": data.community}
    assert len(table(download(api, data.tokens["exg"], "/v1/exports/work-orders.csv", asked))) == 1


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        (
            "/v1/exports/work-orders.xlsx",
            {"opened_from": "2023-06-01T00:00:00"},
            "query.opened_from",
        ),
        ("/v1/exports/work-orders.csv", {"status": "lost"}, "query.status"),
        ("/v1/exports/work-orders.csv", {"community_id": "0"}, "query.community_id"),
        ("/v1/exports/alarms.csv", {"state": "gone"}, "query.state"),
        ("/v1/exports/alarms.xlsx", {"opened_until": "yesterday"}, "query.opened_until"),
        ("/v1/exports/work-orders.pdf", {}, "path.fmt"),
        (
            "/v1/reports/firm-performance.xlsx",
            {"from": "2023-06-01", "to": "2023-06-01"},
            "query.to",
        ),
        ("/v1/reports/firm-performance.csv", {"to": "2023-06-01"}, "query.from"),
        (
            "/v1/reports/firm-performance.csv",
            {"from": "2023-01-01", "to": "2024-06-01"},
            "query.to",
        ),
    ],
)
def test_bad_filters_are_refused_naming_the_field(
    api: Api, data: Data, url: str, params: dict[str, str], field: str
) -> None:
    r = get(api, data.tokens["regulator"], url, params)
    assert r.status_code == 422, r.text
    assert field in [f["field"].split("[")[0] for f in r.json()["error"]["fields"]]


def test_more_rows_than_the_cap_are_refused_naming_the_period(
    api: Api, data: Data, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "MAX_ROWS", 2)
    for url in ("/v1/exports/work-orders.xlsx", "/v1/exports/alarms.csv"):
        r = get(api, data.tokens["exf"], url, PERIOD)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert [f["field"] for f in error["fields"]] == ["query.opened_from", "query.opened_until"]
        assert "more than 2 " in error["message"] and "narrow the period" in error["message"]
    one = {**PERIOD, "status": "false_alarm"}
    assert get(api, data.tokens["exf"], "/v1/exports/work-orders.csv", one).status_code == 200


def test_callers_need_a_token_and_the_list_s_permission(api: Api, data: Data) -> None:
    for url in (
        "/v1/exports/work-orders.csv",
        "/v1/exports/alarms.xlsx",
        "/v1/reports/firm-performance.xlsx?from=2023-06-01&to=2023-07-01",
    ):
        r = api.anonymous().get(url)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
    assert get(api, data.tokens["unit"], "/v1/exports/alarms.csv").status_code == 403
    unit = get(api, data.tokens["unit"], "/v1/reports/firm-performance.csv", REPORT)
    assert unit.status_code == 200 and len(table(unit.content)) == 1  # the header only
