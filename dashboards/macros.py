"""Dashboards: what Grafana does to a panel's SQL before PostgreSQL sees it (pure).

Grafana rewrites a PostgreSQL panel query in three steps, and this module repeats each exactly,
so that tests can run the very SQL Grafana would send:

1. The browser replaces template variables (``$community``, ``${community}``) with the selected
   values. A multi-value or "All" variable becomes a list of quoted literals (``'C01','C02'``,
   quotes doubled inside); a single-value variable is pasted with its quotes doubled. Grafana's
   ``SqlDatasource.interpolateVariable`` — :func:`interpolate_variables`.
2. The backend replaces the global macros ``$__interval_ms``, ``$__interval`` (formatted like
   ``30s``, ``5m``), ``$__unixEpochFrom()`` and ``$__unixEpochTo()`` — ``sqleng.Interpolate``.
3. The PostgreSQL macro engine replaces ``$__name(args)``: ``$__time``, ``$__timeEpoch``,
   ``$__timeFilter``, ``$__timeFrom``, ``$__timeTo``, ``$__timeGroup``, ``$__timeGroupAlias``,
   ``$__unixEpochFilter``, ``$__unixEpochNanoFilter``, ``$__unixEpochNanoFrom``,
   ``$__unixEpochNanoTo``, ``$__unixEpochGroup``, ``$__unixEpochGroupAlias``. With the data
   source's TimescaleDB option, ``$__timeGroup`` becomes ``time_bucket('60.000s',col)``; without
   it, ``floor(extract(epoch from col)/60)*60``. A third ``$__timeGroup`` argument (``NULL``,
   ``previous`` or a number) asks Grafana to fill gaps afterwards; it is returned as
   :class:`Fill` — :func:`expand_macros`, after ``pkg/tsdb/grafana-postgresql-datasource/macros.go``.

:func:`auto_interval` computes the ``$__interval`` Grafana picks for a panel: the time range
divided by the panel's data points, rounded to a "nice" step (``rangeutil.roundInterval``), and
never below the data source's minimum interval.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from core.errors import ShouwangError


class MacroError(ShouwangError):
    """A macro Grafana itself would refuse (unknown name, missing argument, bad interval)."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a time range needs timezone-aware datetimes")


@dataclass(frozen=True, slots=True)
class Fill:
    """Gap filling that a ``$__timeGroup(col, interval, fill)`` asked for (done by Grafana)."""

    mode: str  # null | previous | value
    interval: timedelta
    value: float | None = None


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable's current selection, as the SQL interpolation sees it."""

    values: tuple[str, ...]
    multi: bool = True
    include_all: bool = True


# ── Intervals ──────────────────────────────────────────────────────────────────────────────

_MS: Final = timedelta(milliseconds=1)
# rangeutil.roundInterval: (upper bound exclusive, chosen step), both in milliseconds.
_ROUND_STEPS: Final = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_YEAR_MS: Final = 31_536_000_000


def round_interval(ms: float) -> int:
    """Grafana's ``rangeutil.roundInterval``: a raw interval (ms) to a nice step (ms)."""
    for bound, step in _ROUND_STEPS:
        if ms < bound:
            return step
    return _YEAR_MS


_UNITS: Final = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}
_GO_DURATION: Final = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS: Final = {
    "ns": timedelta(microseconds=0.001),
    "us": timedelta(microseconds=1),
    "µs": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
}


def parse_interval(text: str, *, now: datetime | None = None) -> timedelta:
    """``gtime.ParseInterval``: ``5d``/``2w``/``1M``/``1y`` count calendar units from ``now``
    (UTC); anything else is a Go duration (``90s``, ``1h30m``, ``250ms``)."""
    m = re.fullmatch(r"(\d+)([dwMy])", text)
    if m is not None:
        n, unit = int(m.group(1)), m.group(2)
        start = (now or datetime.now(UTC)).astimezone(UTC)
        match unit:
            case "d":
                return timedelta(days=n)
            case "w":
                return timedelta(weeks=n)
            case "M":
                return _add_months(start, n) - start
            case _:
                return _add_months(start, 12 * n) - start
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text.removeprefix("+"))
    if body == "0":
        return timedelta(0)
    parts = _GO_DURATION.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise MacroError(f"cannot read the interval {text!r}; write it like 30s, 5m, 1h or 1d")
    return sign * sum((float(n) * _GO_UNITS[u] for n, u in parts), timedelta(0))


