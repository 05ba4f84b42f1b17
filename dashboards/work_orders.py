"""Dashboards: work orders and their time limits (pure): open and overdue orders, compliance
with the response / arrival / resolution limits, missed limits, and the limits in force."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from dashboards import alarms, variables
from dashboards.model import (
    Dashboard,
    Kind,
    Panel,
    Query,
    Row,
    Step,
    column_thresholds,
    series_color,
)
from responsibility.model import Entry, Limit

UID = "sw-work-orders"
IN_AREA: Final = "w.community_code IN ($community)"
# One row per limit of a work order: (kind, due, done). A limit is decided once it is met or
# has run out; false alarms are not held to limits (as analytics' breach records).
LIMITS: Final = (
    "CROSS JOIN LATERAL (VALUES ('response', w.response_due, w.responded_at),"
    " ('arrival', w.arrival_due, w.on_site_at), ('resolution', w.resolution_due, w.closed_at))"
    " AS l(kind, due, done)"
)
DECIDED: Final = (
    "l.due IS NOT NULL AND w.status <> 'false_alarm' AND (l.done IS NOT NULL OR l.due < now())"
)
MET: Final = "coalesce(l.done <= l.due, false)::int"
KINDS: Final = (
    ("response", "响应 response"),
    ("arrival", "到场 arrival"),
    ("resolution", "办结 resolution"),
)


def compliance_sql(group: str | None, where: str) -> str:
    """Share of decided limits met, in percent (per ``group`` if given)."""
    head = f"{group}, " if group else ""
    tail = " GROUP BY 1 ORDER BY 2 DESC" if group else ""
    return (
        f'SELECT {head}round(100.0 * avg({MET}), 1) AS "达标率 compliance"'
        f" FROM dash.work_orders w {LIMITS} WHERE {DECIDED} AND {where}{tail}"
    )


def _limit_text(limit: Limit | None) -> str:
    return "" if limit is None else str(limit)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def limits_table(entries: Iterable[Entry], version: str) -> Panel:
    """The list's limits as a table: generated from the list, so always the limits in force."""
    rows = ", ".join(
        "("
        + ", ".join(
            _literal(v)
            for v in (
                e.code,
                f"{e.name.zh} {e.name.en}",
                str(e.severity),
                str(e.responsible),
                _limit_text(e.limits.response),
                _limit_text(e.limits.arrival),
                _limit_text(e.limits.resolution),
            )
        )
        + ")"
        for e in sorted(entries, key=lambda e: e.code)
        if e.work_order
    )
    columns = '"代码 code", "名称 name", "级别 severity", "责任方 responsible", ' + ", ".join(
        f'"{label}"' for _, label in KINDS
    )
    return Panel(
        Kind.TABLE,
        f"处置时限 Time limits (responsibility list {version})",
        (Query(f"SELECT * FROM (VALUES {rows}) AS v({columns})", "table"),),
        width=24,
        height=10,
    )


