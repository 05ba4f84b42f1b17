"""API routes: reports for supervisors and firms (``api.performance``)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Caller, Db
from api.errors import ERROR_RESPONSES, invalid
from api.performance import (
    PerformanceReport,
    PeriodError,
    check_period,
    firm_performance,
    scope_for,
)

router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=ERROR_RESPONSES)


@router.get(
    "/firm-performance",
    response_model=PerformanceReport,
    response_model_by_alias=True,
)
async def firm_performance_report(
    db: Db,
    caller: Caller,
    start: Annotated[date, Query(alias="from", description="first day (UTC+8), YYYY-MM-DD")],
    end: Annotated[date, Query(alias="to", description="day after the last (exclusive)")],
) -> PerformanceReport:
    """Per property firm over the period: work orders by type, share within each time limit,
    median and p90 response and arrival times, repeat faults and device availability.
    Regulators see every firm in their jurisdiction, ranked by compliance; a firm's own staff
    see their firm; other callers an empty list. Rules: docs/api.md."""
    try:
        check_period(start, end)
    except PeriodError as e:
        raise invalid(f"query.{e.field}", e.message) from None
    scope = scope_for(caller.role, caller.firm_id, caller.community_ids)
    return await firm_performance(db, scope, start, end, now=datetime.now(UTC))