def _add_months(t: datetime, months: int) -> datetime:
    # Go's AddDate normalises overflowing days (Jan 31 + 1 month = Mar 3), unlike clamping.
    y, mo = divmod(t.month - 1 + months, 12)
    first = t.replace(year=t.year + y, month=mo + 1, day=1)
    return first + timedelta(days=t.day - 1)


def format_interval(d: timedelta) -> str:
    """``gtime.FormatInterval``: the largest whole unit, truncated (``90s`` -> ``1m``)."""
    for unit in ("y", "d", "h", "m", "s", "ms"):
        size = _UNITS[unit]
        if d >= size:
            return f"{d // size}{unit}"
    return "1ms"


def auto_interval(
    time_range: TimeRange, max_data_points: int, min_interval: str | None = None
) -> timedelta:
    """The ``$__interval`` of a panel showing ``max_data_points`` over ``time_range``, given
    the data source's (or panel's) minimum interval (``rangeutil.calculateInterval``)."""
    span_ms = (time_range.end - time_range.start) / _MS
    ms = round_interval(span_ms / max_data_points)
    if min_interval:
        ms = max(ms, int(parse_interval(min_interval) / _MS))
    return timedelta(milliseconds=ms)


# ── Template variables (browser side) ─────────────────────────────────────────────────────

_VARIABLE: Final = re.compile(r"\$(\w+)|\$\{(\w+)\}|\[\[(\w+)\]\]")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def interpolate_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Replace ``$name``, ``${name}`` and ``[[name]]`` as Grafana's SQL data sources do; names
    that are not variables (``$__timeFilter``) are left for the macro engine."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        var = variables.get(name)
        if var is None:
            return m.group(0)
        if len(var.values) == 1 and not (var.multi or var.include_all):
            return var.values[0].replace("'", "''")
        return ",".join(_literal(v) for v in var.values)

    return _VARIABLE.sub(sub, sql)


# ── Macros (backend side) ──────────────────────────────────────────────────────────────────

_MACRO: Final = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")


