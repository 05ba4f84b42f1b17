"""Analytics: replay a CSV of historical readings through the detectors; write the alarms they raise.

The CSV has a header, a time column and numeric columns with any names. It is read in chunks with
the csv module and numpy, so its size is bounded by the disk, not by memory. The first stretch
(``calibrate_rows`` rows, or rows up to ``calibrate_until``) only teaches: the baselines learn it and
the multivariate model is trained on it. After it, every column's :class:`Baseline` reports level
shifts and drift, and the model reports rows whose columns stop agreeing with one another.

Output CSV, one alarm a row, in time order: ``time`` (ISO 8601 in ``tz``), ``columns`` (``|``-joined),
``event`` (``level_shift``, ``baseline_drift``, ``multivariate_anomaly``), ``score`` (z of the visit
median for shifts, distance for the model), ``direction`` (``up``/``down``), ``since`` (estimated
start).
"""

from __future__ import annotations

import csv
import itertools
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from analytics.baseline import Baseline, BaselineParams, FloatArray
from analytics.multivariate import Episodes, Model, train
from core.errors import ConfigError

CST_TZ = timezone(timedelta(hours=8), "CST")
IntArray = NDArray[np.int64]
EVENT_FIELDS = ("time", "columns", "event", "score", "direction", "since")


@dataclass(frozen=True, slots=True)
class ReplayStats:
    rows: int
    calibration_rows: int
    rows_skipped: int  # too few fields
    alarms: int
    events: dict[str, int]
    model_version: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class Detection:
    at: float
    columns: tuple[str, ...]
    event: str
    score: float
    direction: str
    since: float


class Detectors:
    """Every detector of a replay over one stream of rows (one column per ``columns``); pure.

    Rows go to ``learn`` while calibrating, then to ``detect``; the first ``detect`` trains the
    multivariate model on what ``learn`` saw.
    """

    def __init__(
        self,
        columns: Sequence[str],
        baseline_columns: Sequence[str],
        multivariate_columns: Sequence[str],
        params: BaselineParams,
        quantile: float,
        window: int,
        min_hits: int,
        quiet_seconds: float,
    ) -> None:
        for c in [*baseline_columns, *multivariate_columns]:
            if c not in columns:
                raise ConfigError("replay", f"column {c!r} is not among the columns {columns}")
        self.b_cols = [(c, list(columns).index(c), Baseline(params)) for c in baseline_columns]
        self.m_cols = list(multivariate_columns)
        self.m_idx = [list(columns).index(c) for c in multivariate_columns]
        self.quantile, self.window, self.min_hits = quantile, window, min_hits
        self.quiet_seconds = quiet_seconds
        self.training: list[FloatArray] = []
        self.last_learned: float | None = None
        self.model: Model | None = None
        self.episodes: Episodes | None = None

    def learn(self, ts: FloatArray, x: FloatArray) -> None:
        for _, j, b in self.b_cols:
            b.update(ts, x[:, j])
        if self.m_cols and len(ts):
            self.training.append(x[:, self.m_idx])
            self.last_learned = float(np.fmax.reduce(ts))

    def _train(self) -> None:
        when = datetime.fromtimestamp(self.last_learned or 0.0, UTC)
        rows = np.concatenate(self.training) if self.training else np.empty((0, len(self.m_cols)))
        self.training = []
        try:
            self.model = train(rows, self.m_cols, trained_at=when, quantile=self.quantile)
        except ValueError as e:
            raise ConfigError("replay", f"the calibration stretch is too short: {e}") from e
        self.episodes = Episodes(
            self.model.threshold, self.window, self.min_hits, self.quiet_seconds
        )

    def detect(self, ts: FloatArray, x: FloatArray) -> list[Detection]:
        found: list[Detection] = []
        for c, j, b in self.b_cols:
            for s in b.update(ts, x[:, j]).shifts:
                direction = "up" if s.direction > 0 else "down"
                found.append(Detection(s.at, (c,), s.kind, abs(s.z), direction, s.since))
        if self.m_cols and self.model is None:
            self._train()
        if self.model is not None and self.episodes is not None:
            xm = x[:, self.m_idx]
            for a in self.episodes.update(ts, self.model.score(xm)):
                involved = tuple(self.model.explain(xm[a.index]))
                found.append(
                    Detection(a.at, involved, "multivariate_anomaly", a.score, "", a.since)
                )
        found.sort(key=lambda d: d.at)
        return found


