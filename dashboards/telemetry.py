"""Dashboards: panels over readings that the equipment dashboards share (pure): a metric per
device against the list's thresholds, the list's conditions over time, latest values.

Panels over the dashboard's time range read the per-minute rollup ``dash.readings_1m`` (one row
per device, metric and minute: n, avg, min, max, first, last), grouped by ``$__interval``; the
data source's minimum interval is a minute, so an interval never splits a rollup row. Panels of
values now read ``dash.latest_readings`` (one row per device and metric).
"""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from core.catalogue import DeviceClass
from dashboards.limits import (
    NORMAL,
    SEVERITY_COLORS,
    bounds,
    conditions,
    grafana_unit,
    metric,
    metric_in,
    metric_is,
    metric_steps,
    sql_list,
    title,
)
from dashboards.model import (
    Kind,
    Panel,
    Query,
    ValueMapping,
    column_thresholds,
)
from responsibility.model import Entry

# Points of a time series over the rollup: 6 hours / 360 is Grafana's 1-minute interval, the
# rollup's own resolution.
SERIES_POINTS: Final = 360


# A series per device: grouped and sorted byte-wise (the database's collation sorts text
# several times slower, and the order of series does not matter to Grafana).
PER_DEVICE: Final = 'device COLLATE "C" AS metric'


def rollup_rows(where: str) -> str:
    """SQL FROM item ``r``: the rollup's minute rows in the time range that meet ``where`` (a
    condition on ``metric_id`` and the minute's values), of every device the role sees; filter
    the chosen devices outside it. ``OFFSET 0`` keeps the device filter out: given a list of
    devices, the planner expects a few rows per device and metric (it does not know a device
    reports only its own class's metrics) and fetches each device's minutes one heap page at a
    time, where reading the metric's minutes through its index is several times cheaper."""
    return f"(SELECT * FROM dash.readings_1m WHERE {where} AND $__timeFilter(bucket) OFFSET 0) r"


def devices_of(classes: Iterable[DeviceClass]) -> str:
    """SQL: rows of these classes' devices chosen in $device."""
    return f"device_class IN ({sql_list(classes)}) AND device IN ($device)"


# Per-interval aggregates over the rollup's minute rows, by what a panel shows.
AGGREGATES: Final = {
    "avg": "sum(avg * n) / sum(n)",  # weighted by the minutes' readings
    "min": "min(min)",
    "max": "max(max)",
}
AGGREGATE_TEXT: Final = {
    "avg": "the mean",
    "min": "the lowest reading",
    "max": "the highest reading",
}


def watched_side(entries: Iterable[Entry], device_class: DeviceClass, name: str) -> str:
    """What an interval of this metric should show against the list's thresholds: its lowest
    reading if the list only files below a value (a pressure or level dipping), its highest if
    only above, else its mean."""
    sides = {b.side for b in bounds(entries, device_class, name)}
    if sides == {"below"}:
        return "min"
    if sides == {"above"}:
        return "max"
    return "avg"


def metric_panel(
    entries: Iterable[Entry],
    device_class: DeviceClass,
    name: str,
    *,
    width: int = 12,
    aggregate: str | None = None,
    per_device: bool = True,
) -> Panel:
    """One metric over time from the per-minute rollup, a series per device (or over the
    chosen devices), with the list's alarm thresholds drawn on the graph. Each interval shows
    ``aggregate`` of the readings in it (``avg``, ``min`` or ``max``; by default what the list's
    thresholds watch, :func:`watched_side`)."""
    entries = tuple(entries)
    m = metric(device_class, name)
    steps = metric_steps(entries, device_class, name)
    agg = aggregate or watched_side(entries, device_class, name)
    series = f"{PER_DEVICE}, " if per_device else ""
    label = "value" if per_device else f'"{agg}"'
    group = "1, 2" if per_device else "1"
    shown = f"Each interval: {AGGREGATE_TEXT[agg]}" + ("" if per_device else " of the devices")
    bands = "; coloured bands: the responsibility list's alarm thresholds" if steps else ""
    return Panel(
        Kind.TIMESERIES,
        title(m),
        (
            Query(
                f"SELECT $__timeGroupAlias(bucket, $__interval), {series}{AGGREGATES[agg]}"
                f" AS {label} FROM {rollup_rows(metric_is(device_class, name))}"
                f" WHERE {devices_of((device_class,))} GROUP BY {group} ORDER BY 1"
            ),
        ),
        width=width,
        unit=grafana_unit(m),
        thresholds=steps,
        show_thresholds=bool(steps),
        description=f"{shown}{bands}.",
        max_data_points=SERIES_POINTS,
    )