def build(entries: Iterable[Entry], version: str) -> Dashboard:
    entries = tuple(entries)
    counts = Panel(
        Kind.STAT,
        "工单 Work orders",
        (
            Query(
                'SELECT count(*) FILTER (WHERE w.closed_at IS NULL) AS "未关闭 open",'
                " count(*) FILTER (WHERE w.closed_at IS NULL AND w.next_due <= now())"
                ' AS "超期 overdue",'
                ' count(*) FILTER (WHERE $__timeFilter(w.opened_at)) AS "新建 opened",'
                ' count(*) FILTER (WHERE $__timeFilter(w.closed_at)) AS "关闭 closed"'
                f" FROM dash.work_orders w WHERE {IN_AREA}",
                "table",
            ),
        ),
        width=12,
        height=5,
        overrides=(series_color("超期 overdue", "red"), series_color("未关闭 open", "blue")),
    )
    by_kind = ", ".join(
        f"round(100.0 * avg({MET}) FILTER (WHERE l.kind = '{k}'), 1) AS \"{label}\""
        for k, label in KINDS
    )
    compliance = Panel(
        Kind.STAT,
        "达标率 Limits met (orders opened in range)",
        (
            Query(
                f"SELECT {by_kind} FROM dash.work_orders w {LIMITS}"
                f" WHERE {DECIDED} AND $__timeFilter(w.opened_at) AND {IN_AREA}",
                "table",
            ),
        ),
        width=12,
        height=5,
        unit="percent",
        min=0,
        max=100,
        color_mode="continuous-RdYlGr",
    )
    opened = Panel(
        Kind.TIMESERIES,
        "新建工单 Work orders opened",
        (
            Query(
                "SELECT $__timeGroupAlias(w.opened_at, $__interval), w.severity AS metric,"
                " count(*) AS value FROM dash.work_orders w"
                f" WHERE $__timeFilter(w.opened_at) AND {IN_AREA} GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=12,
        bars=True,
        overrides=alarms.severity_overrides(),
        max_data_points=200,
    )
    by_party = Panel(
        Kind.BARGAUGE,
        "责任方达标率 Limits met by responsible party",
        (
            Query(
                compliance_sql(
                    "w.responsible_party AS party", f"$__timeFilter(w.opened_at) AND {IN_AREA}"
                ),
                "table",
            ),
        ),
        width=12,
        unit="percent",
        min=0,
        max=100,
        color_mode="continuous-RdYlGr",
    )
    left = "剩余 minutes left"
    open_orders = Panel(
        Kind.TABLE,
        "未关闭工单 Open work orders",
        (
            Query(
                'SELECT w.id AS "工单 order", w.severity AS "级别 severity",'
                ' w.event_code AS "事件 event", w.community_name AS "小区 community",'
                ' w.device AS "设备 device", w.location AS "位置 location",'
                ' w.status AS "状态 status", w.responsible_party AS "责任方 responsible",'
                ' w.opened_at AS "发生 opened", w.next_due AS "下一时限 next due",'
                f' round((extract(epoch FROM w.next_due - now()) / 60)::numeric) AS "{left}"'
                f" FROM dash.work_orders w WHERE w.closed_at IS NULL AND {IN_AREA}"
                " ORDER BY w.next_due LIMIT 500",
                "table",
            ),
        ),
        width=24,
        height=9,
        description="Minutes left until the next limit runs out; negative: overdue.",
        overrides=(column_thresholds(left, (Step(None, "red"), Step(0, "green"))),),
    )
    late = "超时 minutes late"
    missed = Panel(
        Kind.TABLE,
        "超时 Limits missed (orders opened in range)",
        (
            Query(
                'SELECT w.opened_at AS "发生 opened", w.id AS "工单 order",'
                ' w.event_code AS "事件 event", w.community_name AS "小区 community",'
                ' w.responsible_party AS "责任方 responsible", l.kind AS "时限 limit",'
                ' l.due AS "应于 due", l.done AS "完成 done",'
                f" round((extract(epoch FROM coalesce(l.done, now()) - l.due) / 60)::numeric)"
                f' AS "{late}" FROM dash.work_orders w {LIMITS}'
                f" WHERE {DECIDED} AND coalesce(l.done, now()) > l.due"
                f" AND $__timeFilter(w.opened_at) AND {IN_AREA}"
                " ORDER BY w.opened_at DESC LIMIT 500",
                "table",
            ),
        ),
        width=24,
        height=9,
    )
    return Dashboard(
        UID,
        "工单与时限 Work orders and time limits",
        (
            counts,
            compliance,
            opened,
            by_party,
            open_orders,
            Row("时限 Limits"),
            missed,
            limits_table(entries, version),
        ),
        description="Work orders filed from alarms, against the responsibility list's limits.",
        tags=(alarms.TAG, "firm", "sla"),
        variables=variables.areas(),
        annotations=(alarms.annotation("community_code IN ($community)"),),
        links=alarms.LINKS,
    )
