"""API: spreadsheet exports (CSV or XLSX, ``api.exports``) of the work orders, the alarms and
the firm-performance report, for firms and regulators.

Each mirrors its JSON endpoint: the same role check, scope, filters and figures (the queries are
those routes' own), all matching rows rather than one page, at most ``api.exports.MAX_ROWS``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final, Literal

import anyio.to_thread
from fastapi import APIRouter, Path, Query, Response

from api import exports
from api.deps import AsyncConn, Caller, Db
from api.errors import ERROR_RESPONSES, ApiError, FieldError, invalid
from api.exports import Cell, Column, Table
from api.performance import (
    Count,
    LimitCompliance,
    PeriodError,
    check_period,
    firm_performance,
    scope_for,
)
from api.routes import alarms, work_orders
from api.scope import Action, Where, require
from api.sla import LIMIT_KINDS
from core.workcalendar import SHANGHAI

router = APIRouter(responses=ERROR_RESPONSES)

Format = Annotated[Literal["csv", "xlsx"], Path(description="csv (UTF-8 with BOM) or xlsx")]
FILE: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "the file, as an attachment: CSV or XLSX by the path's extension",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


async def _send(table: Table, fmt: str, name: str, name_zh: str) -> Response:
    """The table as a download named ``<name>.<fmt>`` (``<name_zh>_<name>.<fmt>`` in UTF-8)."""
    render = exports.to_csv if fmt == "csv" else exports.to_xlsx
    media = exports.CSV_MEDIA_TYPE if fmt == "csv" else exports.XLSX_MEDIA_TYPE
    content = await anyio.to_thread.run_sync(render, table)
    disposition = exports.disposition(f"{name}.{fmt}", f"{name_zh}_{name}.{fmt}")
    headers = {"Content-Disposition": disposition, "Cache-Control": "no-store"}
    return Response(content, media_type=media, headers=headers)


def _within_cap(found: int, what: str) -> None:
    cap = exports.MAX_ROWS
    if found > cap:
        message = f"more than {cap:,} {what} match; narrow the period or filter further"
        raise ApiError(
            422,
            "invalid",
            f"query.opened_from, query.opened_until: {message}",
            [
                FieldError(field="query.opened_from", message=message),
                FieldError(field="query.opened_until", message=message),
            ],
        )


def _today() -> str:
    return datetime.now(UTC).astimezone(SHANGHAI).date().isoformat()


async def _lookup(db: Db, query: str, ids: Iterable[int | None]) -> dict[int, tuple[Any, ...]]:
    """Rows of ``query`` (id first) for these ids; the ids come from rows already in scope."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    cur = await db.execute(query, (wanted,))
    return {int(row[0]): tuple(row[1:]) for row in await cur.fetchall()}


_COMMUNITIES: Final = "SELECT id, code, name_zh FROM communities WHERE id = ANY(%s)"
_LOCATIONS: Final = "SELECT id, location FROM devices WHERE id = ANY(%s)"
_NO_COMMUNITY: Final = (None, None)

WORK_ORDER_COLUMNS: Final = (
    Column("工单编号", "Work order"),
    Column("来源", "Source"),
    Column("报警编号", "Alarm"),
    Column("设备编号", "Device"),
    Column("设备位置", "Device location"),
    Column("小区ID", "Community id"),
    Column("小区编号", "Community code"),
    Column("小区名称", "Community"),
    Column("物业企业ID", "Firm id"),
    Column("维保单位ID", "Maintenance unit id"),
    Column("事件代码", "Event code"),
    Column("级别", "Severity"),
    Column("责任方", "Responsible party"),
    Column("监管部门", "Supervisor"),
    Column("状态", "Status"),
    Column.time("开单时间", "Opened"),
    Column.time("响应时限", "Response due"),
    Column.time("到场时限", "Arrival due"),
    Column.time("办结时限", "Resolution due"),
    Column.time("响应时间", "Responded"),
    Column.time("到场时间", "On site"),
    Column.time("关闭时间", "Closed"),
    Column("关闭原因", "Closed reason"),
    Column("动用应急资金", "Emergency fund"),
    Column("通报监管", "Notify regulator"),
    Column("响应时限结果", "Response limit"),
    Column("到场时限结果", "Arrival limit"),
    Column("办结时限结果", "Resolution limit"),
    Column("已记录超时", "Breaches recorded"),
    Column("责任清单版本", "List version"),
)


