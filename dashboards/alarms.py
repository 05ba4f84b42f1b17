"""Dashboards: pieces about alarms that several dashboards share (pure): the alarm annotation,
counts by severity, and the dashboard links."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from typing import Final

from core.severity import Severity
from dashboards.limits import SEVERITY_COLORS
from dashboards.model import Annotation, Link, Override, series_color

TAG: Final = "shouwang"
LINKS: Final = (Link("守望 dashboards", (TAG,)),)


def annotation(where: str) -> Annotation:
    """Alarms as regions on every time series: from opening to clearing (or now), labelled
    with severity, event code and device; ``where`` narrows them to the dashboard's devices."""
    return Annotation(
        "告警 Alarms",
        "SELECT opened_at AS time, coalesce(cleared_at, now()) AS timeend,"
        " severity || ' ' || event_code || ' · ' || device || ' ' || location AS text,"
        " severity || ',' || event_code || ',' || device_class AS tags"
        " FROM dash.alarms"
        " WHERE opened_at <= $__timeTo() AND coalesce(cleared_at, now()) >= $__timeFrom()"
        f" AND {where} ORDER BY opened_at",
    )


def by_severity(column: str = "severity") -> str:
    """SELECT items: one count per severity, named P0..P3."""
    return ", ".join(f"count(*) FILTER (WHERE {column} = '{s}') AS \"{s}\"" for s in Severity)


def severity_overrides() -> tuple[Override, ...]:
    return tuple(series_color(str(s), SEVERITY_COLORS[s]) for s in Severity)
