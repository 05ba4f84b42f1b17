"""Dashboards: panels over readings that the equipment dashboards share (pure): a metric per
device against the list's thresholds, the list's conditions over time, latest values."""

# ruff: noqa: S608 (this module writes SQL text for Grafana's dashboards; it runs none)

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.catalogue import DeviceClass
from core.responsibility import Entry
from dashboards.limits import (
    NORMAL,
    SEVERITY_COLORS,
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


def devices_of(classes: Iterable[DeviceClass]) -> str:
    """SQL: rows of these classes' devices chosen in $device."""
    return f"device_class IN ({sql_list(classes)}) AND device IN ($device)"


def metric_panel(
    entries: Iterable[Entry],
    device_class: DeviceClass,
    name: str,
    *,
    width: int = 12,
    aggregate: str = "avg",
    per_device: bool = True,
) -> Panel:
    """One metric over time, a series per device (or the ``aggregate`` over the chosen devices),
    with the list's alarm thresholds drawn on the graph."""
    m = metric(device_class, name)
    steps = metric_steps(entries, device_class, name)
    series = "device AS metric, " if per_device else ""
    label = "value" if per_device else f'"{aggregate}"'
    group = "1, 2" if per_device else "1"
    return Panel(
        Kind.TIMESERIES,
        title(m),
        (
            Query(
                f"SELECT $__timeGroupAlias(ts, $__interval), {series}{aggregate}(value) AS {label}"
                f" FROM dash.readings WHERE {devices_of((device_class,))}"
                f" AND {metric_is(device_class, name)}"
                f" AND $__timeFilter(ts) GROUP BY {group} ORDER BY 1"
            ),
        ),
        width=width,
        unit=grafana_unit(m),
        thresholds=steps,
        show_thresholds=bool(steps),
        description="Coloured bands: the responsibility list's alarm thresholds." if steps else "",
    )


def conditions_panel(
    entries: Iterable[Entry], device_class: DeviceClass, heading: str, *, width: int = 24
) -> Panel:
    """Per device and interval, the most severe list condition that held (thresholds and
    states of the list's entries for the class), or normal."""
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
                "SELECT $__timeGroupAlias(ts, $__interval), device AS metric,"
                f" CASE {cases} ELSE 0 END AS value FROM dash.readings"
                f" WHERE {devices_of((device_class,))} AND {metric_in(device_class, watched)}"
                " AND $__timeFilter(ts) GROUP BY 1, 2 ORDER BY 1"
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