@router.get(
    "/exports/work-orders.{fmt}", tags=["work orders"], response_class=Response, responses=FILE
)
async def export_work_orders(db: Db, p: Caller, fmt: Format, w: work_orders.Filters) -> Response:
    """Every work order the list (``GET /v1/work-orders``) would give for these filters, newest
    first, with each limit's outcome; more than the cap is refused (docs/api.md, Exports)."""
    require(p, Action.READ_WORK_ORDERS)
    return await work_order_file(db, w, fmt)


async def work_order_file(
    db: AsyncConn,
    w: Where,
    fmt: str,
    keep: Callable[[work_orders.WorkOrder], bool] | None = None,
) -> Response:
    """The work orders matching ``w`` (the list's filters, inside a caller's scope) as a file;
    with ``keep``, those of them it keeps (the firm console's "past a limit"). More than the cap
    matching is refused (422 naming the period)."""
    orders = await work_orders.matching(db, w, exports.MAX_ROWS + 1)
    _within_cap(len(orders), "work orders")
    await work_orders.with_limits(db, orders)
    if keep is not None:
        orders = [o for o in orders if keep(o)]
    places = await _lookup(db, _COMMUNITIES, (o.community_id for o in orders))
    locations = await _lookup(db, _LOCATIONS, (o.device_id for o in orders))
    rows: list[list[Cell]] = []
    for o in orders:
        code, name = places.get(o.community_id, _NO_COMMUNITY)
        outcome = {s.kind: s.outcome for s in o.sla}
        location = locations.get(o.device_id, (None,))[0] if o.device_id else None
        rows.append(
            [
                *(o.id, o.source, o.alarm_id, o.device_uid, location),
                *(o.community_id, code, name, o.firm_id, o.maintenance_unit_id),
                *(o.event_code, o.severity, o.responsible_party, o.supervisor, o.status),
                *(o.opened_at, o.response_due, o.arrival_due, o.resolution_due),
                *(o.responded_at, o.on_site_at, o.closed_at, o.closed_reason),
                *(o.emergency_fund, o.notify_regulator),
                *(outcome.get(k) for k in ("response", "arrival", "resolution")),
                ", ".join(b.limit_kind for b in o.breaches) or None,
                o.list_version,
            ]
        )
    table = Table("Work orders", WORK_ORDER_COLUMNS, rows)
    return await _send(table, fmt, f"work-orders_{_today()}", "工单")


ALARM_COLUMNS: Final = (
    Column("报警编号", "Alarm"),
    Column("设备编号", "Device"),
    Column("设备位置", "Device location"),
    Column("小区ID", "Community id"),
    Column("小区编号", "Community code"),
    Column("小区名称", "Community"),
    Column("事件代码", "Event code"),
    Column("级别", "Severity"),
    Column("状态", "State"),
    Column("检测器", "Detector"),
    Column.time("开始时间", "Opened"),
    Column.time("最近触发", "Last triggered"),
    Column.time("恢复正常", "Normal since"),
    Column.time("消除时间", "Cleared"),
    Column("消除原因", "Cleared reason"),
    Column("触发次数", "Triggers"),
    Column("抖动次数", "Flaps"),
    Column.time("确认时间", "Acknowledged"),
    Column("确认人", "Acknowledged by"),
    Column("工单编号", "Work order"),
    Column("维保期间", "In maintenance"),
    Column("责任清单版本", "List version"),
    Column("详情", "Detail"),
)
_ALARM_FIELDS: Final = (
    ("id", "device_uid"),
    ("event_code", "severity", "state", "detector", "opened_at", "last_triggered_at"),
    ("normal_since", "cleared_at", "cleared_reason", "triggers", "flaps", "acknowledged_at"),
    ("acknowledged_by", "work_order_id", "in_maintenance", "list_version"),
)


@router.get("/exports/alarms.{fmt}", tags=["alarms"], response_class=Response, responses=FILE)
async def export_alarms(db: Db, p: Caller, fmt: Format, w: alarms.Filters) -> Response:
    """Every alarm the list (``GET /v1/alarms``) would give for these filters, newest first;
    more than the cap is refused (docs/api.md, Exports)."""
    require(p, Action.READ_COMMUNITIES)
    found = await alarms.matching(db, w, exports.MAX_ROWS + 1)
    _within_cap(len(found), "alarms")
    places = await _lookup(db, _COMMUNITIES, (a["community_id"] for a in found))
    locations = await _lookup(db, _LOCATIONS, (a["device_id"] for a in found))
    head, times, rest, tail = _ALARM_FIELDS
    rows: list[list[Cell]] = []
    for a in found:
        code, name = places.get(a["community_id"], _NO_COMMUNITY)
        detail = json.dumps(a["detail"], ensure_ascii=False, sort_keys=True, default=str)
        rows.append(
            [
                *(a[k] for k in head),
                locations.get(a["device_id"], (None,))[0],
                *(a["community_id"], code, name),
                *(a[k] for k in times + rest + tail),
                detail,
            ]
        )
    table = Table("Alarms", ALARM_COLUMNS, rows)
    return await _send(table, fmt, f"alarms_{_today()}", "报警")


