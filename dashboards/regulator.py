"""Dashboards: the county regulator's overview (pure): coverage by township, firms ranked by
compliance with the list's time limits, emergency-fund and reportable cases, and the platform's
own open alarms."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable

from core.catalogue import DeviceClass
from core.severity import Severity
from dashboards import alarms, variables
from dashboards.limits import online_sql
from dashboards.model import Dashboard, Kind, Panel, Query, Row, ValueMapping, series_color
from dashboards.work_orders import compliance_sql
from responsibility.model import Entry

UID = "sw-regulator"
IN_AREA = "community_code IN ($community)"


def build(entries: Iterable[Entry]) -> Dashboard:
    entries = tuple(entries)
    online = online_sql(entries, "d")
    urgent = (Severity.P0, Severity.P1)
    summary = Panel(
        Kind.STAT,
        "全县 County now",
        (
            Query(
                "SELECT (SELECT count(*) FROM dash.communities WHERE code IN ($community))"
                ' AS "小区 communities",'
                f" (SELECT count(*) FROM dash.devices d WHERE d.active AND d.{IN_AREA})"
                ' AS "设备 devices",'
                f" (SELECT round(100.0 * avg(({online})::int), 1) FROM dash.devices d"
                f' WHERE d.active AND d.{IN_AREA}) AS "在线率 online %",'
                " (SELECT count(*) FROM dash.alarms WHERE state <> 'cleared'"
                f" AND severity IN ({', '.join(repr(str(s)) for s in urgent)}) AND {IN_AREA})"
                f' AS "{"/".join(urgent)} 告警 open alarms",'
                " (SELECT count(*) FROM dash.work_orders WHERE emergency_fund"
                f' AND closed_at IS NULL AND {IN_AREA}) AS "应急资金 emergency-fund cases"',
                "table",
            ),
        ),
        width=24,
        height=5,
        overrides=(
            series_color(f"{'/'.join(urgent)} 告警 open alarms", "red"),
            series_color("应急资金 emergency-fund cases", "orange"),
        ),
    )
    per_class = ", ".join(
        f"count(d.id) FILTER (WHERE d.device_class = '{c}') AS \"{c}\"" for c in DeviceClass
    )
    coverage = Panel(
        Kind.TABLE,
        "覆盖 Coverage by township",
        (
            Query(
                'SELECT c.township_name AS "乡镇 township", count(DISTINCT c.id) AS "小区 communities",'
                ' count(DISTINCT c.firm_id) AS "企业 firms", count(d.id) AS "设备 devices",'
                f' {per_class}, round(100.0 * avg(({online})::int), 1) AS "在线率 online %"'
                " FROM dash.communities c LEFT JOIN dash.devices d"
                " ON d.community_id = c.id AND d.active"
                " WHERE c.code IN ($community) GROUP BY 1 ORDER BY 1",
                "table",
            ),
        ),
        width=24,
        height=7,
    )
    firms = Panel(
        Kind.BARGAUGE,
        "企业时限达标率 Firms ranked by limits met",
        (
            Query(
                compliance_sql(
                    "w.firm_name AS firm", f"$__timeFilter(w.opened_at) AND w.{IN_AREA}"
                ),
                "table",
            ),
        ),
        width=12,
        height=8,
        description="Share of response, arrival and resolution limits met by work orders"
        " opened in the time range (limits still running are not counted).",
        unit="percent",
        min=0,
        max=100,
        color_mode="continuous-RdYlGr",
    )
    offline = Panel(
        Kind.BARGAUGE,
        "离线设备 Devices offline by community",
        (
            Query(
                f"SELECT d.community_name AS community, count(*) FILTER (WHERE NOT {online})"
                f" AS offline FROM dash.devices d WHERE d.active AND d.{IN_AREA}"
                " GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20",
                "table",
            ),
        ),
        width=12,
        height=8,
        color_mode="continuous-GrYlRd",
    )
    cases = Panel(
        Kind.TABLE,
        "应急维修资金与上报 Emergency-fund and reportable cases",
        (
            Query(
                'SELECT opened_at AS "发生 opened", township_name AS "乡镇 township",'
                ' community_name AS "小区 community", firm_name AS "企业 firm",'
                ' event_code AS "事件 event", severity AS "级别 severity",'
                ' status AS "状态 status", emergency_fund AS "应急资金 emergency fund",'
                ' notify_regulator AS "上报 reported", closed_at AS "关闭 closed"'
                " FROM dash.work_orders WHERE (emergency_fund OR notify_regulator)"
                f" AND $__timeFilter(opened_at) AND {IN_AREA} ORDER BY opened_at DESC LIMIT 500",
                "table",
            ),
        ),
        width=24,
        height=9,
    )
    platform = Panel(
        Kind.TABLE,
        "平台告警 Platform alarms",
        (
            Query(
                'SELECT kind AS "类型 kind", subject AS "对象 subject",'
                ' severity AS "级别 severity", state AS "状态 state", opened_at AS "发生 opened",'
                ' triggers AS "次数 triggers", acknowledged_by AS "确认人 acknowledged by"'
                " FROM dash.platform_alarms WHERE state <> 'cleared'"
                " ORDER BY severity, opened_at DESC LIMIT 200",
                "table",
            ),
        ),
        width=24,
        height=6,
        description="The platform's own trouble, open now, whatever the time range: no data"
        " reaching analytics (feed_silent), many devices silent at once (mass_silence), a"
        " device's detector set aside (detector_quarantined), a stage restarted"
        " (stage_restarted), a learned model raising more false alarms than its target"
        " (model_drift), a site gateway's buffer dropping data (gateway_dropped) or its clock"
        " off the platform's window (gateway_clock). Not a firm's fault and no work order: the platform operators on"
        " shift are told (docs/operations.md, sections 12 and 13).",
        mappings=(
            ValueMapping("active", "未确认 active", "red"),
            ValueMapping("acknowledged", "已确认 acknowledged", "orange"),
        ),
    )
    trend = Panel(
        Kind.TIMESERIES,
        "告警 Alarms opened by township",
        (
            Query(
                "SELECT $__timeGroupAlias(opened_at, $__interval), township_name AS metric,"
                f" count(*) AS value FROM dash.alarms WHERE $__timeFilter(opened_at)"
                f" AND {IN_AREA} GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=24,
        bars=True,
        max_data_points=200,
    )
    return Dashboard(
        UID,
        "县级监管 County regulator overview",
        (
            summary,
            platform,
            coverage,
            Row("企业 Firms"),
            firms,
            offline,
            cases,
            trend,
        ),
        description="For the county housing bureau: coverage, firms' performance, emergency-fund"
        " cases, the platform's own alarms.",
        tags=(alarms.TAG, "regulator"),
        variables=variables.areas(),
        annotations=(alarms.annotation(IN_AREA),),
        links=alarms.LINKS,
        time_from="now-7d",
    )