def replay(
    src: Path,
    out: Path,
    *,
    time_column: str,
    columns: Sequence[str],
    sep: str = ",",
    time_format: str = "iso",
    calibrate_rows: int | None = None,
    calibrate_until: datetime | None = None,
    baseline_columns: Sequence[str] | None = None,
    multivariate_columns: Sequence[str] | None = None,
    tz: tzinfo = CST_TZ,
    baseline: BaselineParams | None = None,
    quantile: float = 0.999,
    window: int = 6,
    min_hits: int = 3,
    quiet_seconds: float = 3600.0,
    chunk_rows: int = 100_000,
) -> ReplayStats:
    """Replay ``src`` into ``out``. ``time_format``: 'iso', 'epoch_s', 'epoch_ms' or a strptime
    format; times without an offset, and a naive ``calibrate_until``, are in ``tz`` (UTC+8).
    ``baseline_columns`` and ``multivariate_columns`` default to ``columns``; an empty list turns
    that detector off. Rows are expected in time order; rows that go back in time are not learned
    from by the baselines."""
    started = time.perf_counter()
    if (calibrate_rows is None) == (calibrate_until is None):
        raise ConfigError("replay", "give exactly one of calibrate_rows and calibrate_until")
    if not columns:
        raise ConfigError("replay", "give at least one column to replay")
    until = None
    if calibrate_until is not None:
        aware = calibrate_until if calibrate_until.tzinfo else calibrate_until.replace(tzinfo=tz)
        until = aware.timestamp()
    det = Detectors(
        list(columns),
        list(columns if baseline_columns is None else baseline_columns),
        list(columns if multivariate_columns is None else multivariate_columns),
        baseline or BaselineParams(),
        quantile,
        window,
        min_hits,
        quiet_seconds,
    )
    rows = cal_rows = skipped = 0
    counts: Counter[str] = Counter()
    with out.open("w", newline="") as fo:
        writer = csv.writer(fo)
        writer.writerow(EVENT_FIELDS)
        for ts, x, bad in read_chunks(src, time_column, columns, sep, time_format, tz, chunk_rows):
            n, skipped = len(ts), skipped + bad
            if cal_rows < rows:  # calibration is over
                split = 0
            elif until is not None:
                beyond = np.flatnonzero(ts > until)
                split = int(beyond[0]) if beyond.size else n
            else:
                split = min(n, max(0, (calibrate_rows or 0) - rows))
            rows, cal_rows = rows + n, cal_rows + split
            det.learn(ts[:split], x[:split])
            if split == n:
                continue
            for d in det.detect(ts[split:], x[split:]):
                cols = "|".join(d.columns)
                score, since = f"{d.score:.3f}", _iso(d.since, tz)
                writer.writerow((_iso(d.at, tz), cols, d.event, score, d.direction, since))
                counts[d.event] += 1
    return ReplayStats(
        rows=rows,
        calibration_rows=cal_rows,
        rows_skipped=skipped,
        alarms=sum(counts.values()),
        events=dict(counts),
        model_version=det.model.version if det.model else None,
        seconds=time.perf_counter() - started,
    )