def rfc3339nano(t: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of ``t`` in UTC: trailing zeros of the fraction dropped."""
    u = t.astimezone(UTC)
    text = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond:
        text += f".{u.microsecond:06d}".rstrip("0")
    return text + "Z"


def _go_float(x: float) -> str:
    """Go's ``%v`` of a float64 (shortest representation, no trailing ``.0``)."""
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    return repr(x)


def _unix(t: datetime) -> int:
    return math.floor(t.timestamp())


def _unix_nano(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def expand_global(sql: str, time_range: TimeRange, interval: timedelta) -> str:
    """``sqleng.Interpolate``: the macros every SQL data source shares."""
    sql = sql.replace("$__interval_ms", str(interval // _MS))
    sql = sql.replace("$__interval", format_interval(interval))
    sql = sql.replace("$__unixEpochFrom()", str(_unix(time_range.start)))
    return sql.replace("$__unixEpochTo()", str(_unix(time_range.end)))


def _needs(name: str, args: Sequence[str], n: int) -> None:
    # As in Grafana, "$__timeFilter()" has one (empty) argument and passes this check.
    if len(args) < n:
        what = "a time column" if n == 1 else "a time column and an interval"
        raise MacroError(f"macro {name} needs {what}")


def _fill(args: Sequence[str], interval: timedelta) -> Fill | None:
    if len(args) != 3:
        return None
    match args[2]:
        case "NULL":
            return Fill("null", interval)
        case "previous":
            return Fill("previous", interval)
        case other:
            try:
                return Fill("value", interval, float(other))
            except ValueError:
                raise MacroError(f"error parsing fill value {other}") from None


def _macro(name: str, args: list[str], tr: TimeRange, timescaledb: bool, fills: list[Fill]) -> str:
    start, end = tr.start, tr.end
    match name:
        case "__time":
            _needs(name, args, 1)
            return f'{args[0]} AS "time"'
        case "__timeEpoch":
            _needs(name, args, 1)
            return f'extract(epoch from {args[0]}) as "time"'
        case "__timeFilter":
            _needs(name, args, 1)
            return f"{args[0]} BETWEEN '{rfc3339nano(start)}' AND '{rfc3339nano(end)}'"
        case "__timeFrom":
            return f"'{rfc3339nano(start)}'"
        case "__timeTo":
            return f"'{rfc3339nano(end)}'"
        case "__timeGroup" | "__unixEpochGroup":
            _needs(name, args, 2)
            try:
                step = parse_interval(args[1].strip("'"))
            except MacroError:
                raise MacroError(f"error parsing interval {args[1]}") from None
            fill = _fill(args, step)
            if fill is not None:
                fills.append(fill)
            seconds = step.total_seconds()
            if name == "__unixEpochGroup":
                return f"floor(({args[0]})/{_go_float(seconds)})*{_go_float(seconds)}"
            if timescaledb:
                return f"time_bucket('{seconds:.3f}s',{args[0]})"
            s = _go_float(seconds)
            return f"floor(extract(epoch from {args[0]})/{s})*{s}"
        case "__timeGroupAlias":
            return _macro("__timeGroup", args, tr, timescaledb, fills) + ' AS "time"'
        case "__unixEpochGroupAlias":
            return _macro("__unixEpochGroup", args, tr, timescaledb, fills) + ' AS "time"'
        case "__unixEpochFilter":
            _needs(name, args, 1)
            return f"{args[0]} >= {_unix(start)} AND {args[0]} <= {_unix(end)}"
        case "__unixEpochNanoFilter":
            _needs(name, args, 1)
            return f"{args[0]} >= {_unix_nano(start)} AND {args[0]} <= {_unix_nano(end)}"
        case "__unixEpochNanoFrom":
            return str(_unix_nano(start))
        case "__unixEpochNanoTo":
            return str(_unix_nano(end))
        case _:
            raise MacroError(f'unknown macro "{name}"')


@dataclass(frozen=True, slots=True)
class Expanded:
    sql: str
    fill: Fill | None = None


def expand_macros(
    sql: str, time_range: TimeRange, interval: timedelta, *, timescaledb: bool = False
) -> Expanded:
    """The SQL Grafana's PostgreSQL data source sends for ``sql`` (variables already
    interpolated): global macros first, then the PostgreSQL macro engine."""
    sql = expand_global(sql, time_range, interval)
    fills: list[Fill] = []
    source = sql

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        # Before Grafana 5.3, "$__timeGroup(...)," meant the aliased form; Grafana still reads
        # it so when the first occurrence of the same text is followed by a comma.
        if name == "__timeGroup":
            at = source.find(m.group(0))
            after = at + len(m.group(0))
            if at >= 0 and after < len(source) and source[after] == ",":
                name = "__timeGroupAlias"
        args = [a.strip(" ") for a in m.group(2).split(",")]
        return _macro(name, args, time_range, timescaledb, fills)

    out = _MACRO.sub(sub, sql)
    return Expanded(out, fills[-1] if fills else None)


def render(
    sql: str,
    variables: Mapping[str, Variable],
    time_range: TimeRange,
    interval: timedelta,
    *,
    timescaledb: bool = False,
) -> str:
    """Variables, then macros: the SQL that reaches PostgreSQL."""
    return expand_macros(
        interpolate_variables(sql, variables), time_range, interval, timescaledb=timescaledb
    ).sql
