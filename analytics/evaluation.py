"""Analytics: how well alarms match the faults a firm knows of (pure, numpy).

A detector is only worth its false alarms if it finds the faults that matter early enough. This
module scores a list of alarms (what ``shouwang replay`` or a firm's own system raised) against a
list of labelled fault windows (from the firm's incident records) over a span of data time, and
reads both from CSV text. ``shouwang evaluate`` is its shell.

Every time is in epoch seconds and every interval is closed: ``[start, end]``; a window with
``end == start`` is a point (a point alarm, or a fault known only by its moment).

Before scoring
    Alarms that lie wholly outside the span (``end < span.start`` or ``start > span.end``) are
    dropped and counted in ``alarms_outside_span``; the rest are kept whole. Labels wholly outside
    the span are dropped and counted in ``labels_outside_span``; the rest are clipped to the span
    (a fault already on when the data begins starts, for scoring, at ``span.start``). Input order
    does not matter; overlapping alarms and overlapping labels are allowed and each counts as one
    alarm or one fault (identical rows count twice).

Event scores (one fault = one label)
    A label ``[s, e]`` is *found* by an alarm whose start lies in its detection window
    ``[s - early_s, s + deadline_s]`` (``[s - early_s, e]`` when ``deadline_s`` is None). Its
    delay is the earliest such start minus ``s`` (negative within ``early_s``). One alarm can find
    several labels (labels that overlap, or one label's early window inside another). An alarm that
    started before ``s - early_s`` and is still on does not find the label: that alarm was about
    something else. ``recall = found / faults``; ``delays_s`` per found fault in label time order;
    ``median_delay_s`` and ``p90_delay_s`` are numpy's (linear interpolation between order
    statistics).

False alarms
    An alarm (kept, see above) is false when it overlaps no label widened to
    ``[s - early_s, e + (deadline_s or 0)]``. Every label counts here, even one outside the span:
    an alarm explained by a known fault is not false. Every alarm found in a detection window is
    therefore not false; alarms that overlap a widened window without finding a label (late, or
    repeated within a fault) are neither found nor false. ``normal_days`` is the span's length
    minus the length of the union of the clipped labels, in days; ``false_alarms_per_day`` divides
    by it.

Point-wise scores (no point-adjust: a long fault caught at its last row scores one row, not all)
    With ``rows`` (the scored data's row times; those outside the span are ignored) each row is a
    sample: actual positive when inside some clipped label, predicted positive when inside some
    alarm; an alarm with no row inside it (a point alarm between two rows) flags the last row at or
    before its start, the data it was raised on. Without ``rows`` the scores are time-weighted: TP
    is the length of (union of alarms clipped to the span) ∩ (union of clipped labels), and so on;
    a point alarm then carries no time. ``tp, fp, fn, tn`` are rows or seconds (``pointwise`` says
    which); precision ``tp/(tp+fp)``, recall ``tp/(tp+fn)``, F1 ``2tp/(2tp+fp+fn)``.

BATADAL score (Taormina et al., 2018)
    ``S_TTD = 1 - mean(TTD_i / Δt_i)`` over the faults, ``Δt_i`` the clipped label's length and
    ``TTD_i`` the delay clamped at 0; an undetected fault, or one found later than its end, counts
    1 (so does a zero-length fault found after its moment; found at it or within ``early_s``
    before, 0). ``S_CM = (TPR + TNR) / 2`` from the point-wise counts.
    ``S = γ·S_TTD + (1 − γ)·S_CM`` with ``γ = 0.5``.

A score that would divide by zero (no faults, no alarms, no normal time) is None, never NaN.
Non-finite times, windows that end before they start and negative ``early_s``/``deadline_s`` raise
:class:`ConfigError`.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, Literal, TextIO

import numpy as np
from numpy.typing import NDArray

from analytics.timeparse import parse_time, shown
from core.errors import ConfigError

FloatArray = NDArray[np.float64]
DAY_S = 86_400.0
GAMMA = 0.5  # BATADAL's weight of S_TTD against S_CM
NAME_COLUMNS = ("name", "label", "description", "note")


@dataclass(frozen=True, slots=True)
class Window:
    start: float  # epoch seconds
    end: float  # >= start
    name: str = field(default="", compare=False)  # a label's description, if the file had one

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ConfigError("window", f"times must be finite, not {self.start}..{self.end}")
        if self.end < self.start:
            raise ConfigError("window", f"ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class Scorecard:
    span: Window
    early_s: float
    deadline_s: float | None
    # events
    faults: int
    found: int
    recall: float | None
    missed: tuple[Window, ...]  # as labelled (not clipped), in time order
    delays_s: tuple[float, ...]
    median_delay_s: float | None
    p90_delay_s: float | None
    # false alarms
    alarms: int
    false_alarms: int
    normal_days: float
    false_alarms_per_day: float | None
    # point-wise
    pointwise: Literal["rows", "time"]
    tp: float
    fp: float
    fn: float
    tn: float
    point_precision: float | None
    point_recall: float | None
    point_f1: float | None
    # BATADAL
    s_ttd: float | None
    s_cm: float | None
    s: float | None
    # what was left out
    alarms_outside_span: int = 0
    labels_outside_span: int = 0
    point_alarms: int = 0  # zero-length alarms kept (they carry no time in time-weighted scores)

    def to_dict(self, when: Callable[[float], Any] = float) -> dict[str, Any]:
        """JSON-able; ``when`` renders a time (epoch seconds by default)."""

        def window(w: Window) -> dict[str, Any]:
            return {"start": when(w.start), "end": when(w.end), "name": w.name}

        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Window):
                value = window(value)
            elif name == "missed":
                value = [window(w) for w in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


def evaluate(
    alarms: Sequence[Window],
    labels: Sequence[Window],
    *,
    span: Window,
    rows: FloatArray | None = None,
    early_s: float = 0.0,
    deadline_s: float | None = None,
) -> Scorecard:
    """Score ``alarms`` against ``labels`` over ``span`` (definitions: the module docstring)."""
    _check_seconds(early_s, "early_s")
    if deadline_s is not None:
        _check_seconds(deadline_s, "deadline_s")
    kept = [a for a in alarms if a.end >= span.start and a.start <= span.end]
    inside = sorted(
        (lb for lb in labels if lb.end >= span.start and lb.start <= span.end),
        key=lambda w: (w.start, w.end),
    )
    a0, a1 = _bounds(kept)
    s = np.array([max(lb.start, span.start) for lb in inside], dtype=np.float64)
    e = np.array([min(lb.end, span.end) for lb in inside], dtype=np.float64)

    # events
    first = _first_start_in(np.sort(a0), s - early_s, e if deadline_s is None else s + deadline_s)
    found = ~np.isnan(first)
    delays = first[found] - s[found]
    missed = tuple(lb for lb, f in zip(inside, found, strict=True) if not f)

    # false alarms
    every0, every1 = _bounds(labels)
    false = ~_overlaps_any(a0, a1, every0 - early_s, every1 + (deadline_s or 0.0))
    length = span.end - span.start
    normal_s = max(length - _union_length(s, e), 0.0)
    normal_days = normal_s / DAY_S

    # point-wise
    pointwise: Literal["rows", "time"]
    if rows is None:
        pointwise = "time"
        tp, fp, fn, tn = _time_confusion(a0, a1, s, e, span)
    else:
        pointwise = "rows"
        tp, fp, fn, tn = _row_confusion(a0, a1, s, e, _rows_in(rows, span))

    # BATADAL
    s_ttd = _s_ttd(delays, found, e - s)
    tpr, tnr = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    s_cm = (tpr + tnr) / 2 if tpr is not None and tnr is not None else None
    score = GAMMA * s_ttd + (1 - GAMMA) * s_cm if s_ttd is not None and s_cm is not None else None

    n_found = int(found.sum())
    return Scorecard(
        span=span,
        early_s=float(early_s),
        deadline_s=None if deadline_s is None else float(deadline_s),
        faults=len(inside),
        found=n_found,
        recall=_ratio(n_found, len(inside)),
        missed=missed,
        delays_s=tuple(float(d) for d in delays),
        median_delay_s=float(np.median(delays)) if n_found else None,
        p90_delay_s=float(np.percentile(delays, 90)) if n_found else None,
        alarms=len(kept),
        false_alarms=int(false.sum()),
        normal_days=normal_days,
        false_alarms_per_day=int(false.sum()) / normal_days if normal_s > 0 else None,
        pointwise=pointwise,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        point_precision=_ratio(tp, tp + fp),
        point_recall=tpr,
        point_f1=_ratio(2 * tp, 2 * tp + fp + fn),
        s_ttd=s_ttd,
        s_cm=s_cm,
        s=score,
        alarms_outside_span=len(alarms) - len(kept),
        labels_outside_span=len(labels) - len(inside),
        point_alarms=int((a1 == a0).sum()),
    )


def _s_ttd(delays: FloatArray, found: NDArray[Any], lengths: FloatArray) -> float | None:
    """BATADAL's time-to-detection score: 1 - mean(TTD / Δt), an undetected fault counting 1."""
    if len(lengths) == 0:
        return None
    ratio = np.ones(len(lengths))
    dt = lengths[found]
    late = np.maximum(delays, 0.0) / np.where(dt > 0, dt, 1.0)
    ratio[found] = np.where(dt > 0, np.minimum(late, 1.0), np.where(delays > 0, 1.0, 0.0))
    return 1.0 - float(ratio.mean())


