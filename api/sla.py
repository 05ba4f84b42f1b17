"""API: how a work order fared against its time limits, one SQL definition for every report.

Each of a work order's limits (response, arrival, resolution) has one outcome:

- none (not counted): the work order was a false alarm, it has no such limit, or the limit has
  not fallen due yet while the work order is still open;
- ``missed``: analytics recorded a breach (``work_order_breaches``), or the step was done after
  its due time, or the work order is still open past it, or it closed after the due time without
  the step (e.g. the device recovered on its own, late);
- ``met``: the step was done by its due time, or the work order closed before the limit fell due.

A work order is *within limits* when it is closed, not a false alarm, and none of its limits was
missed. The public disclosure and the firm-performance report both use these rules, and neither
counts a work order whose alarm opened while its device was under maintenance
(:data:`NOT_IN_MAINTENANCE`, ``lifecycle.maintenance``).
"""

from __future__ import annotations

from typing import Final, Literal

from psycopg.sql import SQL

LimitKind = Literal["response", "arrival", "resolution"]
LIMIT_KINDS: Final[tuple[LimitKind, ...]] = ("response", "arrival", "resolution")

# Rows (work_order_id, kind, due, outcome) for the work orders of a CTE named ``scoped`` (which must
# have the work_orders columns); ``%(now)s`` is the time the report is made.
LIMIT_OUTCOMES: Final = SQL("""
SELECT w.id AS work_order_id, l.kind, l.due,
    CASE
        WHEN w.status = 'false_alarm' OR l.due IS NULL THEN NULL
        WHEN b.work_order_id IS NOT NULL THEN 'missed'
        WHEN l.done IS NOT NULL THEN CASE WHEN l.done <= l.due THEN 'met' ELSE 'missed' END
        WHEN w.closed_at IS NOT NULL THEN CASE WHEN w.closed_at <= l.due THEN 'met' ELSE 'missed' END
        WHEN l.due <= %(now)s THEN 'missed'
    END AS outcome
FROM scoped w
CROSS JOIN LATERAL (VALUES ('response', w.response_due, w.responded_at),
                           ('arrival', w.arrival_due, w.on_site_at),
                           ('resolution', w.resolution_due, w.closed_at)) AS l(kind, due, done)
LEFT JOIN work_order_breaches b ON b.work_order_id = w.id AND b.limit_kind = l.kind
""")


# Residents' complaints (a CTE ``scoped`` of them and ``outcomes`` from :data:`LIMIT_OUTCOMES`):
# a CTE ``per_order`` (whether each missed a limit, and met every limit it had), then the five
# counts over ``scoped w LEFT JOIN per_order p``: received, closed, not valid, completed within
# every limit, late. The firm-performance report and the public disclosure count them so.
COMPLAINT_PER_ORDER: Final = SQL(
    "per_order AS (SELECT o.work_order_id, bool_or(o.outcome = 'missed') AS missed,"
    " bool_and(coalesce(o.outcome = 'met', false) OR o.due IS NULL) AS met"
    " FROM outcomes o GROUP BY o.work_order_id)"
)
COMPLAINT_COUNTS: Final = SQL(
    "count(*), count(w.closed_at), count(*) FILTER (WHERE w.status = 'false_alarm'),"
    " count(*) FILTER (WHERE w.status = 'completed' AND p.met AND NOT coalesce(p.missed, false)),"
    " count(*) FILTER (WHERE p.missed)"
)


# Keeps the work orders (alias ``w``) whose alarm did not open during a maintenance window of
# its device: those are the maintenance's own doing and do not count against the firm.
NOT_IN_MAINTENANCE: Final = SQL(
    "NOT EXISTS (SELECT 1 FROM alarms ma WHERE ma.id = w.alarm_id"
    " AND device_in_maintenance(ma.device_id, ma.opened_at))"
)


def share(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to 4 places; None when there is nothing to divide."""
    return None if whole == 0 else round(part / whole, 4)
