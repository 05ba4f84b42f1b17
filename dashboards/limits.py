"""Dashboards: what panels draw as limits, read from the responsibility list and the catalogue
(pure). No number on a dashboard is typed twice: alarm thresholds come from the list's
threshold filings, time limits from its ``limits``, units and names from ``core.catalogue``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from core.catalogue import METRICS, DeviceClass, Metric
from core.severity import Severity
from core.workcalendar import Unit
from dashboards.model import Step
from responsibility.model import (
    Entry,
    Limit,
    OfflineFiling,
    OverspeedFiling,
    StateFiling,
    ThresholdFiling,
    TrappedFiling,
)

NORMAL: Final = "green"
SEVERITY_COLORS: Final = {
    Severity.P0: "dark-red",
    Severity.P1: "red",
    Severity.P2: "orange",
    Severity.P3: "yellow",
}

# Grafana unit ids for the catalogue's units; anything else is shown with a suffix.
_GRAFANA_UNITS: Final = {
    "°C": "celsius",
    "%": "percent",
    "V": "volt",
    "A": "amp",
    "mA": "mamp",
    "kWh": "kwatth",
    "m": "lengthm",
    "m/s": "velocityms",
}


@dataclass(frozen=True, slots=True)
class Bound:
    """One alarm threshold: a value ``below`` or ``above`` which entry ``code`` files."""

    value: float
    side: Literal["below", "above"]
    severity: Severity
    code: str


def metric(device_class: DeviceClass, name: str) -> Metric:
    for m in METRICS:
        if m.device_class is device_class and m.name == name:
            return m
    raise KeyError(f"the catalogue has no metric {name!r} for {device_class}")


def metric_is(device_class: DeviceClass, name: str) -> str:
    """SQL: the row is this metric (by its stable catalogue id, which the indexes cover)."""
    return f"metric_id = {metric(device_class, name).id}"


def metric_in(device_class: DeviceClass, names: Iterable[str]) -> str:
    """SQL: the row is one of these metrics. (No comment naming them: recent Grafana versions
    strip SQL comments before sending a query.)"""
    ids = ", ".join(str(metric(device_class, n).id) for n in names)
    return f"metric_id IN ({ids})"


def grafana_unit(m: Metric) -> str | None:
    if not m.unit:
        return None
    return _GRAFANA_UNITS.get(m.unit, f"suffix:{m.unit}")


def title(m: Metric) -> str:
    return f"{m.name_zh} {m.name_en}"


def bounds(entries: Iterable[Entry], device_class: DeviceClass, name: str) -> tuple[Bound, ...]:
    """Every threshold the list files on this metric, lowest value first."""
    out: list[Bound] = []
    for e in entries:
        if e.device_class is not device_class:
            continue
        for f in e.filing:
            if isinstance(f, ThresholdFiling) and f.metric == name:
                if f.below is not None:
                    out.append(Bound(f.below, "below", e.severity, e.code))
                if f.above is not None:
                    out.append(Bound(f.above, "above", e.severity, e.code))
    return tuple(sorted(out, key=lambda b: (b.value, b.side)))


def _worst(covering: Iterable[Bound]) -> str:
    sev = [b.severity for b in covering]
    return SEVERITY_COLORS[min(sev, key=lambda s: s.rank)] if sev else NORMAL


def steps(bs: Iterable[Bound]) -> tuple[Step, ...]:
    """Grafana threshold steps for alarm bounds: each band between two thresholds takes the
    colour of the most severe alarm that fires there, green where none does."""
    bs = tuple(bs)
    if not bs:
        return ()
    values = sorted({b.value for b in bs})

    def colour_between(lo: float | None, hi: float | None) -> str:
        # a point strictly inside (lo, hi); "below v" fires there if the point < v, etc.
        def fires(b: Bound) -> bool:
            if b.side == "below":
                return hi is not None and hi <= b.value
            return lo is not None and lo >= b.value

        return _worst(b for b in bs if fires(b))

    out = [Step(None, colour_between(None, values[0]))]
    for i, v in enumerate(values):
        nxt = values[i + 1] if i + 1 < len(values) else None
        out.append(Step(v, colour_between(v, nxt)))
    return tuple(out)


def metric_steps(
    entries: Iterable[Entry], device_class: DeviceClass, name: str
) -> tuple[Step, ...]:
    return steps(bounds(entries, device_class, name))


def offline_intervals(entries: Iterable[Entry]) -> dict[DeviceClass, float]:
    """Reporting intervals of silence after which the list calls a device offline, by class."""
    out: dict[DeviceClass, float] = {}
    for e in entries:
        for f in e.filing:
            if isinstance(f, OfflineFiling) and e.device_class is not None:
                out[e.device_class] = min(f.intervals, out.get(e.device_class, f.intervals))
    return out


def online_sql(entries: Iterable[Entry], alias: str = "d") -> str:
    """SQL: is the device heard from recently enough, by the list's offline rule (a class without
    one counts as online once heard)."""
    cases = " ".join(
        f"WHEN '{cls}' THEN {n:g}" for cls, n in sorted(offline_intervals(entries).items())
    )
    return (
        f"coalesce({alias}.last_seen > now() - make_interval(secs => {alias}.report_interval_s"
        f" * CASE {alias}.device_class {cases} ELSE 1e9 END), false)"
    )


def codes_filed_by(entries: Iterable[Entry], detector: type[object]) -> tuple[str, ...]:
    return tuple(sorted(e.code for e in entries if any(isinstance(f, detector) for f in e.filing)))


def trapped_codes(entries: Iterable[Entry]) -> tuple[str, ...]:
    """The entries that file trapped-passenger incidents."""
    return codes_filed_by(entries, TrappedFiling)


def overspeed_factor(entries: Iterable[Entry]) -> float:
    factors = [f.factor for e in entries for f in e.filing if isinstance(f, OverspeedFiling)]
    if not factors:
        raise KeyError("the responsibility list has no overspeed filing")
    return min(factors)


def minutes(limit: Limit | None) -> float | None:
    """A limit in minutes, if it is counted in calendar minutes (working time is not a fixed
    number of minutes, so it has no single line to draw)."""
    if limit is None or limit.unit is not Unit.CALENDAR_MINUTES:
        return None
    return limit.value


def sql_list(values: Iterable[str]) -> str:
    """A SQL list of string literals for values the dashboards generate themselves."""
    items = [v.replace("'", "''") for v in values]
    return ", ".join(f"'{v}'" for v in items) or "NULL"


@dataclass(frozen=True, slots=True)
class Condition:
    """A list entry's filing condition, as SQL over rows of the per-minute rollup
    (``dash.readings_1m``: ``metric_id``, ``min``, ``max``): true for a minute in which some
    reading met it."""

    code: str
    name: str
    severity: Severity
    sql: str
    metrics: tuple[str, ...]


def _filing_sql(device_class: DeviceClass, f: ThresholdFiling | StateFiling) -> str:
    """A reading of the minute was below (the minute's min) or above (its max) a threshold, or
    in the state: the state lies between the minute's min and max, which is exact for the
    two-valued points the list files states on (0/1)."""
    which = metric_is(device_class, f.metric)
    if isinstance(f, StateFiling):
        return f"({which} AND min <= {f.equals!r} AND max >= {f.equals!r})"
    sides = []
    if f.below is not None:
        sides.append(f"min < {f.below!r}")
    if f.above is not None:
        sides.append(f"max > {f.above!r}")
    return f"({which} AND ({' OR '.join(sides)}))"


def conditions(entries: Iterable[Entry], device_class: DeviceClass) -> tuple[Condition, ...]:
    """The class's entries that file on metric values (thresholds, states), most severe first.
    Hold times are left out: a condition shows as soon as it holds."""
    out = []
    for e in entries:
        if e.device_class is not device_class:
            continue
        filings = [f for f in e.filing if isinstance(f, ThresholdFiling | StateFiling)]
        if filings:
            out.append(
                Condition(
                    e.code,
                    f"{e.name.zh} {e.name.en}",
                    e.severity,
                    " OR ".join(_filing_sql(device_class, f) for f in filings),
                    tuple(f.metric for f in filings),
                )
            )
    return tuple(sorted(out, key=lambda c: (c.severity.rank, c.code)))