def _check_seconds(value: float, what: str) -> None:
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(what, f"must be a finite number of seconds >= 0, not {value}")


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den > 0 else None


def _bounds(windows: Sequence[Window]) -> tuple[FloatArray, FloatArray]:
    starts = np.fromiter((w.start for w in windows), dtype=np.float64, count=len(windows))
    ends = np.fromiter((w.end for w in windows), dtype=np.float64, count=len(windows))
    return starts, ends


def _first_start_in(sorted_starts: FloatArray, lo: FloatArray, hi: FloatArray) -> FloatArray:
    """Per window ``[lo, hi]``: the earliest of ``sorted_starts`` inside it, NaN if none."""
    out = np.full(len(lo), np.nan)
    if len(sorted_starts) == 0:
        return out
    i = np.searchsorted(sorted_starts, lo, side="left")
    candidate = sorted_starts[np.minimum(i, len(sorted_starts) - 1)]
    hit = (i < len(sorted_starts)) & (candidate <= hi)
    out[hit] = candidate[hit]
    return out


def _overlaps_any(a0: FloatArray, a1: FloatArray, w0: FloatArray, w1: FloatArray) -> NDArray[Any]:
    """Per interval ``[a0, a1]``: does it meet any of the intervals ``[w0, w1]``?"""
    if len(w0) == 0:
        return np.zeros(len(a0), dtype=bool)
    order = np.argsort(w0, kind="stable")
    w0s, reach = w0[order], np.maximum.accumulate(w1[order])
    k = np.searchsorted(w0s, a1, side="right")  # windows starting at or before the alarm ends
    return (k > 0) & (reach[np.maximum(k - 1, 0)] >= a0)


