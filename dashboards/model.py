"""Dashboards: typed builders for Grafana's dashboard JSON model (pure).

A dashboard is described with the frozen values below (:class:`Panel`, :class:`QueryVariable`,
:class:`Annotation`, :class:`Dashboard`) and turned into the JSON Grafana stores with
:func:`dashboard_json`: schemaVersion 39, panels laid out left to right on Grafana's 24-column
grid, every query on one PostgreSQL data source (``grafana-postgresql-datasource``), or, for a
dashboard that names its own (``Dashboard.datasource``), on Prometheus: a query's text is then
PromQL.

Nothing here knows the platform's tables; the dashboard modules (``operations``, ``elevators``,
…) bring the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

JSON = dict[str, Any]

DATASOURCE_TYPE: Final = "grafana-postgresql-datasource"
PROMETHEUS_TYPE: Final = "prometheus"
SCHEMA_VERSION: Final = 39
GRID_COLUMNS: Final = 24


class Kind(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"
    BARGAUGE = "bargauge"
    STATE_TIMELINE = "state-timeline"


Format = Literal["time_series", "table"]


@dataclass(frozen=True, slots=True)
class Datasource:
    uid: str
    type: str = DATASOURCE_TYPE

    def ref(self) -> JSON:
        return {"type": self.type, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class Query:
    sql: str  # SQL, or PromQL on a Prometheus data source
    format: Format = "time_series"
    ref_id: str = "A"
    legend: str = ""  # Prometheus: each series' name, e.g. "{{stage}}" (default: its labels)


@dataclass(frozen=True, slots=True)
class Step:
    """A threshold step: from ``value`` upwards (``None``: the base, from minus infinity)."""

    value: float | None
    color: str


@dataclass(frozen=True, slots=True)
class ValueMapping:
    """A value mapping: ``value`` shows as ``text`` in ``color``."""

    value: str
    text: str
    color: str


@dataclass(frozen=True, slots=True)
class Override:
    """Field config for the fields a matcher selects (``byName``, ``byRegexp``, …)."""

    matcher: str
    match: str
    properties: tuple[tuple[str, Any], ...]

    def json(self) -> JSON:
        return {
            "matcher": {"id": self.matcher, "options": self.match},
            "properties": [{"id": k, "value": v} for k, v in self.properties],
        }


def thresholds_json(steps: Sequence[Step]) -> JSON:
    return {"mode": "absolute", "steps": [{"color": s.color, "value": s.value} for s in steps]}


def column_thresholds(column: str, steps: Sequence[Step], *, unit: str | None = None) -> Override:
    """A table column coloured by its thresholds."""
    props: list[tuple[str, Any]] = [
        ("thresholds", thresholds_json(steps)),
        ("custom.cellOptions", {"type": "color-background", "mode": "basic"}),
    ]
    if unit is not None:
        props.append(("unit", unit))
    return Override("byName", column, tuple(props))


def series_color(name: str, color: str) -> Override:
    return Override("byName", name, (("color", {"mode": "fixed", "fixedColor": color}),))


@dataclass(frozen=True, slots=True)
class Panel:
    kind: Kind
    title: str
    queries: tuple[Query, ...]
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    thresholds: tuple[Step, ...] = ()
    # timeseries: draw the thresholds as lines (and shaded areas) on the graph
    show_thresholds: bool = False
    mappings: tuple[ValueMapping, ...] = ()
    overrides: tuple[Override, ...] = ()
    max_data_points: int | None = None
    bars: bool = False  # timeseries: bars instead of lines (counts per interval)
    color_mode: str | None = None  # e.g. "continuous-RdYlGr"; default: by thresholds if any
    options: tuple[tuple[str, Any], ...] = ()  # extra panel options, merged over the defaults

    def __post_init__(self) -> None:
        if not 1 <= self.width <= GRID_COLUMNS:
            raise ValueError(f"panel {self.title!r}: width must be 1..{GRID_COLUMNS}")
        refs = [q.ref_id for q in self.queries]
        if len(set(refs)) != len(refs):
            raise ValueError(f"panel {self.title!r}: query refIds must differ: {refs}")


@dataclass(frozen=True, slots=True)
class Row:
    title: str


@dataclass(frozen=True, slots=True)
class QueryVariable:
    """A query variable: ``sql`` returns ``__text`` and ``__value`` columns."""

    name: str
    label: str
    sql: str
    multi: bool = True
    include_all: bool = True
    refresh: Literal[1, 2] = 1  # 1: on dashboard load, 2: on time range change


@dataclass(frozen=True, slots=True)
class Annotation:
    """An annotation query: ``sql`` returns ``time``, ``timeend``, ``text`` and ``tags``."""

    name: str
    sql: str
    color: str = "red"


@dataclass(frozen=True, slots=True)
class Link:
    title: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel | Row, ...]
    description: str = ""
    tags: tuple[str, ...] = ()
    variables: tuple[QueryVariable, ...] = ()
    annotations: tuple[Annotation, ...] = ()
    links: tuple[Link, ...] = ()
    time_from: str = "now-6h"
    refresh: str = "1m"
    datasource: Datasource | None = None  # None: the one dashboard_json is given

    def __post_init__(self) -> None:
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"dashboard {self.uid}: variable names must differ: {names}")


# ── JSON ───────────────────────────────────────────────────────────────────────────────────


def _target(q: Query, ds: Datasource, kind: Kind) -> JSON:
    if ds.type == PROMETHEUS_TYPE:
        # panels showing the latest value ask for it alone (an instant query)
        instant = kind in (Kind.STAT, Kind.BARGAUGE, Kind.TABLE)
        return {
            "datasource": ds.ref(),
            "editorMode": "code",
            "expr": q.sql,
            "format": q.format,
            "instant": instant,
            "legendFormat": q.legend or "__auto",
            "range": not instant,
            "refId": q.ref_id,
        }
    return {
        "datasource": ds.ref(),
        "editorMode": "code",
        "format": q.format,
        "rawQuery": True,
        "rawSql": q.sql,
        "refId": q.ref_id,
    }


def _mappings(ms: Sequence[ValueMapping]) -> list[JSON]:
    if not ms:
        return []
    options = {m.value: {"color": m.color, "index": i, "text": m.text} for i, m in enumerate(ms)}
    return [{"type": "value", "options": options}]


def _custom(p: Panel) -> JSON:
    match p.kind:
        case Kind.TIMESERIES:
            style = "line+area" if p.show_thresholds else "off"
            return {
                "drawStyle": "bars" if p.bars else "line",
                "fillOpacity": 60 if p.bars else 10,
                "lineWidth": 1,
                "pointSize": 4,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"group": "A", "mode": "normal" if p.bars else "none"},
                "thresholdsStyle": {"mode": style},
            }
        case Kind.STATE_TIMELINE:
            return {"fillOpacity": 80, "lineWidth": 0}
        case Kind.TABLE:
            return {"align": "auto", "cellOptions": {"type": "auto"}, "filterable": True}
        case _:
            return {}


def _options(p: Panel) -> JSON:
    reduce_all = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    match p.kind:
        case Kind.TIMESERIES:
            opts: JSON = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        case Kind.STAT:
            opts = {
                "colorMode": "background",
                "graphMode": "none",
                "justifyMode": "auto",
                "orientation": "auto",
                "reduceOptions": reduce_all,
                "textMode": "value_and_name",
            }
        case Kind.TABLE:
            opts = {"cellHeight": "sm", "footer": {"show": False}, "showHeader": True}
        case Kind.BARGAUGE:
            opts = {
                "displayMode": "gradient",
                "orientation": "horizontal",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
                "showUnfilled": True,
                "valueMode": "color",
            }
        case Kind.STATE_TIMELINE:
            opts = {
                "alignValue": "left",
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "mergeValues": True,
                "rowHeight": 0.9,
                "showValue": "never",
            }
    opts.update(dict(p.options))
    return opts


def panel_json(p: Panel, panel_id: int, grid: JSON, ds: Datasource) -> JSON:
    defaults: JSON = {
        "color": {"mode": p.color_mode or ("thresholds" if p.thresholds else "palette-classic")},
        "custom": _custom(p),
        "mappings": _mappings(p.mappings),
        "thresholds": thresholds_json(p.thresholds or (Step(None, "green"),)),
    }
    for key, value in (("unit", p.unit), ("decimals", p.decimals), ("min", p.min)):
        if value is not None:
            defaults[key] = value
    if p.max is not None:
        defaults["max"] = p.max
    out: JSON = {
        "datasource": ds.ref(),
        "description": p.description,
        "fieldConfig": {"defaults": defaults, "overrides": [o.json() for o in p.overrides]},
        "gridPos": grid,
        "id": panel_id,
        "options": _options(p),
        "targets": [_target(q, ds, p.kind) for q in p.queries],
        "title": p.title,
        "type": str(p.kind),
    }
    if p.max_data_points is not None:
        out["maxDataPoints"] = p.max_data_points
    return out


def _variable_json(v: QueryVariable, ds: Datasource) -> JSON:
    current = (
        {"selected": True, "text": ["All"], "value": ["$__all"]}
        if v.include_all
        else {"selected": False, "text": "", "value": ""}
    )
    return {
        "current": current,
        "datasource": ds.ref(),
        "definition": v.sql,
        "hide": 0,
        "includeAll": v.include_all,
        "label": v.label,
        "multi": v.multi,
        "name": v.name,
        "options": [],
        "query": v.sql,
        "refresh": v.refresh,
        "regex": "",
        "skipUrlSync": False,
        "sort": 0,
        "type": "query",
    }


BUILT_IN_ANNOTATION: Final[JSON] = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


def _annotation_json(a: Annotation, ds: Datasource) -> JSON:
    return {
        "datasource": ds.ref(),
        "enable": True,
        "iconColor": a.color,
        "name": a.name,
        "target": {
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": a.sql,
            "refId": "Anno",
        },
    }


def layout(items: Sequence[Panel | Row]) -> list[JSON]:
    """Grid positions: panels fill rows of 24 columns left to right; a Row starts a new line."""
    out: list[JSON] = []
    x = y = row_height = 0
    for item in items:
        if isinstance(item, Row):
            y += row_height
            out.append({"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y})
            x, y, row_height = 0, y + 1, 0
            continue
        if x + item.width > GRID_COLUMNS:
            x, y, row_height = 0, y + row_height, 0
        out.append({"h": item.height, "w": item.width, "x": x, "y": y})
        x += item.width
        row_height = max(row_height, item.height)
    return out


def dashboard_json(d: Dashboard, ds: Datasource) -> JSON:
    """The dashboard as Grafana stores it (``id`` null: Grafana assigns one); its queries on
    ``ds``, unless the dashboard names its own data source."""
    ds = d.datasource or ds
    panels: list[JSON] = []
    for i, (item, grid) in enumerate(zip(d.panels, layout(d.panels), strict=True), start=1):
        if isinstance(item, Row):
            panels.append(
                {
                    "collapsed": False,
                    "gridPos": grid,
                    "id": i,
                    "panels": [],
                    "title": item.title,
                    "type": "row",
                }
            )
        else:
            panels.append(panel_json(item, i, grid, ds))
    out: JSON = {
        "annotations": {
            "list": [BUILT_IN_ANNOTATION, *(_annotation_json(a, ds) for a in d.annotations)]
        },
        "description": d.description,
        "editable": False,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": True,
                "keepTime": True,
                "tags": list(link.tags),
                "targetBlank": False,
                "title": link.title,
                "type": "dashboards",
            }
            for link in d.links
        ],
        "panels": panels,
        "refresh": d.refresh,
        "schemaVersion": SCHEMA_VERSION,
        "tags": list(d.tags),
        "templating": {"list": [_variable_json(v, ds) for v in d.variables]},
        "time": {"from": d.time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": d.title,
        "uid": d.uid,
        "weekStart": "",
    }
    return out
