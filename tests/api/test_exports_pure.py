"""Spreadsheet exports (api/exports.py), pure: CSV and XLSX as Excel and openpyxl read them,
and formula injection neutralised whatever the table holds."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import exports
from api.exports import Cell, Column, Table

PAYLOADS = ['=HYPERLINK("http://x","y")', "+1+1", "-2", "@SUM(A1)", "\t=1", "\r=1", "  =1+1"]
COLUMNS = (Column("编号", "Id"), Column("名称", "Name"), Column.time("时间", "At"))


def csv_rows(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def xlsx_sheet(data: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(data)).active


def neutral(value: str) -> bool:
    """Nothing a spreadsheet would start a formula with, leading whitespace or not."""
    return not value.startswith(exports.TRIGGERS) and value.lstrip()[:1] not in ("=", "+", "-", "@")


@pytest.mark.parametrize("payload", PAYLOADS)
def test_a_formula_trigger_gets_an_apostrophe(payload: str) -> None:
    assert exports.text(payload) == "'" + payload
    assert not neutral(payload) and neutral(exports.text(payload))


@pytest.mark.parametrize("value", ["", "abc", "1-2", "a=b", "小区 =1", "'=1", "email@x.cn"])
def test_other_text_is_left_as_it_is(value: str) -> None:
    assert exports.text(value) == value


def test_illegal_control_characters_are_replaced_and_long_text_cut() -> None:
    assert exports.text("a\x00b\x0bc\x1fd\ttab\nline") == "a\ufffdb\ufffdc\ufffdd\ttab\nline"
    assert exports.text("\x01=1") == "\ufffd=1"
    assert len(exports.text("x" * 40_000)) == exports.MAX_TEXT


def test_times_are_shown_in_beijing_time_to_the_second() -> None:
    t = datetime(2024, 2, 5, 2, 30, 15, 999_999, tzinfo=UTC)
    assert exports.beijing(t) == datetime(2024, 2, 5, 10, 30, 15)
    other = timezone(timedelta(hours=-5))
    assert exports.beijing(t.astimezone(other)) == datetime(2024, 2, 5, 10, 30, 15)
    with pytest.raises(ValueError, match="without a zone"):
        exports.beijing(datetime(2024, 2, 5))


def test_a_table_refuses_a_bad_sheet_name_or_a_short_row() -> None:
    with pytest.raises(ValueError, match="worksheet"):
        Table("a/b", COLUMNS, [])
    with pytest.raises(ValueError, match="worksheet"):
        Table("x" * 32, COLUMNS, [])
    with pytest.raises(ValueError, match="row 1 has 2 cells for 3 columns"):
        Table("S", COLUMNS, [[1, "a", None], [2, "b"]])


ROWS: list[list[Cell]] = [
    [1, '东区, "一号"楼\n二层', datetime(2024, 2, 5, 2, 0, tzinfo=UTC)],
    [2, "=1+1", None],
    [3, None, datetime(2024, 12, 31, 16, 0, 1, tzinfo=UTC)],
]


def test_csv_is_utf8_with_bom_rfc4180_and_beijing_time() -> None:
    data = exports.to_csv(Table("S", COLUMNS, ROWS))
    assert data.startswith(
        "\ufeff编号 Id,名称 Name,时间（北京时间） At (Beijing time)\r\n".encode()
    )
    assert b'"\xe4\xb8\x9c\xe5\x8c\xba, ""' in data  # the comma and quotes are quoted
    assert csv_rows(data)[1:] == [
        ["1", '东区, "一号"楼\n二层', "2024-02-05 10:00:00"],
        ["2", "'=1+1", ""],
        ["3", "", "2025-01-01 00:00:01"],
    ]


def test_csv_writes_numbers_and_booleans_as_excel_reads_them() -> None:
    cols = (Column("a", "A"), Column("b", "B"), Column("c", "C"), Column("d", "D"))
    data = exports.to_csv(Table("S", cols, [[-7, 0.4, True, float("nan")]]))
    assert csv_rows(data)[1] == ["-7", "0.4", "TRUE", ""]


@pytest.mark.parametrize("streamed", [False, True])
def test_xlsx_has_a_frozen_bold_header_typed_cells_and_sized_columns(
    streamed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if streamed:  # constant_memory mode, as for a large table
        monkeypatch.setattr(exports, "STREAM_ROWS", 1)
    cols = (*COLUMNS, Column("份额", "Share"), Column("是否", "Flag"))
    rows: list[list[Cell]] = [[*r, 0.4 if r[0] == 1 else None, r[0] == 1] for r in ROWS]
    ws = xlsx_sheet(exports.to_xlsx(Table("工单 Work orders", cols, rows)))
    assert ws.title == "工单 Work orders"
    assert ws.freeze_panes == "A2"
    header = ws[1]
    assert [c.value for c in header] == [c.header for c in cols]
    assert all(c.font.b for c in header)
    values = [[c.value for c in row] for row in ws.iter_rows(min_row=2)]
    assert values == [
        [1, '东区, "一号"楼\n二层', datetime(2024, 2, 5, 10, 0), 0.4, True],
        [2, "'=1+1", None, None, False],
        [3, None, datetime(2025, 1, 1, 0, 0, 1), None, False],
    ]
    types = [c.data_type for c in ws[2]]
    assert types == ["n", "s", "d", "n", "b"]
    assert ws[2][2].number_format == "yyyy-mm-dd hh:mm:ss"
    widths = ws.column_dimensions
    assert widths["C"].width > widths["A"].width  # the header of times is the longer


def test_widths_count_chinese_as_two_and_stay_within_bounds() -> None:
    t = Table("S", (Column("名", "N"), Column("x", "X")), [["长" * 10, "y" * 500]])
    assert exports.widths(t) == [22, 60]


def test_the_download_name_has_an_ascii_fallback_and_the_utf8_name() -> None:
    got = exports.disposition('work orders;"x".csv', "工单_work-orders.csv")
    assert got == (
        'attachment; filename="work_orders__x_.csv";'
        " filename*=UTF-8''%E5%B7%A5%E5%8D%95_work-orders.csv"
    )
    got.encode("latin-1")  # a header value HTTP can carry


# Any table: every text cell comes out neutral in both formats, and as text() says.

cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**18), max_value=10**18),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(PAYLOADS),
    st.builds(lambda p, s: p + s, st.sampled_from(["", " ", "\u3000", "\n", "\x0b"]), st.text()),
    st.datetimes(
        min_value=datetime(1901, 1, 1), max_value=datetime(9998, 1, 1), timezones=st.just(UTC)
    ),
)
tables = st.integers(min_value=1, max_value=4).flatmap(
    lambda n: st.lists(st.lists(cells, min_size=n, max_size=n), max_size=8).map(
        lambda rows: Table("S", [Column(f"列{i}", f"C{i}") for i in range(n)], rows)
    )
)


def texts(rows: Sequence[Sequence[Cell]]) -> list[tuple[int, int, str]]:
    return [
        (r, c, v) for r, row in enumerate(rows) for c, v in enumerate(row) if isinstance(v, str)
    ]


@given(table=tables)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_no_exported_text_cell_starts_a_formula(table: Table) -> None:
    read = csv_rows(exports.to_csv(table))
    assert len(read) == len(table.rows) + 1
    assert all(neutral(cell) for cell in read[0])
    for r, c, v in texts(table.rows):
        assert read[r + 1][c] == exports.text(v)
        assert neutral(read[r + 1][c])

    ws = xlsx_sheet(exports.to_xlsx(table))
    for row in ws.iter_rows():
        for cell in row:
            assert cell.data_type != "f"
            if isinstance(cell.value, str):
                assert neutral(cell.value)
    for r, c, v in texts(table.rows):
        # openpyxl leaves Excel's escape of a carriage return (_x000D_) as it is
        expected = exports.text(v).replace("\r", "_x000D_")
        assert ws.cell(r + 2, c + 1).value == expected