def _union_length(starts: FloatArray, ends: FloatArray) -> float:
    """Length of the union of the intervals ``[starts, ends]``."""
    if len(starts) == 0:
        return 0.0
    order = np.argsort(starts, kind="stable")
    s, e = starts[order], np.maximum.accumulate(ends[order])
    # a new block begins where a start lies beyond everything before it
    begins = np.concatenate(([True], s[1:] > e[:-1]))
    first = np.flatnonzero(begins)
    last = np.concatenate((first[1:] - 1, [len(s) - 1]))
    return float((e[last] - s[first]).sum())


def _time_confusion(
    a0: FloatArray, a1: FloatArray, s: FloatArray, e: FloatArray, span: Window
) -> tuple[float, float, float, float]:
    c0, c1 = np.maximum(a0, span.start), np.minimum(a1, span.end)
    alarmed, faulty = _union_length(c0, c1), _union_length(s, e)
    either = _union_length(np.concatenate((c0, s)), np.concatenate((c1, e)))
    tp = max(alarmed + faulty - either, 0.0)
    fp, fn = max(alarmed - tp, 0.0), max(faulty - tp, 0.0)
    return tp, fp, fn, max(span.end - span.start - either, 0.0)


def _rows_in(rows: FloatArray, span: Window) -> FloatArray:
    r = np.asarray(rows, dtype=np.float64)
    if r.ndim != 1:
        raise ConfigError("rows", f"row times must be one-dimensional, not of shape {r.shape}")
    if not np.isfinite(r).all():
        raise ConfigError("rows", "row times must be finite (no NaN or infinity)")
    return np.sort(r[(r >= span.start) & (r <= span.end)])


