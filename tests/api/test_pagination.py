"""Pagination (pure): opaque keyset cursors and pages fetched with one row more than shown."""

from __future__ import annotations

import pytest

from api.errors import ApiError
from api.pagination import PageParams, decode_cursor, encode_cursor, page


def test_a_cursor_round_trips_its_key_and_reveals_no_sql() -> None:
    for key in [(1,), (2_147_483_647,), ("2024-05-01 08:00:00+00:00", "2026.1")]:
        cursor = encode_cursor(key)
        assert "=" not in cursor and " " not in cursor
        assert decode_cursor(cursor, len(key)) == key


@pytest.mark.parametrize("cursor", ["", "!!!", encode_cursor((1, 2)), "bnVsbA", "W3RydWVd"])
def test_a_foreign_or_broken_cursor_is_a_400_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(ApiError) as e:
        PageParams(10, cursor).after_id()
    assert e.value.status == 400
    assert e.value.fields[0].field == "query.cursor"


def test_the_extra_row_says_whether_there_is_a_next_page() -> None:
    assert page([1, 2, 3], 3, lambda r: (r,)).next is None
    more = page([1, 2, 3, 4], 3, lambda r: (r,))
    assert more.items == [1, 2, 3]
    assert more.next is not None and decode_cursor(more.next, 1) == (3,)
    assert page([], 3, lambda r: (r,)).model_dump() == {"items": [], "next": None}
