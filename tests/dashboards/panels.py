"""Test helper: runs a dashboard's SQL the way Grafana would, and checks what comes back.

Variables are resolved first, in order, by running their own queries (each sees the ones before
it, all set to "All"); every panel query and annotation is then rendered with
``dashboards.macros`` (variables, then macros, with the data source's TimescaleDB option and
minimum interval) and executed on a connection as Grafana's login role. Each result is checked
against what its panel type needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.db import Conn
from dashboards.access import Credentials
from dashboards.datasource import DatasourceSpec
from dashboards.macros import TimeRange, Variable, auto_interval, parse_interval, render
from dashboards.model import Dashboard, Kind, Panel

DEFAULT_POINTS = 1000  # Grafana's default maxDataPoints is about the panel's width in pixels
SPEC = DatasourceSpec(url="", database="", user="")


@dataclass(frozen=True, slots=True)
class Result:
    dashboard: str
    panel: str
    kind: Kind | None  # None: an annotation
    ref: str
    sql: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]]
    times: list[float]

    @property
    def ms(self) -> float:
        """The fastest run: the machine running the tests is shared with other work, and a
        repeated run (as Grafana's refresh repeats it) shows the query's own cost."""
        return min(self.times)

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref}"


def login_url(base: str, creds: Credentials) -> str:
    """``base`` (the owner's connection string) with a dashboards login role's credentials."""
    params = conninfo_to_dict(base)
    params.update(user=creds.role, password=creds.password)
    return make_conninfo(**params)  # type: ignore[arg-type]


def _timed(
    conn: Conn, sql: str, runs: int = 1
) -> tuple[tuple[str, ...], list[tuple[object, ...]], list[float]]:
    """Columns, rows and the time of each of ``runs`` executions in ms, rows fetched included."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        cur = conn.execute(sql.encode())
        rows = cur.fetchall()
        times.append((time.perf_counter() - t0) * 1000)
    columns = tuple(c.name for c in cur.description or ())
    return columns, rows, times


def default_range(d: Dashboard, now: datetime) -> TimeRange:
    """The time range the dashboard opens with (``now-6h`` .. ``now``)."""
    assert d.time_from.startswith("now-"), d.time_from
    return TimeRange(now - parse_interval(d.time_from.removeprefix("now-"), now=now), now)


def resolve(conn: Conn, d: Dashboard, tr: TimeRange) -> dict[str, Variable]:
    """Every variable set to "All": the values its query returns given the ones before it."""
    out: dict[str, Variable] = {}
    for v in d.variables:
        sql = render(v.sql, out, tr, timedelta(minutes=1), timescaledb=SPEC.timescaledb)
        columns, rows, _ = _timed(conn, sql)
        assert "__value" in columns and "__text" in columns, f"{v.name}: {columns}"
        values = tuple(str(r[columns.index("__value")]) for r in rows)
        texts = [r[columns.index("__text")] for r in rows]
        assert len(set(texts)) == len(texts), f"{v.name}: Grafana merges equal texts: {texts}"
        assert values, f"variable {v.name} of {d.uid} has no values"
        out[v.name] = Variable(values, multi=v.multi, include_all=v.include_all)
    return out


def interval_of(p: Panel, tr: TimeRange) -> timedelta:
    return auto_interval(tr, p.max_data_points or DEFAULT_POINTS, SPEC.min_interval)


def run(conn: Conn, d: Dashboard, tr: TimeRange, runs: int = 2) -> list[Result]:
    values = resolve(conn, d, tr)
    out: list[Result] = []
    for p in d.panels:
        if not isinstance(p, Panel):
            continue
        for q in p.queries:
            sql = render(q.sql, values, tr, interval_of(p, tr), timescaledb=SPEC.timescaledb)
            columns, rows, times = _timed(conn, sql, runs)
            out.append(Result(d.uid, p.title, p.kind, q.ref_id, sql, columns, rows, times))
    for a in d.annotations:
        sql = render(a.sql, values, tr, timedelta(minutes=1), timescaledb=SPEC.timescaledb)
        columns, rows, times = _timed(conn, sql, runs)
        out.append(Result(d.uid, a.name, None, "Anno", sql, columns, rows, times))
    return out


def _numeric(v: object) -> bool:
    return v is None or (isinstance(v, int | float | Decimal) and not isinstance(v, bool))


def problems(r: Result) -> list[str]:
    """What Grafana would refuse or misdraw in this result, for its panel type."""
    out: list[str] = []
    cols = r.columns
    if not cols:
        return ["no columns"]

    def col(name: str) -> list[object]:
        i = cols.index(name)
        return [row[i] for row in r.rows]

    kinds = {c: {type(v) for v in col(c) if v is not None} for c in cols}
    numeric = [c for c in cols if all(_numeric(v) for v in col(c)) and c != "time"]
    strings = [c for c in cols if kinds[c] and kinds[c] <= {str}]
    match r.kind:
        case Kind.TIMESERIES | Kind.STATE_TIMELINE:
            if "time" not in cols:
                out.append("no 'time' column for the time_series format")
            else:
                times = col("time")
                if any(t is None for t in times):
                    out.append("null time")
                elif times != sorted(times):  # type: ignore[type-var]
                    out.append("rows not in time order (Grafana needs them ascending)")
            values = [c for c in cols if c != "time" and c not in strings]
            if not values or any(c not in numeric for c in values):
                out.append(f"value columns must be numeric: {kinds}")
        case Kind.STAT:
            if len(r.rows) != 1:
                out.append(f"a stat needs one row, got {len(r.rows)}")
            if not numeric or len(numeric) != len(cols):
                out.append(f"a stat's columns must be numeric: {kinds}")
        case Kind.BARGAUGE:
            if not strings or not numeric:
                out.append(f"a bar gauge needs a label column and a value column: {kinds}")
        case None:
            missing = {"time", "timeend", "text", "tags"} - set(cols)
            if missing:
                out.append(f"annotation columns missing: {sorted(missing)}")
        case _:
            pass
    return out
