"""API: the firm-performance report over a period, objective inputs to the credit evaluation.

Per property firm, over the work orders opened in ``[start, end)`` (local days, UTC+8) in the
communities the caller may see:

- work orders by event code and by severity, and false alarms;
- per limit (response, arrival, resolution): met and missed, and the share met (``api.sla``);
  *compliance* is the share of decided work orders that met every limit (a work order with a
  limit still pending is not yet decided); firms are ranked by it;
- median and 90th percentile of the response and arrival times (``percentile_cont``, seconds from
  opening), over the work orders that have the step;
- repeat faults: a work order is a repeat when the same device had a work order for the same
  event code opened in the :data:`REPEAT_WINDOW_DAYS` days before it (false alarms on either side
  do not count);
- availability: the share of device-time online, from the devices' status messages
  (``device_status``: online from a status saying so until one saying otherwise). Time before a
  device's first status message is unknown and not counted; ``devices_reporting`` says how many
  devices had known time.

Work orders whose alarm opened while the device was under maintenance are left out throughout
(``api.sla.NOT_IN_MAINTENANCE``).

Residents' complaints (work orders with ``source = 'complaint'``, ``lifecycle.complaints``) are
counted on their own, under ``complaints``, and not in the figures above: received in the
period, closed, closed as not valid, *handled in time* (completed with every limit met) and
late (some limit missed, ``api.sla``); ``share_in_time`` is handled in time over the decided
ones (handled in time + late).

Queries take an open async connection; :func:`check_period`, :func:`scope_for` and
:func:`assemble` are pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from psycopg import AsyncConnection
from psycopg.rows import TupleRow
from psycopg.sql import SQL, Composed
from pydantic import BaseModel, Field

from api.sla import (
    COMPLAINT_COUNTS,
    COMPLAINT_PER_ORDER,
    LIMIT_KINDS,
    LIMIT_OUTCOMES,
    NOT_IN_MAINTENANCE,
    share,
)
from core.workcalendar import SHANGHAI

AConn = AsyncConnection[TupleRow]

REPEAT_WINDOW_DAYS: Final = 30
MAX_PERIOD_DAYS: Final = 366
REGULATORS: Final = frozenset({"county_regulator", "township"})


class PeriodError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_period(start: date, end: date) -> None:
    """Refuse an empty, reversed or longer-than-a-year period, naming the field to change."""
    if end <= start:
        raise PeriodError("to", f"must be after from ({start.isoformat()})")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise PeriodError("to", f"the period may be at most one year ({MAX_PERIOD_DAYS} days)")


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose firms a caller sees: ``firm_ids`` None = every firm, ``community_ids`` None = every
    community. Figures are computed over the communities in scope only."""

    firm_ids: frozenset[int] | None
    community_ids: frozenset[int] | None

    @property
    def empty(self) -> bool:
        return self.firm_ids == frozenset() or self.community_ids == frozenset()


def scope_for(role: str, firm_id: int | None, community_ids: frozenset[int] | None) -> Scope:
    """Regulators see every firm active in their communities (the county: all); everyone else
    sees only their own firm, and nothing without one."""
    if role in REGULATORS:
        return Scope(None, community_ids)
    if firm_id is None:
        return Scope(frozenset(), frozenset())
    return Scope(frozenset({firm_id}), community_ids)


class Firm(BaseModel):
    code: str
    name_zh: str
    name_en: str


class Count(BaseModel):
    key: str
    work_orders: int


class LimitCompliance(BaseModel):
    met: int
    missed: int
    share_met: float | None


class Durations(BaseModel):
    samples: int
    median_s: float | None
    p90_s: float | None


class Repeats(BaseModel):
    work_orders: int
    share: float | None
    window_days: int = REPEAT_WINDOW_DAYS


class Availability(BaseModel):
    devices: int
    devices_reporting: int
    share_online: float | None


class Complaints(BaseModel):
    received: int
    closed: int
    not_valid: int = Field(description="closed as not valid (no action)")
    handled_in_time: int = Field(description="completed with every limit met")
    late: int = Field(description="some limit missed")
    share_in_time: float | None


class FirmPerformance(BaseModel):
    rank: int | None = Field(description="by compliance, best first; null without decided orders")
    firm: Firm
    communities: int
    work_orders: int
    false_alarms: int
    by_event_code: list[Count]
    by_severity: list[Count]
    limits: dict[str, LimitCompliance] = Field(description="response, arrival and resolution")
    compliance: LimitCompliance = Field(description="work orders that met every limit")
    response_time: Durations
    arrival_time: Durations
    repeat_faults: Repeats
    availability: Availability
    complaints: Complaints


