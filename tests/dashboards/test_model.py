"""The dashboards as JSON: Grafana's model (schema, grid, data source, variables, annotations),
and limits that follow the responsibility list and the catalogue rather than typed numbers."""

from __future__ import annotations

import itertools
import json
import re
from importlib import resources
from typing import Any

import pytest

from core.catalogue import DeviceClass
from core.severity import Severity
from dashboards import elevators, water
from dashboards.datasource import REF
from dashboards.folders import all_dashboards
from dashboards.limits import Bound, metric_steps, online_sql, steps
from dashboards.model import (
    DATASOURCE_TYPE,
    SCHEMA_VERSION,
    Dashboard,
    Kind,
    Panel,
    Query,
    Row,
    Step,
    dashboard_json,
    layout,
)
from responsibility.loader import ResponsibilityList, default_list, parse_list

PLACED = all_dashboards(default_list())
KINDS = {"timeseries", "stat", "table", "bargauge", "state-timeline", "row"}
BASE_TABLE = re.compile(
    r"(?:FROM|JOIN)\s+(?!dash\.)(?:public\.)?(readings|readings_1m|latest_readings|devices|device_presence"
    r"|events|device_status|alarms|work_orders|communities|buildings|firms|regions|metrics)\b"
)


def _json(d: Dashboard) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(dashboard_json(d, REF)))
    return out


def _list_with(replace: tuple[str, str]) -> ResponsibilityList:
    text = resources.files("responsibility").joinpath("default.yaml").read_text(encoding="utf-8")
    assert replace[0] in text
    return parse_list(text.replace(*replace), "edited.yaml")


