"""Dashboards: fire protection (pure): fire-water pressures and tank levels against the list's
limits, fire alarm control panel states, electrical-fire monitoring."""

from __future__ import annotations

from collections.abc import Iterable

from core.catalogue import DeviceClass
from dashboards import alarms, variables
from dashboards.model import Dashboard, Row
from dashboards.telemetry import (
    conditions_panel,
    devices_of,
    latest_bars,
    latest_table,
    metric_panel,
)
from responsibility.model import Entry

UID = "sw-fire"
FW, FP, EF = DeviceClass.FIRE_WATER, DeviceClass.FIRE_PANEL, DeviceClass.ELECTRICAL_FIRE
CLASSES = (FW, FP, EF)
WATER_POINTS = ("sprinkler_pressure", "hydrant_pressure", "tank_static_pressure", "tank_level")
PANEL_POINTS = ("main_power", "backup_power", "active_fire", "active_fault", "disabled_points")


def build(entries: Iterable[Entry]) -> Dashboard:
    entries = tuple(entries)
    return Dashboard(
        UID,
        "消防 Fire protection",
        (
            Row("消防水 Fire water"),
            *(metric_panel(entries, FW, n) for n in WATER_POINTS),
            latest_bars(entries, FW, "tank_level"),
            latest_table(entries, FW, "消防水当前 Fire water now", WATER_POINTS),
            Row("火灾报警控制器 Fire alarm control panels"),
            conditions_panel(entries, FP, "消防主机状态 Fire panel state"),
            latest_table(entries, FP, "消防主机当前 Fire panels now", PANEL_POINTS, width=24),
            Row("电气火灾 Electrical fire"),
            metric_panel(entries, EF, "residual_current", aggregate="max", per_device=False),
            metric_panel(entries, EF, "cable_temp", aggregate="max", per_device=False),
        ),
        description="Fire-water pressures and levels, fire panels, electrical-fire monitors.",
        tags=(alarms.TAG, "equipment", "fire"),
        variables=variables.equipment(CLASSES),
        annotations=(alarms.annotation(devices_of(CLASSES)),),
        links=alarms.LINKS,
    )