class PerformanceReport(BaseModel):
    start: date = Field(serialization_alias="from")
    end: date = Field(serialization_alias="to", description="exclusive")
    generated_at: datetime
    firms: list[FirmPerformance]


@dataclass(slots=True)
class FirmFigures:
    """What the queries found for one firm, before assembly."""

    code: str
    name_zh: str
    name_en: str
    communities: int
    work_orders: int = 0
    false_alarms: int = 0
    by_event_code: dict[str, int] = field(default_factory=dict)
    by_severity: dict[str, int] = field(default_factory=dict)
    limits: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (met, missed)
    all_met: int = 0
    any_missed: int = 0
    response: tuple[int, float | None, float | None] = (0, None, None)
    arrival: tuple[int, float | None, float | None] = (0, None, None)
    repeats: int = 0
    devices: int = 0
    devices_reporting: int = 0
    online_s: float = 0.0
    known_s: float = 0.0
    # complaints: received, closed, not valid, handled in time, late
    complaints: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)


def _counts(d: Mapping[str, int]) -> list[Count]:
    return [
        Count(key=k, work_orders=n) for k, n in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _durations(t: tuple[int, float | None, float | None]) -> Durations:
    n, median, p90 = t
    return Durations(
        samples=n,
        median_s=None if median is None else round(median, 1),
        p90_s=None if p90 is None else round(p90, 1),
    )


def _performance(f: FirmFigures) -> FirmPerformance:
    limits = {}
    for kind in LIMIT_KINDS:
        met, missed = f.limits.get(kind, (0, 0))
        limits[kind] = LimitCompliance(met=met, missed=missed, share_met=share(met, met + missed))
    real = f.work_orders - f.false_alarms
    return FirmPerformance(
        rank=None,
        firm=Firm(code=f.code, name_zh=f.name_zh, name_en=f.name_en),
        communities=f.communities,
        work_orders=f.work_orders,
        false_alarms=f.false_alarms,
        by_event_code=_counts(f.by_event_code),
        by_severity=_counts(f.by_severity),
        limits=limits,
        compliance=LimitCompliance(
            met=f.all_met,
            missed=f.any_missed,
            share_met=share(f.all_met, f.all_met + f.any_missed),
        ),
        response_time=_durations(f.response),
        arrival_time=_durations(f.arrival),
        repeat_faults=Repeats(work_orders=f.repeats, share=share(f.repeats, real)),
        availability=Availability(
            devices=f.devices,
            devices_reporting=f.devices_reporting,
            share_online=None if f.known_s <= 0 else round(f.online_s / f.known_s, 4),
        ),
        complaints=complaint_summary(f.complaints),
    )


def complaint_summary(counts: tuple[int, int, int, int, int]) -> Complaints:
    """The complaint figures from the five counts of ``api.sla.COMPLAINT_COUNTS``."""
    received, closed, not_valid, in_time, late = counts
    return Complaints(
        received=received,
        closed=closed,
        not_valid=not_valid,
        handled_in_time=in_time,
        late=late,
        share_in_time=share(in_time, in_time + late),
    )


def assemble(figures: Iterable[FirmFigures]) -> list[FirmPerformance]:
    """Firms ranked by compliance (best first, ties by code); firms without decided work
    orders follow, unranked."""
    out = [_performance(f) for f in figures]
    ranked = sorted(
        (p for p in out if p.compliance.share_met is not None),
        key=lambda p: (-(p.compliance.share_met or 0.0), p.firm.code),
    )
    for i, p in enumerate(ranked, 1):
        p.rank = i
    rest = sorted((p for p in out if p.compliance.share_met is None), key=lambda p: p.firm.code)
    return ranked + rest


# Every query below keeps to the scope's firms and communities.
_FILTER = SQL(
    " (%(firms)s::int[] IS NULL OR c.firm_id = ANY(%(firms)s))"
    " AND (%(communities)s::int[] IS NULL OR c.id = ANY(%(communities)s))"
)
_IN_SCOPE = SQL(
    "w.firm_id IS NOT NULL"
    " AND (%(firms)s::int[] IS NULL OR w.firm_id = ANY(%(firms)s))"
    " AND (%(communities)s::int[] IS NULL OR w.community_id = ANY(%(communities)s))"
    " AND w.opened_at >= %(start)s AND w.opened_at < %(end)s"
)
_SCOPED = SQL(
    "WITH scoped AS (SELECT * FROM work_orders w WHERE w.source = 'alarm' AND {} AND {})"
).format(_IN_SCOPE, NOT_IN_MAINTENANCE)
_OUTCOMES = _SCOPED + SQL(", outcomes AS (") + LIMIT_OUTCOMES + SQL(")")

# Firms running a community in scope, or with work orders in scope from one they ran before.
_FIRMS = SQL(
    "{} SELECT f.id, f.code, f.name_zh, f.name_en,"
    " (SELECT count(*) FROM communities c WHERE c.firm_id = f.id AND {filter})"
    " FROM firms f WHERE (%(firms)s::int[] IS NULL OR f.id = ANY(%(firms)s))"
    " AND (EXISTS (SELECT 1 FROM communities c WHERE c.firm_id = f.id AND {filter})"
    "  OR EXISTS (SELECT 1 FROM scoped w WHERE w.firm_id = f.id))"
    " ORDER BY f.code"
).format(_SCOPED, filter=_FILTER)
_BY_TYPE = _SCOPED + SQL(
    " SELECT firm_id, event_code, severity, status = 'false_alarm', count(*)"
    " FROM scoped GROUP BY 1, 2, 3, 4"
)
_LIMITS = _OUTCOMES + SQL(
    " SELECT w.firm_id, o.kind, count(*) FILTER (WHERE o.outcome = 'met'),"
    " count(*) FILTER (WHERE o.outcome = 'missed')"
    " FROM outcomes o JOIN scoped w ON w.id = o.work_order_id GROUP BY 1, 2"
)
# Per work order (not a false alarm): missed if any limit was missed, met if every limit it has
# was met; otherwise still pending.
_COMPLIANCE = _OUTCOMES + SQL(
    ", per_order AS (SELECT o.work_order_id,"
    " bool_or(o.outcome = 'missed') AS missed,"
    " bool_and(coalesce(o.outcome = 'met', false) OR o.due IS NULL) AS met"
    " FROM outcomes o JOIN scoped w ON w.id = o.work_order_id"
    " WHERE w.status <> 'false_alarm' GROUP BY o.work_order_id)"
    " SELECT w.firm_id, count(*) FILTER (WHERE p.met), count(*) FILTER (WHERE p.missed)"
    " FROM per_order p JOIN scoped w ON w.id = p.work_order_id GROUP BY 1"
)
_TIMES = _SCOPED + SQL(
    " SELECT firm_id,"
    " count(responded_at),"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM responded_at - opened_at)),"
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM responded_at - opened_at)),"
    " count(on_site_at),"
    " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM on_site_at - opened_at)),"
    " percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM on_site_at - opened_at))"
    " FROM scoped WHERE status <> 'false_alarm' GROUP BY firm_id"
)
_REPEATS = _SCOPED + SQL(
    " SELECT w.firm_id, count(*) FROM scoped w WHERE w.status <> 'false_alarm'"
    " AND EXISTS (SELECT 1 FROM work_orders p WHERE p.device_id = w.device_id"
    "  AND p.event_code = w.event_code AND p.status <> 'false_alarm' AND p.id <> w.id"
    "  AND p.opened_at < w.opened_at"
    "  AND p.opened_at >= w.opened_at - make_interval(days => %(window)s))"
    " GROUP BY w.firm_id"
)
# Residents' complaints: received, closed, not valid, completed within every limit, late.
_COMPLAINTS = SQL(
    "WITH scoped AS (SELECT * FROM work_orders w WHERE w.source = 'complaint' AND {}),"
    " outcomes AS ({}), {} SELECT w.firm_id, {}"
    " FROM scoped w LEFT JOIN per_order p ON p.work_order_id = w.id GROUP BY w.firm_id"
).format(_IN_SCOPE, LIMIT_OUTCOMES, COMPLAINT_PER_ORDER, COMPLAINT_COUNTS)
# Device-time online: each status message starts a segment lasting until the next one (or the
# period's end); the state at the period's start is the last message before it, if any.
_AVAILABILITY = SQL(
    "WITH span AS (SELECT d.id, c.firm_id, greatest(%(start)s, d.created_at) AS t0,"
    "  %(stop)s::timestamptz AS t1 FROM devices d JOIN communities c ON c.id = d.community_id"
    "  WHERE d.active AND d.created_at < %(stop)s AND c.firm_id IS NOT NULL AND {filter}),"
    " marks AS ("
    "  SELECT s.id, s.t0 AS ts, st.online FROM span s CROSS JOIN LATERAL"
    "   (SELECT x.online FROM device_status x WHERE x.device_id = s.id AND x.ts <= s.t0"
    "    ORDER BY x.ts DESC, x.online LIMIT 1) st WHERE s.t0 < s.t1"
    "  UNION ALL"
    "  SELECT x.device_id, x.ts, x.online FROM device_status x JOIN span s ON s.id = x.device_id"
    "   WHERE x.ts > s.t0 AND x.ts < s.t1),"
    " segments AS (SELECT m.id, m.online,"
    "  extract(epoch FROM lead(m.ts, 1, s.t1) OVER (PARTITION BY m.id ORDER BY m.ts, m.online)"
    "   - m.ts) AS secs FROM marks m JOIN span s ON s.id = m.id)"
    " SELECT s.firm_id, count(DISTINCT s.id), count(DISTINCT g.id),"
    "  coalesce(sum(g.secs) FILTER (WHERE g.online), 0), coalesce(sum(g.secs), 0)"
    " FROM span s LEFT JOIN segments g ON g.id = s.id GROUP BY s.firm_id"
).format(filter=_FILTER)