def _iso(t: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


# --- reading ----------------------------------------------------------------------------------


def read_chunks(
    src: Path,
    time_column: str,
    columns: Sequence[str],
    sep: str,
    time_format: str,
    tz: tzinfo,
    chunk_rows: int,
) -> Iterator[tuple[FloatArray, FloatArray, int]]:
    """Yield (Unix seconds, values with one column per ``columns``, rows skipped) per chunk.

    Empty and non-numeric cells are NaN; rows with too few fields are skipped and counted.
    """
    with src.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise ConfigError(str(src), "the file is empty; a header row is expected")
        names = [h.strip() for h in header]
        missing = [c for c in (time_column, *columns) if c not in names]
        if missing:
            raise ConfigError(
                str(src),
                f"no column {missing} in the header (separator {sep!r}); the header has {names}",
            )
        t_i, idx = names.index(time_column), [names.index(c) for c in columns]
        need = max(t_i, *idx) + 1
        while True:
            first = reader.line_num + 1
            chunk = list(itertools.islice(reader, chunk_rows))
            if not chunk:
                return
            good = [r for r in chunk if len(r) >= need]
            blank = sum(1 for r in chunk if not r)  # blank lines are not errors
            where = f"{src}:{first}-{reader.line_num}"
            ts = parse_times([r[t_i] for r in good], time_format, tz, where)
            x = np.empty((len(good), len(idx)))
            for k, j in enumerate(idx):
                x[:, k] = _floats([r[j] for r in good])
            yield ts, x, len(chunk) - len(good) - blank


def _floats(cells: list[str]) -> FloatArray:
    try:
        return np.array(cells, dtype=np.float64)
    except ValueError:
        out = np.empty(len(cells))
        for i, c in enumerate(cells):
            try:
                out[i] = float(c)
            except ValueError:
                out[i] = np.nan
        return out


_FIXED = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_ANY = "\x00"  # in a template: any one character (ISO's 'T' or ' ')


def parse_times(cells: list[str], fmt: str, tz: tzinfo, where: str = "") -> FloatArray:
    """Unix seconds from 'epoch_s', 'epoch_ms', 'iso' or strptime-format cells; naive ones in ``tz``.

    Fixed-width numeric formats (``%Y-%m-%d %H:%M:%S`` and the like, and plain ISO) are parsed
    with numpy in one go; anything else one cell at a time.
    """
    try:
        if fmt == "epoch_s":
            return np.array(cells, dtype=np.float64)
        if fmt == "epoch_ms":
            return np.array(cells, dtype=np.float64) / 1000.0
        template = f"%Y-%m-%d{_ANY}%H:%M:%S" if fmt == "iso" else fmt
        fast = _fixed_width(cells, template, tz)
        if fast is not None:
            return fast
        if fmt == "iso":
            parsed = [datetime.fromisoformat(c.strip()) for c in cells]
        else:
            parsed = [datetime.strptime(c.strip(), fmt) for c in cells]
        return np.array([(d if d.tzinfo else d.replace(tzinfo=tz)).timestamp() for d in parsed])
    except ValueError as e:
        raise ConfigError(where, f"cannot read the times with format {fmt!r}: {e}") from e


def _fixed_width(cells: list[str], template: str, tz: tzinfo) -> FloatArray | None:
    offset = tz.utcoffset(None)
    if offset is None or not cells:
        return None
    fields: list[tuple[str, int]] = []  # (directive, start)
    literals: list[tuple[int, str]] = []
    pos = 0
    for m in re.finditer(r"%(.)|([^%])", template):
        if m.group(1) is not None:
            if m.group(1) not in _FIXED:
                return None
            fields.append((m.group(1), pos))
            pos += _FIXED[m.group(1)]
        else:
            if m.group(2) != _ANY:
                literals.append((pos, m.group(2)))
            pos += 1
    arr = np.array(cells)
    if arr.dtype.kind != "U" or arr.dtype.itemsize // 4 != pos:
        return None
    codes = arr.view(np.uint32).reshape(len(cells), pos)
    if any((codes[:, p] != ord(ch)).any() for p, ch in literals):
        return None
    n = len(cells)
    val = {k: np.full(n, v, dtype=np.int64) for k, v in (("Y", 1970), ("m", 1), ("d", 1))}
    val |= {k: np.zeros(n, dtype=np.int64) for k in "HMS"}
    for name, start in fields:
        digits = codes[:, start : start + _FIXED[name]].astype(np.int64) - 48
        if ((digits < 0) | (digits > 9)).any():
            return None
        val[name] = digits @ (10 ** np.arange(_FIXED[name] - 1, -1, -1, dtype=np.int64))
    y, mo, d, h, mi, s = (val[k] for k in "YmdHMS")
    one = np.ones_like(d)
    month_len = _days_from_civil(y + mo // 12, mo % 12 + 1, one) - _days_from_civil(y, mo, one)
    ok = (mo >= 1) & (mo <= 12) & (d >= 1) & (d <= month_len) & (h < 24) & (mi < 60) & (s < 61)
    if not ok.all():
        return None  # let the slow path name the bad cell
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    return secs.astype(np.float64) - offset.total_seconds()


def _days_from_civil(y: IntArray, m: IntArray, d: IntArray) -> IntArray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), vectorised."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return np.asarray(era * 146097 + doe - 719468, dtype=np.int64)
