"""API: tables rendered as spreadsheet files, CSV and XLSX, for firms and regulators (pure).

A :class:`Table` has bilingual column headers ("工单编号 Work order") and rows of typed values:
``int``, ``float``, ``bool``, ``str``, an aware ``datetime`` or ``None`` (an empty cell).

- **CSV** (:func:`to_csv`): UTF-8 with a byte-order mark (so Excel reads the Chinese), RFC 4180
  (comma, ``"`` quoting where needed, CRLF line ends).
- **XLSX** (:func:`to_xlsx`, XlsxWriter): a bold header row frozen above the data, columns
  sized to their content, numbers as numbers, times as Excel date-times. Every text cell is
  written as a string, never read as a formula. Above :data:`STREAM_ROWS` rows the rows go out
  in XlsxWriter's ``constant_memory`` mode (its temporary file) so memory stays flat.
- **Times** are shown in Beijing time (UTC+8) without a zone, to the second (what Excel can show);
  their headers say so (:meth:`Column.time`).
- **Formula injection** (OWASP "CSV injection") is neutralised in both: a text cell that begins,
  after any leading whitespace, with ``=``, ``+``, ``-`` or ``@``, or that begins with a tab or
  carriage return, gets a leading apostrophe (:func:`text`). The XLSX gets the same rule, so a
  sheet saved again as CSV stays safe.
- Control characters XML (and so XLSX) cannot hold are replaced with U+FFFD in both formats;
  text is cut at Excel's 32,767 characters.

At most :data:`MAX_ROWS` rows make one export; the caller checks, before rendering.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import xlsxwriter

from core.workcalendar import SHANGHAI

MAX_ROWS: Final = 100_000
STREAM_ROWS: Final = 5_000  # above this many rows the XLSX is written in constant_memory mode
MAX_TEXT: Final = 32_767  # Excel's limit on a cell's text

CSV_MEDIA_TYPE: Final = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

Cell = int | float | bool | str | datetime | None

TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
_LEADING: Final = frozenset("=+-@")
# What XML 1.0 cannot hold: C0 controls but tab, line feed and carriage return; lone surrogates;
# U+FFFE and U+FFFF.
_ILLEGAL: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
_MIN_WIDTH, _MAX_WIDTH, _SAMPLE = 8, 60, 500


@dataclass(frozen=True, slots=True)
class Column:
    zh: str
    en: str

    @classmethod
    def time(cls, zh: str, en: str) -> Column:
        """A column of times, its header saying they are Beijing time."""
        return cls(f"{zh}（北京时间）", f"{en} (Beijing time)")

    @property
    def header(self) -> str:
        return f"{self.zh} {self.en}"


@dataclass(frozen=True, slots=True)
class Table:
    """``sheet``: the worksheet's name (at most 31 characters, none of ``[]:*?/\\``)."""

    sheet: str
    columns: Sequence[Column]
    rows: Sequence[Sequence[Cell]]

    def __post_init__(self) -> None:
        if not 1 <= len(self.sheet) <= 31 or any(c in self.sheet for c in "[]:*?/\\"):
            raise ValueError(f"not a worksheet name: {self.sheet!r}")
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"row {i} has {len(row)} cells for {len(self.columns)} columns")


def text(value: str) -> str:
    """A text cell as it is written: illegal characters replaced, cut to Excel's limit, and an
    apostrophe in front of anything a spreadsheet could take for a formula."""
    s = _ILLEGAL.sub("\ufffd", value)
    if s.startswith(TRIGGERS) or s.lstrip()[:1] in _LEADING:
        s = "'" + s
    return s[:MAX_TEXT]


def beijing(t: datetime) -> datetime:
    """An aware time as the naive Beijing time shown in a cell, to the second."""
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"a time without a zone cannot be exported: {t.isoformat()}")
    return t.astimezone(SHANGHAI).replace(tzinfo=None, microsecond=0)


def _csv_cell(v: Cell) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    if isinstance(v, datetime):
        return beijing(v).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, str):
        return text(v)
    raise TypeError(f"cannot export a {type(v).__name__}")


def to_csv(table: Table) -> bytes:
    out = io.StringIO(newline="")
    w = csv.writer(out, dialect="excel", lineterminator="\r\n")
    w.writerow([text(c.header) for c in table.columns])
    for row in table.rows:
        w.writerow([_csv_cell(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


def _width(v: Cell) -> int:
    if v is None:
        return 0
    if isinstance(v, datetime):
        return 19
    s = v if isinstance(v, str) else str(v)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s[:_MAX_WIDTH])


def widths(table: Table) -> list[int]:
    """Each column's width in characters: its header's or its widest value's among the first
    rows, within 8..60."""
    out = []
    for i, col in enumerate(table.columns):
        seen = [_width(col.header)] + [_width(r[i]) for r in table.rows[:_SAMPLE]]
        out.append(min(_MAX_WIDTH, max(_MIN_WIDTH, max(seen) + 2)))
    return out


def to_xlsx(table: Table) -> bytes:
    out = io.BytesIO()
    stream = len(table.rows) > STREAM_ROWS
    book = xlsxwriter.Workbook(
        out,
        {
            "in_memory": not stream,
            "constant_memory": stream,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "default_date_format": _TIME_FORMAT,
            "remove_timezone": False,
        },
    )
    bold = book.add_format({"bold": True})
    when = book.add_format({"num_format": _TIME_FORMAT})
    sheet = book.add_worksheet(table.sheet)
    for i, width in enumerate(widths(table)):
        sheet.set_column(i, i, width)
    sheet.freeze_panes(1, 0)
    for i, col in enumerate(table.columns):
        sheet.write_string(0, i, text(col.header), bold)
    for r, row in enumerate(table.rows, 1):
        for c, v in enumerate(row):
            if v is None:
                continue
            if isinstance(v, bool):
                sheet.write_boolean(r, c, v)
            elif isinstance(v, int):
                sheet.write_number(r, c, v)
            elif isinstance(v, float):
                if math.isfinite(v):
                    sheet.write_number(r, c, v)
            elif isinstance(v, datetime):
                sheet.write_datetime(r, c, beijing(v), when)
            elif isinstance(v, str):
                sheet.write_string(r, c, text(v))
            else:
                raise TypeError(f"cannot export a {type(v).__name__}")
    book.close()
    return out.getvalue()


def disposition(ascii_name: str, name: str) -> str:
    """``Content-Disposition`` for a download: an ASCII ``filename`` for old clients (anything
    else becomes ``_``) and the full ``name`` as ``filename*`` (RFC 6266, UTF-8)."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", ascii_name) or "export"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"