def _local(d: date) -> datetime:
    return datetime(d.year, d.month, d.day, tzinfo=SHANGHAI)


async def _rows(conn: AConn, query: Composed, params: Mapping[str, Any]) -> list[TupleRow]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def firm_performance(
    conn: AConn, scope: Scope, start: date, end: date, *, now: datetime
) -> PerformanceReport:
    """The report for ``[start, end)`` as of ``now``; call :func:`check_period` first."""
    t0, t1 = _local(start), _local(end)
    params: dict[str, Any] = {
        "firms": None if scope.firm_ids is None else sorted(scope.firm_ids),
        "communities": None if scope.community_ids is None else sorted(scope.community_ids),
        "start": t0,
        "end": t1,
        "stop": min(t1, max(now, t0)),
        "now": now,
        "window": REPEAT_WINDOW_DAYS,
    }
    figures: dict[int, FirmFigures] = {}
    if not scope.empty:
        for fid, code, zh, en, n in await _rows(conn, _FIRMS, params):
            figures[int(fid)] = FirmFigures(code, zh, en, int(n))
    if figures:
        await _collect(conn, params, figures)
    return PerformanceReport(
        start=start, end=end, generated_at=now, firms=assemble(figures.values())
    )


async def _collect(conn: AConn, params: Mapping[str, Any], figures: dict[int, FirmFigures]) -> None:
    for fid, event_code, severity, false_alarm, n in await _rows(conn, _BY_TYPE, params):
        f = figures[int(fid)]
        f.work_orders += int(n)
        f.by_event_code[event_code] = f.by_event_code.get(event_code, 0) + int(n)
        f.by_severity[severity] = f.by_severity.get(severity, 0) + int(n)
        if false_alarm:
            f.false_alarms += int(n)
    for fid, kind, met, missed in await _rows(conn, _LIMITS, params):
        figures[int(fid)].limits[kind] = (int(met), int(missed))
    for fid, met, missed in await _rows(conn, _COMPLIANCE, params):
        figures[int(fid)].all_met, figures[int(fid)].any_missed = int(met), int(missed)
    for fid, nr, r50, r90, na, a50, a90 in await _rows(conn, _TIMES, params):
        f = figures[int(fid)]
        f.response = (int(nr), _float(r50), _float(r90))
        f.arrival = (int(na), _float(a50), _float(a90))
    for fid, n in await _rows(conn, _REPEATS, params):
        figures[int(fid)].repeats = int(n)
    for fid, *counts in await _rows(conn, _COMPLAINTS, params):
        if int(fid) in figures:
            a, b, c, d, e = (int(n) for n in counts)
            figures[int(fid)].complaints = (a, b, c, d, e)
    for fid, devices, reporting, online, known in await _rows(conn, _AVAILABILITY, params):
        f = figures[int(fid)]
        f.devices, f.devices_reporting = int(devices), int(reporting)
        f.online_s, f.known_s = float(online), float(known)


def _float(v: Any) -> float | None:
    return None if v is None else float(v)