def _share(zh: str, en: str) -> tuple[Column, Column, Column]:
    return (
        Column(f"{zh}达标", f"{en} met"),
        Column(f"{zh}未达标", f"{en} missed"),
        Column(f"{zh}达标率", f"{en} share met"),
    )


def _times(zh: str, en: str) -> tuple[Column, Column, Column]:
    return (
        Column(f"{zh}样本数", f"{en} samples"),
        Column(f"{zh}中位数（秒）", f"{en} median (s)"),
        Column(f"{zh}P90（秒）", f"{en} p90 (s)"),
    )


PERFORMANCE_COLUMNS: Final = (
    Column("排名", "Rank"),
    Column("企业编号", "Firm code"),
    Column("企业名称", "Firm"),
    Column("企业英文名", "Firm (English)"),
    Column("小区数", "Communities"),
    Column("工单数", "Work orders"),
    Column("误报数", "False alarms"),
    Column("按事件代码", "By event code"),
    Column("按级别", "By severity"),
    *_share("响应时限", "Response limit"),
    *_share("到场时限", "Arrival limit"),
    *_share("办结时限", "Resolution limit"),
    *_share("全部时限", "Compliance"),
    *_times("响应时长", "Response time"),
    *_times("到场时长", "Arrival time"),
    Column("重复故障", "Repeat faults"),
    Column("重复故障率", "Repeat share"),
    Column("重复窗口（天）", "Repeat window (days)"),
    Column("设备数", "Devices"),
    Column("有状态设备数", "Devices reporting"),
    Column("在线率", "Share online"),
    Column("投诉受理", "Complaints received"),
    Column("投诉关闭", "Complaints closed"),
    Column("投诉不成立", "Complaints not valid"),
    Column("投诉按时办结", "Complaints handled in time"),
    Column("投诉超时", "Complaints late"),
    Column("投诉按时率", "Complaints share in time"),
)


def _counted(counts: Iterable[Count]) -> str:
    return "; ".join(f"{c.key}: {c.work_orders}" for c in counts)


def _shares(x: LimitCompliance) -> tuple[Cell, Cell, Cell]:
    return x.met, x.missed, x.share_met


@router.get(
    "/reports/firm-performance.{fmt}", tags=["reports"], response_class=Response, responses=FILE
)
async def export_firm_performance(
    db: Db,
    caller: Caller,
    fmt: Format,
    start: Annotated[date, Query(alias="from", description="first day (UTC+8), YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="day after the last (exclusive)")],
) -> Response:
    """The firm-performance report (``GET /v1/reports/firm-performance``), one row per firm in
    its order, with the same figures and the same rules for who sees which firm."""
    try:
        check_period(start, end)
    except PeriodError as e:
        raise invalid(f"query.{e.field}", e.message) from None
    scope = scope_for(caller.role, caller.firm_id, caller.community_ids)
    report = await firm_performance(db, scope, start, end, now=datetime.now(UTC))
    rows: list[list[Cell]] = []
    for f in report.firms:
        c = f.complaints
        rows.append(
            [
                *(f.rank, f.firm.code, f.firm.name_zh, f.firm.name_en),
                *(f.communities, f.work_orders, f.false_alarms),
                *(_counted(f.by_event_code), _counted(f.by_severity)),
                *(v for kind in LIMIT_KINDS for v in _shares(f.limits[kind])),
                *_shares(f.compliance),
                *(f.response_time.samples, f.response_time.median_s, f.response_time.p90_s),
                *(f.arrival_time.samples, f.arrival_time.median_s, f.arrival_time.p90_s),
                *(f.repeat_faults.work_orders, f.repeat_faults.share),
                f.repeat_faults.window_days,
                *(f.availability.devices, f.availability.devices_reporting),
                f.availability.share_online,
                *(c.received, c.closed, c.not_valid, c.handled_in_time, c.late, c.share_in_time),
            ]
        )
    table = Table("Firm performance", PERFORMANCE_COLUMNS, rows)
    name = f"firm-performance_{start.isoformat()}_{end.isoformat()}"
    return await _send(table, fmt, name, "企业绩效")
