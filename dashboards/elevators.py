"""Dashboards: elevators (pure): the state of each lift, faults over time, trapped-passenger
incidents with their rescue times against the list's limits, trips, and speed against the
overspeed factor."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from core.catalogue import DeviceClass
from dashboards import alarms, variables
from dashboards.limits import (
    metric,
    metric_in,
    metric_is,
    minutes,
    overspeed_factor,
    sql_list,
    title,
    trapped_codes,
)
from dashboards.model import (
    Dashboard,
    Kind,
    Override,
    Panel,
    Query,
    Row,
    Step,
    ValueMapping,
    column_thresholds,
    series_color,
    thresholds_json,
)
from dashboards.telemetry import PER_DEVICE, rollup_rows
from responsibility.model import Entry

UID = "sw-elevators"
E = DeviceClass.ELEVATOR
NORMAL_SERVICE: Final = 1  # service_mode 1: normal service (GB/T 24476 schemas)
# A lift's state in an interval, worst first; the panel's value mappings name them.
STATES: Final = (
    ValueMapping("4", "断电 power cut", "red"),
    ValueMapping("3", "非正常服务 not in normal service", "orange"),
    ValueMapping("1", "运行 running", "green"),
    ValueMapping("2", "开门 doors open", "light-green"),
    ValueMapping("0", "停靠 idle", "blue"),
)
LIFTS = f"device_class = '{E}' AND device IN ($device)"


def _minutes_between(start: str, end: str) -> str:
    return f"round((extract(epoch FROM {end} - {start}) / 60)::numeric, 1)"


def _over(limit: float | None) -> tuple[Step, ...]:
    """Green up to a limit in minutes, red beyond it."""
    if limit is None:
        return ()
    return (Step(None, "green"), Step(limit, "red"))


def _state_rules() -> tuple[tuple[str, str], ...]:
    """(condition on a minute row of the rollup, state), worst first: the state of a lift in an
    interval is that of the first condition one of its minutes meets, else idle."""
    return (
        (f"{metric_is(E, 'power')} AND min = 0", "4"),
        (
            f"{metric_is(E, 'service_mode')}"
            f" AND (min <> {NORMAL_SERVICE} OR max <> {NORMAL_SERVICE})",
            "3",
        ),
        (f"{metric_is(E, 'car_status')} AND max = 1", "1"),
        (f"{metric_is(E, 'door_state')} AND (min <> 0 OR max <> 0)", "2"),
    )


def _state_panel() -> Panel:
    rules = _state_rules()
    # The worst condition met in the interval, as a rank (the first rule ranks highest), then
    # the rank as its state: one aggregate per row instead of one per condition.
    ranks = " ".join(f"WHEN {cond} THEN {len(rules) - i}" for i, (cond, _) in enumerate(rules))
    states = " ".join(f"WHEN {len(rules) - i} THEN {state}" for i, (_, state) in enumerate(rules))
    # Only rows that meet a condition count, and the power rows (one a minute from every lift
    # heard from) so that an idle interval still has a row. Not fenced (rollup_rows): with
    # four metrics the planner already reads them through the metric index, in parallel.
    rows = " OR ".join(f"({cond})" for cond, _ in rules[1:])
    where = f"({metric_is(E, 'power')} OR {rows})"
    return Panel(
        Kind.STATE_TIMELINE,
        "电梯状态 State of each lift",
        (
            Query(
                f"SELECT $__timeGroupAlias(bucket, $__interval), {PER_DEVICE},"
                f" CASE max(CASE {ranks} ELSE 0 END) {states} ELSE 0 END AS value"
                f" FROM dash.readings_1m WHERE {LIFTS} AND {where}"
                " AND $__timeFilter(bucket) GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=24,
        height=10,
        mappings=STATES,
        max_data_points=100,
    )


def _now_panel() -> Panel:
    shown = ("floor", "car_status", "door_state", "passenger_present", "service_mode", "speed")
    columns = ", ".join(
        f'max(value) FILTER (WHERE {metric_is(E, n)}) AS "{title(metric(E, n))}"' for n in shown
    )
    occupied = title(metric(E, "passenger_present"))
    return Panel(
        Kind.TABLE,
        "当前 Each lift now",
        (
            Query(
                'SELECT device AS "电梯 lift", location AS "位置 location",'
                f' community_name AS "小区 community", {columns}, max(ts) AS "更新 updated"'
                f" FROM dash.latest_readings WHERE {LIFTS} AND {metric_in(E, shown)}"
                " GROUP BY 1, 2, 3 ORDER BY 1",
                "table",
            ),
        ),
        width=24,
        height=8,
        overrides=(
            Override(
                "byName",
                occupied,
                (
                    (
                        "mappings",
                        [
                            {
                                "type": "value",
                                "options": {
                                    "0": {"text": "无 no", "index": 0},
                                    "1": {"text": "有 yes", "index": 1},
                                },
                            }
                        ],
                    ),
                ),
            ),
        ),
    )


def _rescue_panels(entries: tuple[Entry, ...]) -> tuple[Panel, Panel]:
    codes = trapped_codes(entries)
    trapped = [e for e in entries if e.code in codes]

    def limit(kind: str) -> float | None:
        values = [minutes(getattr(e.limits, kind)) for e in trapped]
        known = [v for v in values if v is not None]
        return min(known) if known else None

    response, arrival, resolution = limit("response"), limit("arrival"), limit("resolution")
    col_resp, col_arr, col_res = (
        "响应 response (min)",
        "到场 arrival (min)",
        "解困 released (min)",
    )
    where = f"event_code IN ({sql_list(codes)}) AND {LIFTS}"
    table = Panel(
        Kind.TABLE,
        "困人事件 Trapped-passenger incidents",
        (
            Query(
                'SELECT opened_at AS "发生 opened", community_name AS "小区 community",'
                ' location AS "位置 location", device AS "电梯 lift", status AS "状态 status",'
                f' {_minutes_between("opened_at", "responded_at")} AS "{col_resp}",'
                f' {_minutes_between("opened_at", "on_site_at")} AS "{col_arr}",'
                f' {_minutes_between("opened_at", "closed_at")} AS "{col_res}",'
                ' maintenance_unit AS "维保单位 maintenance unit"'
                f" FROM dash.work_orders WHERE {where} AND $__timeFilter(opened_at)"
                " ORDER BY opened_at DESC",
                "table",
            ),
        ),
        width=16,
        height=8,
        description="Minutes from the alarm; red beyond the responsibility list's limits"
        f" ({', '.join(codes)}).",
        overrides=tuple(
            column_thresholds(col, _over(lim))
            for col, lim in ((col_resp, response), (col_arr, arrival), (col_res, resolution))
            if lim is not None
        ),
    )
    mean_arrival, longest = "平均到场 mean arrival (min)", "最长到场 longest arrival (min)"
    stat = Panel(
        Kind.STAT,
        "困人 Trapped passengers",
        (
            Query(
                'SELECT count(*) AS "困人 incidents",'
                f' avg({_minutes_between("opened_at", "on_site_at")}) AS "{mean_arrival}",'
                f' max({_minutes_between("opened_at", "on_site_at")}) AS "{longest}"'
                f" FROM dash.work_orders WHERE {where} AND $__timeFilter(opened_at)",
                "table",
            ),
        ),
        width=8,
        height=8,
        decimals=1,
        overrides=(
            series_color("困人 incidents", "blue"),
            *(
                Override("byName", name, (("thresholds", thresholds_json(_over(arrival))),))
                for name in (mean_arrival, longest)
                if arrival is not None
            ),
        ),
    )
    return table, stat


def build(entries: Iterable[Entry]) -> Dashboard:
    entries = tuple(entries)
    table, stat = _rescue_panels(entries)
    faults = Panel(
        Kind.TIMESERIES,
        "故障 Lift alarms by event",
        (
            Query(
                "SELECT $__timeGroupAlias(opened_at, $__interval), event_code AS metric,"
                f" count(*) AS value FROM dash.alarms WHERE {LIFTS}"
                " AND $__timeFilter(opened_at) GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=8,
        bars=True,
        max_data_points=200,
    )
    trips = Panel(
        Kind.TIMESERIES,
        "运行次数 Trips",
        (
            Query(
                'SELECT $__timeGroupAlias(bucket, $__interval), sum(trips) AS "运行次数 trips"'
                " FROM (SELECT bucket, last - coalesce(lag(last) OVER (PARTITION BY device"
                ' COLLATE "C" ORDER BY bucket), first) AS trips'
                f" FROM {rollup_rows(metric_is(E, 'trip_count'))} WHERE {LIFTS}) t"
                " WHERE trips >= 0 GROUP BY 1 ORDER BY 1"
            ),
        ),
        width=8,
        bars=True,
        max_data_points=200,
    )
    factor = overspeed_factor(entries)
    speed = Panel(
        Kind.TIMESERIES,
        "速度 Speed ÷ rated speed (max)",
        (
            Query(
                "SELECT $__timeGroupAlias(r.bucket, $__interval),"
                ' max(r.max / d.rated_speed) AS "速度比 speed ratio"'
                f" FROM {rollup_rows(metric_is(E, 'speed'))} JOIN dash.devices d ON d.uid = r.device"
                f" WHERE r.device_class = '{E}' AND r.device IN ($device)"
                " AND d.rated_speed > 0 GROUP BY 1 ORDER BY 1"
            ),
        ),
        width=8,
        description=f"Overspeed alarm above {factor:g} × rated speed (responsibility list).",
        thresholds=(Step(None, "green"), Step(factor, "red")),
        show_thresholds=True,
        min=0,
    )
    return Dashboard(
        UID,
        "电梯 Elevators",
        (
            _state_panel(),
            Row("困人 Trapped passengers"),
            table,
            stat,
            Row("故障与运行 Faults and use"),
            faults,
            trips,
            speed,
            _now_panel(),
        ),
        description="Lift states, faults, trapped-passenger rescues and use.",
        tags=(alarms.TAG, "equipment", "elevator"),
        variables=variables.equipment((E,)),
        annotations=(alarms.annotation(LIFTS),),
        links=alarms.LINKS,
    )