def _covered(r: FloatArray, starts: FloatArray, ends: FloatArray) -> NDArray[Any]:
    """Per sorted row time: is it inside some ``[starts, ends]``?"""
    depth = np.zeros(len(r) + 1, dtype=np.int64)
    np.add.at(depth, np.searchsorted(r, starts, side="left"), 1)
    np.add.at(depth, np.searchsorted(r, ends, side="right"), -1)
    return np.cumsum(depth[:-1]) > 0


def _row_confusion(
    a0: FloatArray, a1: FloatArray, s: FloatArray, e: FloatArray, r: FloatArray
) -> tuple[float, float, float, float]:
    actual, predicted = _covered(r, s, e), _covered(r, a0, a1)
    empty = np.searchsorted(r, a1, side="right") == np.searchsorted(r, a0, side="left")
    before = np.searchsorted(r, a0[empty], side="right") - 1  # the last row at or before
    predicted[before[before >= 0]] = True
    tp = float((actual & predicted).sum())
    fp = float((~actual & predicted).sum())
    fn = float((actual & ~predicted).sum())
    return tp, fp, fn, float(len(r)) - tp - fp - fn


# --- reading ----------------------------------------------------------------------------------


def read_alarms(
    stream: TextIO, source: str, *, fmt: str | None, tz: tzinfo, sep: str = ","
) -> list[Window]:
    """Alarms from CSV: a ``start`` (or ``time``) column and an optional ``end``; an empty or
    missing end is a point alarm. Column names are matched ignoring case; others are ignored, so
    ``shouwang replay``'s episode files and a firm's own exports both read."""
    header, body, sep = _table(stream, source, sep)
    start = _column(header, ("start", "time"), source, sep)
    end = _find(header, ("end",))
    out = []
    for line, cells in body:
        where = f"{source}:{line}"
        t0 = parse_time(_cell(cells, start, where, len(header)), fmt, tz, where)
        t1_text = _cell(cells, end, where, len(header)) if end is not None else ""
        t1 = parse_time(t1_text, fmt, tz, where) if t1_text.strip() else t0
        out.append(_window(t0, t1, "", where))
    return out


def read_labels(
    stream: TextIO, source: str, *, fmt: str | None, tz: tzinfo, sep: str = ","
) -> list[Window]:
    """Labelled fault windows from CSV: ``start`` and ``end`` columns (ignoring case); a ``name``,
    ``label``, ``description`` or ``note`` column names the window; other columns are ignored."""
    header, body, sep = _table(stream, source, sep)
    start = _column(header, ("start",), source, sep)
    end = _column(header, ("end",), source, sep)
    name = _find(header, NAME_COLUMNS)
    out = []
    for line, cells in body:
        where = f"{source}:{line}"
        t0 = parse_time(_cell(cells, start, where, len(header)), fmt, tz, where)
        t1_text = _cell(cells, end, where, len(header))
        if not t1_text.strip():
            raise ConfigError(
                where, "the label has no end; give when the fault ended (for an instant, the start)"
            )
        t1 = parse_time(t1_text, fmt, tz, where)
        label = cells[name].strip() if name is not None and name < len(cells) else ""
        out.append(_window(t0, t1, label, where))
    return out


