"""Dashboards: the firm's operations overview (pure): devices online and offline, open alarms
by severity, work orders due and overdue, recent events."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable

from dashboards import alarms, variables
from dashboards.limits import online_sql
from dashboards.model import (
    Dashboard,
    Kind,
    Panel,
    Query,
    Row,
    ValueMapping,
    series_color,
)
from responsibility.model import Entry

UID = "sw-operations"
DUE_SOON = "1 hour"


def build(entries: Iterable[Entry]) -> Dashboard:
    entries = tuple(entries)
    online = online_sql(entries, "d")
    in_area = "community_code IN ($community)"
    devices = Panel(
        Kind.STAT,
        "设备在线 Devices online / offline",
        (
            Query(
                f'SELECT count(*) FILTER (WHERE {online}) AS "在线 online",'
                f' count(*) FILTER (WHERE NOT {online}) AS "离线 offline"'
                f" FROM dash.devices d WHERE d.active AND d.{in_area}",
                "table",
            ),
        ),
        width=6,
        height=5,
        description="Offline: silent longer than the responsibility list's offline rule for"
        " the device class (a number of reporting intervals).",
        overrides=(
            series_color("在线 online", "green"),
            series_color("离线 offline", "red"),
        ),
    )
    by_class = Panel(
        Kind.BARGAUGE,
        "在线率 Online by device class",
        (
            Query(
                f"SELECT d.device_class AS class, round(100.0 * avg(({online})::int), 1) AS online"
                f" FROM dash.devices d WHERE d.active AND d.{in_area} GROUP BY 1 ORDER BY 1",
                "table",
            ),
        ),
        width=6,
        height=5,
        unit="percent",
        min=0,
        max=100,
        color_mode="continuous-RdYlGr",
    )
    open_alarms = Panel(
        Kind.STAT,
        "未关闭告警 Open alarms by severity",
        (
            Query(
                f"SELECT {alarms.by_severity()} FROM dash.alarms"
                f" WHERE state <> 'cleared' AND {in_area}",
                "table",
            ),
        ),
        width=6,
        height=5,
        overrides=alarms.severity_overrides(),
    )
    orders = Panel(
        Kind.STAT,
        "工单 Work orders due / overdue",
        (
            Query(
                'SELECT count(*) AS "未关闭 open",'
                f" count(*) FILTER (WHERE next_due > now() AND next_due <= now() + interval"
                f" '{DUE_SOON}') AS \"即将到期 due within {DUE_SOON}\","
                ' count(*) FILTER (WHERE next_due <= now()) AS "超期 overdue"'
                f" FROM dash.work_orders WHERE closed_at IS NULL AND {in_area}",
                "table",
            ),
        ),
        width=6,
        height=5,
        description="Due: the earliest limit still running (response, arrival or resolution).",
        overrides=(
            series_color("未关闭 open", "blue"),
            series_color(f"即将到期 due within {DUE_SOON}", "orange"),
            series_color("超期 overdue", "red"),
        ),
    )
    opened = Panel(
        Kind.TIMESERIES,
        "告警趋势 Alarms opened",
        (
            Query(
                "SELECT $__timeGroupAlias(opened_at, $__interval), severity AS metric,"
                " count(*) AS value FROM dash.alarms"
                f" WHERE $__timeFilter(opened_at) AND {in_area} GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=24,
        height=7,
        bars=True,
        overrides=alarms.severity_overrides(),
        max_data_points=200,
    )
    events = Panel(
        Kind.TABLE,
        "最近事件 Recent device events",
        (
            Query(
                'SELECT ts AS "时间 time", community_name AS "小区 community",'
                ' device AS "设备 device", location AS "位置 location",'
                ' code AS "代码 code", coalesce(name, code) AS "事件 event", active'
                f" FROM dash.events WHERE $__timeFilter(ts) AND {in_area}"
                " ORDER BY ts DESC LIMIT 200",
                "table",
            ),
        ),
        width=12,
        height=10,
        mappings=(
            ValueMapping("true", "触发 raised", "red"),
            ValueMapping("false", "恢复 cleared", "green"),
        ),
    )
    alarm_list = Panel(
        Kind.TABLE,
        "未关闭告警 Open alarms",
        (
            Query(
                'SELECT severity AS "级别 severity", event_code AS "事件 event",'
                ' community_name AS "小区 community", device AS "设备 device",'
                ' location AS "位置 location", opened_at AS "发生 opened",'
                ' state AS "状态 state", triggers AS "次数 triggers"'
                f" FROM dash.alarms WHERE state <> 'cleared' AND {in_area}"
                " ORDER BY severity, opened_at DESC LIMIT 200",
                "table",
            ),
        ),
        width=12,
        height=10,
    )
    return Dashboard(
        UID,
        "运营总览 Firm operations overview",
        (
            Row("现在 Now"),
            devices,
            by_class,
            open_alarms,
            orders,
            Row("时段 In the time range"),
            opened,
            events,
            alarm_list,
        ),
        description="What the duty room watches: devices heard from, alarms, work orders.",
        tags=(alarms.TAG, "firm"),
        variables=variables.areas(),
        annotations=(alarms.annotation(in_area),),
        links=alarms.LINKS,
    )
