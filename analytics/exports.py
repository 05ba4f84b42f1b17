"""Analytics: reading a firm's CSV exports of readings (pure apart from reading the file).

A header, a time column and numeric columns with any names, any separator, any time format. The
file is read in chunks with the csv module and numpy, so its size is bounded by the disk, not by
memory. Times are read fast with numpy for fixed-width formats and otherwise cell by cell with
:mod:`analytics.timeparse` (which also accepts ISO 8601 whatever the format given).
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from analytics.timeparse import parse_time
from core.errors import ConfigError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CST_TZ = timezone(timedelta(hours=8), "CST")


def header(src: Path, sep: str) -> list[str]:
    """The column names of ``src``."""
    with src.open(newline="", encoding="utf-8-sig") as f:
        first = next(csv.reader(f, delimiter=sep), None)
    if first is None:
        raise ConfigError(str(src), "the file is empty; a header row is expected")
    return [h.strip() for h in first]


def numeric_columns(src: Path, time_column: str, sep: str, sample: int = 2000) -> list[str]:
    """The columns besides ``time_column`` whose non-empty cells in the first ``sample`` rows are
    nearly all (90 %) numbers."""
    names = header(src, sep)
    if time_column not in names:
        raise ConfigError(
            str(src),
            f"no time column {time_column!r} in the header (separator {sep!r}); "
            f"the header has {names}; name it with --time-column",
        )
    good = [0] * len(names)
    seen = [0] * len(names)
    with src.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=sep)
        next(reader, None)
        for row in itertools.islice(reader, sample):
            for j, cell in enumerate(row[: len(names)]):
                if cell.strip():
                    seen[j] += 1
                    try:
                        float(cell)
                        good[j] += 1
                    except ValueError:
                        pass
    return [
        n for j, n in enumerate(names) if n != time_column and seen[j] and good[j] >= 0.9 * seen[j]
    ]


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
    except ValueError:
        # cell by cell, with ISO 8601 accepted whatever the format; names the bad cell
        return np.array([parse_time(c, fmt, tz, where) for c in cells], dtype=np.float64)


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