def read_row_times(
    stream: TextIO,
    source: str,
    *,
    time_column: str | None,
    fmt: str | None,
    tz: tzinfo,
    sep: str = ",",
) -> FloatArray:
    """The time of every row of a data CSV (``time_column``, default the first column)."""
    header, body, sep = _table(stream, source, sep)
    if time_column is None:
        j = 0
    elif time_column.strip() in header:
        j = header.index(time_column.strip())
    else:
        j = _column(header, (time_column.strip().lower(),), source, sep)
    times: list[float] = []
    for line, cells in body:
        where = f"{source}:{line}"
        times.append(parse_time(_cell(cells, j, where, len(header)), fmt, tz, where))
    return np.array(times, dtype=np.float64)


def _table(
    stream: TextIO, source: str, sep: str
) -> tuple[list[str], Iterator[tuple[int, list[str]]], str]:
    """The header (names stripped), the non-blank records with their line numbers and the
    separator read with: ``sep``, unless the header holds none of it but one of ``,`` ``;`` tab
    (``shouwang replay`` writes its episodes with ``,`` whatever the separator of the data, and a
    firm's incident records may come from yet another tool)."""
    try:
        first = stream.readline()
    except UnicodeDecodeError:
        raise ConfigError(source, "is not UTF-8 text; save it as UTF-8 (CSV UTF-8)") from None
    if sep not in first:
        sep = next((alt for alt in (",", ";", "\t") if alt in first), sep)
    reader = csv.reader(itertools.chain([first], stream), delimiter=sep)
    try:
        header = next(reader, None)
    except csv.Error as e:
        raise ConfigError(f"{source}:1", f"is not valid CSV: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "is not UTF-8 text; save it as UTF-8 (CSV UTF-8)") from None
    if header is None or not any(h.strip() for h in header):
        raise ConfigError(source, "the file is empty; a header row is expected")
    names = [h.strip().lstrip("\ufeff").strip() for h in header]

    def body() -> Iterator[tuple[int, list[str]]]:
        try:
            for cells in reader:
                if any(c.strip() for c in cells):
                    yield reader.line_num, cells
        except csv.Error as e:
            raise ConfigError(f"{source}:{reader.line_num}", f"is not valid CSV: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(source, "is not UTF-8 text; save it as UTF-8 (CSV UTF-8)") from None

    return names, body(), sep


def _find(header: list[str], names: tuple[str, ...]) -> int | None:
    """The first of ``names`` among the header's columns, ignoring case."""
    lower = [h.lower() for h in header]
    return next((lower.index(n) for n in names if n in lower), None)


def _column(header: list[str], names: tuple[str, ...], source: str, sep: str) -> int:
    j = _find(header, names)
    if j is not None:
        return j
    wanted = " or ".join(repr(n) for n in names)
    has = ", ".join(shown(h) for h in header[:12]) + (", ..." if len(header) > 12 else "")
    raise ConfigError(
        source, f"no column {wanted} in the header (separator {sep!r}); the header has {has}"
    )


def _cell(cells: list[str], j: int, where: str, width: int) -> str:
    if j >= len(cells):
        raise ConfigError(where, f"has {len(cells)} field(s); the header has {width}")
    return cells[j]


def _window(start: float, end: float, name: str, where: str) -> Window:
    if end < start:
        raise ConfigError(where, "ends before it starts; swap its start and end")
    return Window(start, end, name)