def conditions_panel(
    entries: Iterable[Entry], device_class: DeviceClass, heading: str, *, width: int = 24
) -> Panel:
    """Per device and interval, the most severe list condition that held in one of its minutes
    (thresholds and states of the list's entries for the class), or normal."""
    conds = conditions(entries, device_class)
    cases = " ".join(f"WHEN bool_or({c.sql}) THEN {i}" for i, c in enumerate(conds, 1))
    mappings = (
        ValueMapping("0", "正常 normal", NORMAL),
        *(
            ValueMapping(str(i), f"{c.code} {c.name}", SEVERITY_COLORS[c.severity])
            for i, c in enumerate(conds, 1)
        ),
    )
    watched = sorted({n for c in conds for n in c.metrics})
    return Panel(
        Kind.STATE_TIMELINE,
        heading,
        (
            Query(
                f"SELECT $__timeGroupAlias(bucket, $__interval), {PER_DEVICE},"
                f" CASE {cases} ELSE 0 END AS value"
                f" FROM {rollup_rows(metric_in(device_class, watched))}"
                f" WHERE {devices_of((device_class,))} GROUP BY 1, 2 ORDER BY 1"
            ),
        ),
        width=width,
        height=8,
        description="The responsibility list's conditions for the class, most severe first;"
        " hold times are not applied, so a short excursion shows before it would alarm.",
        mappings=mappings,
        max_data_points=200,
    )


def latest_table(
    entries: Iterable[Entry],
    device_class: DeviceClass,
    heading: str,
    names: Sequence[str],
    *,
    width: int = 12,
) -> Panel:
    """Each device's latest value of ``names``, cells coloured by the list's thresholds."""
    entries = tuple(entries)
    metrics = [metric(device_class, n) for n in names]
    columns = ", ".join(
        f'max(value) FILTER (WHERE metric_id = {m.id}) AS "{title(m)}"' for m in metrics
    )
    overrides = tuple(
        column_thresholds(title(m), steps, unit=grafana_unit(m))
        for m in metrics
        if (steps := metric_steps(entries, device_class, m.name))
    )
    return Panel(
        Kind.TABLE,
        heading,
        (
            Query(
                'SELECT device AS "设备 device", location AS "位置 location",'
                f' community_name AS "小区 community", {columns}, max(ts) AS "更新 updated"'
                f" FROM dash.latest_readings WHERE {devices_of((device_class,))}"
                f" AND {metric_in(device_class, names)} GROUP BY 1, 2, 3 ORDER BY 1",
                "table",
            ),
        ),
        width=width,
        height=8,
        overrides=overrides,
    )


def latest_bars(
    entries: Iterable[Entry], device_class: DeviceClass, name: str, *, width: int = 12
) -> Panel:
    """Each device's latest value of one metric as a bar, coloured by the list's thresholds."""
    m = metric(device_class, name)
    return Panel(
        Kind.BARGAUGE,
        f"{title(m)} (当前 now)",
        (
            Query(
                "SELECT device, value FROM dash.latest_readings"
                f" WHERE {devices_of((device_class,))} AND {metric_is(device_class, name)}"
                " ORDER BY device",
                "table",
            ),
        ),
        width=width,
        height=8,
        unit=grafana_unit(m),
        min=m.lo,
        thresholds=metric_steps(entries, device_class, name),
    )