@pytest.mark.parametrize("placed", PLACED, ids=lambda p: p.dashboard.uid)
def test_each_dashboard_is_grafana_dashboard_json(placed: Any) -> None:
    d = _json(placed.dashboard)
    assert d["schemaVersion"] == SCHEMA_VERSION == 39
    assert d["uid"] == placed.dashboard.uid and d["id"] is None
    panels = d["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert {p["type"] for p in panels} <= KINDS
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(g["x"] + i, g["y"] + j) for i in range(g["w"]) for j in range(g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": DATASOURCE_TYPE, "uid": "shouwang"}
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"]
            assert t["format"] in ("time_series", "table") and t["rawQuery"] is True
            assert not BASE_TABLE.search(t["rawSql"]), "panels read the dash views only"
            expected = "time_series" if p["type"] in ("timeseries", "state-timeline") else "table"
            assert t["format"] == expected, p["title"]
    annotations = d["annotations"]["list"]
    assert annotations[0]["builtIn"] == 1
    alarms = [a for a in annotations if a.get("name") == "告警 Alarms"]
    assert len(alarms) == 1 and "FROM dash.alarms" in alarms[0]["target"]["rawSql"]
    assert "$__timeFrom()" in alarms[0]["target"]["rawSql"]


@pytest.mark.parametrize("placed", PLACED, ids=lambda p: p.dashboard.uid)
def test_variables_are_chained_multi_value_queries_with_all(placed: Any) -> None:
    variables = _json(placed.dashboard)["templating"]["list"]
    names = [v["name"] for v in variables]
    assert names[:2] == ["township", "community"]
    assert names in (["township", "community"], ["township", "community", "building", "device"])
    for v in variables:
        assert v["type"] == "query" and v["multi"] and v["includeAll"]
        assert v["current"]["value"] == ["$__all"]
        assert v["datasource"]["uid"] == "shouwang"
    for prev, v in itertools.pairwise(variables):
        assert f"IN (${prev['name']})" in v["query"], f"{v['name']} is chained on {prev['name']}"
    used = {
        m
        for p in placed.dashboard.panels
        if isinstance(p, Panel)
        for q in p.queries
        for m in re.findall(r"\$(\w+)", q.sql)
    }
    assert names[-1] in used, "panels filter on the last variable of the chain"


def test_layout_wraps_rows_of_24_columns() -> None:
    a = Panel(Kind.STAT, "a", (Query("SELECT 1", "table"),), width=16, height=4)
    b = Panel(Kind.STAT, "b", (Query("SELECT 1", "table"),), width=16, height=6)
    grid = layout((a, b, Row("r"), a))
    assert grid == [
        {"h": 4, "w": 16, "x": 0, "y": 0},
        {"h": 6, "w": 16, "x": 0, "y": 4},
        {"h": 1, "w": 24, "x": 0, "y": 10},
        {"h": 4, "w": 16, "x": 0, "y": 11},
    ]
    with pytest.raises(ValueError, match="width"):
        Panel(Kind.STAT, "wide", (), width=25)


def test_threshold_steps_take_the_worst_alarm_of_each_band() -> None:
    hydrant = (
        Bound(0.25, "below", Severity.P1, "FW.HYDRANT_CRITICAL"),
        Bound(0.35, "below", Severity.P2, "FW.HYDRANT_LOW"),
    )
    assert steps(hydrant) == (Step(None, "red"), Step(0.25, "orange"), Step(0.35, "green"))
    band = (Bound(6.5, "below", Severity.P2, "WQ.PH"), Bound(8.5, "above", Severity.P2, "WQ.PH"))
    assert steps(band) == (Step(None, "orange"), Step(6.5, "green"), Step(8.5, "orange"))
    assert steps(()) == ()


def test_water_quality_limits_are_the_lists_gb_5749_limits() -> None:
    entries = default_list().entries.values()
    assert metric_steps(entries, DeviceClass.WATER_QUALITY, "residual_chlorine") == (
        Step(None, "red"),
        Step(0.05, "green"),
        Step(2.0, "red"),
    )
    assert metric_steps(entries, DeviceClass.WATER_QUALITY, "turbidity") == (
        Step(None, "green"),
        Step(1.0, "red"),
    )


def _panel(d: Dashboard, title_part: str) -> Panel:
    found = [p for p in d.panels if isinstance(p, Panel) and title_part in p.title]
    assert len(found) == 1, title_part
    return found[0]


def test_drawn_limits_follow_an_edited_list() -> None:
    edited = _list_with(("metric: turbidity, above: 1.0", "metric: turbidity, above: 0.8"))
    panel = _panel(water.build(edited.entries.values()), "turbidity")
    assert panel.thresholds == (Step(None, "green"), Step(0.8, "red"))
    assert panel.show_thresholds and panel.unit == "suffix:NTU"  # the catalogue's unit


def test_rescue_times_are_judged_by_the_lists_limits() -> None:
    default = elevators.build(default_list().entries.values())
    table = _panel(default, "Trapped-passenger incidents")
    limits = {
        o.match: dict(o.properties)["thresholds"]["steps"][1]["value"] for o in table.overrides
    }
    assert limits == {
        "响应 response (min)": 1.0,
        "到场 arrival (min)": 30.0,
        "解困 released (min)": 120.0,
    }
    assert "'EL.TRAPPED'" in table.queries[0].sql

    edited = _list_with(
        (
            "arrival: {value: 30, unit: calendar_minutes}     # TSG",
            "arrival: {value: 15, unit: calendar_minutes}     # TSG",
        )
    )
    table = _panel(elevators.build(edited.entries.values()), "Trapped-passenger incidents")
    assert {
        o.match: dict(o.properties)["thresholds"]["steps"][1]["value"] for o in table.overrides
    }["到场 arrival (min)"] == 15.0


def test_overspeed_and_offline_rules_come_from_the_list() -> None:
    entries = tuple(_list_with(("factor: 1.2", "factor: 1.3")).entries.values())
    speed = _panel(elevators.build(entries), "Speed")
    assert speed.thresholds == (Step(None, "green"), Step(1.3, "red"))
    online = online_sql(entries)
    assert "WHEN 'elevator' THEN 6 " in online and "report_interval_s" in online


def test_the_limits_table_lists_every_work_order_entry() -> None:
    lst = default_list()
    d = next(p.dashboard for p in PLACED if p.dashboard.uid == "sw-work-orders")
    table = _panel(d, "Time limits")
    assert lst.version in table.title
    for e in lst.entries.values():
        assert (f"'{e.code}'" in table.queries[0].sql) == e.work_order
