"""Dashboards: secondary water supply (pure): tank levels, zone pressures and pump states of
the pump rooms, and water quality against the GB 5749 limits the responsibility list holds."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

import re
from collections.abc import Iterable

from core.catalogue import METRICS, DeviceClass, Metric
from dashboards import alarms, variables
from dashboards.model import Dashboard, Kind, Panel, Query, Row, ValueMapping
from dashboards.telemetry import (
    conditions_panel,
    devices_of,
    latest_bars,
    latest_table,
    metric_panel,
    rollup_rows,
)
from responsibility.model import Entry

UID = "sw-water"
PR, WQ = DeviceClass.PUMP_ROOM, DeviceClass.WATER_QUALITY
CLASSES = (PR, WQ)
ZONES = ("zone_low_pressure", "zone_mid_pressure", "zone_high_pressure")
QUALITY = ("residual_chlorine", "turbidity", "ph")
PUMP_STATES = (
    ValueMapping("0", "停 stopped", "blue"),
    ValueMapping("1", "运行 running", "green"),
    ValueMapping("2", "故障 fault", "red"),
)


def pump_points() -> dict[str, tuple[Metric, Metric]]:
    """The catalogue's pumps: number -> (run point, fault point)."""
    found: dict[str, dict[str, Metric]] = {}
    for m in METRICS:
        hit = re.fullmatch(r"pump(\d+)_(run|fault)", m.name)
        if m.device_class is PR and hit:
            found.setdefault(hit.group(1), {})[hit.group(2)] = m
    return {n: (p["run"], p["fault"]) for n, p in sorted(found.items())}


def _pumps_panel() -> Panel:
    pumps = pump_points()
    number = " ".join(f"WHEN {m.id} THEN '{n}'" for n, points in pumps.items() for m in points)
    faults = ", ".join(str(f.id) for _, f in pumps.values())
    runs = ", ".join(str(r.id) for r, _ in pumps.values())
    return Panel(
        Kind.STATE_TIMELINE,
        "水泵 Pump states",
        (
            Query(
                "SELECT $__timeGroupAlias(bucket, $__interval),"
                f" (device || ' #' || CASE metric_id {number} END) COLLATE \"C\" AS metric, CASE"
                f" WHEN bool_or(metric_id IN ({faults}) AND max >= 1) THEN 2"
                f" WHEN bool_or(metric_id IN ({runs}) AND max >= 1) THEN 1 ELSE 0 END AS value"
                f" FROM {rollup_rows(f'metric_id IN ({faults}, {runs})')}"
                f" WHERE {devices_of((PR,))}"
                " GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=24,
        height=8,
        mappings=PUMP_STATES,
        max_data_points=200,
    )


def build(entries: Iterable[Entry]) -> Dashboard:
    entries = tuple(entries)
    return Dashboard(
        UID,
        "二次供水 Water supply",
        (
            Row("泵房 Pump rooms"),
            metric_panel(entries, PR, "tank_level"),
            latest_bars(entries, PR, "tank_level"),
            *(metric_panel(entries, PR, z, width=8) for z in ZONES),
            _pumps_panel(),
            conditions_panel(entries, PR, "泵房状态 Pump-room conditions"),
            Row("水质 Water quality (GB 5749-2022)"),
            *(metric_panel(entries, WQ, q, width=8) for q in QUALITY),
            latest_table(
                entries, WQ, "水质当前 Water quality now", (*QUALITY, "water_temp"), width=24
            ),
        ),
        description="Pump rooms and water quality; limits from the responsibility list.",
        tags=(alarms.TAG, "equipment", "water"),
        variables=variables.equipment(CLASSES),
        annotations=(alarms.annotation(devices_of(CLASSES)),),
        links=alarms.LINKS,
    )
