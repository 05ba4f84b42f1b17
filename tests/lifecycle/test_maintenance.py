"""Maintenance windows, the pure rules: coverage (half-open, overlaps combine), bounds, closing
early, overdue service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.maintenance import (
    MAX_LENGTH,
    Window,
    WindowError,
    check_window,
    closed_end,
    covers,
    overdue,
)

NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)


def window(wid: int, start: datetime, end: datetime, *devices: int) -> Window:
    return Window(wid, "service", start, end, frozenset(devices))


def test_a_window_covers_its_devices_from_start_until_just_before_its_end() -> None:
    w = [window(1, NOW, NOW + 2 * H, 10, 11)]
    assert covers(w, 10, NOW) and covers(w, 11, NOW + 2 * H - timedelta(microseconds=1))
    assert not covers(w, 10, NOW - timedelta(microseconds=1))
    assert not covers(w, 10, NOW + 2 * H)  # it ended by itself
    assert not covers(w, 12, NOW + H)  # not its device


def test_overlapping_windows_combine() -> None:
    w = [window(1, NOW, NOW + 2 * H, 10), window(2, NOW + H, NOW + 4 * H, 10, 11)]
    assert all(covers(w, 10, NOW + k * H / 2) for k in range(8))
    assert not covers(w, 10, NOW + 4 * H)
    assert not covers(w, 11, NOW + H / 2) and covers(w, 11, NOW + 3 * H)


def test_a_window_closed_before_it_started_covers_nothing() -> None:
    w = window(1, NOW + H, NOW + 3 * H, 10)
    end = closed_end(w, NOW)
    assert end == w.starts_at
    assert not covers([window(1, w.starts_at, end, 10)], 10, w.starts_at)
    assert closed_end(w, NOW + 2 * H) == NOW + 2 * H


def test_a_window_already_over_cannot_be_closed() -> None:
    with pytest.raises(WindowError) as e:
        closed_end(window(1, NOW - 3 * H, NOW - H, 10), NOW)
    assert e.value.field == "window" and "already ended" in e.value.message


def test_bounds_accept_the_longest_window_of_each_kind() -> None:
    for kind, length in MAX_LENGTH.items():
        assert check_window(kind, NOW - H, NOW - H + length, [1, 2], NOW) == kind
    assert MAX_LENGTH["service"] == 8 * H and MAX_LENGTH["repair"] == 72 * H


@pytest.mark.parametrize(
    ("kind", "start", "end", "devices", "field"),
    [
        ("cleaning", NOW, NOW + H, [1], "kind"),
        ("service", NOW, NOW + H, [], "device_ids"),
        ("service", NOW, NOW + H, [1, 1], "device_ids"),
        ("service", NOW, NOW + H, list(range(1, 502)), "device_ids"),
        ("service", NOW - H - timedelta(seconds=1), NOW + H, [1], "starts_at"),
        ("service", NOW + timedelta(days=31), NOW + timedelta(days=31, hours=1), [1], "starts_at"),
        ("service", NOW, NOW, [1], "ends_at"),
        ("service", NOW, NOW + 8 * H + timedelta(seconds=1), [1], "ends_at"),
        ("repair", NOW, NOW + 73 * H, [1], "ends_at"),
        ("service", NOW - H, NOW - timedelta(minutes=1), [1], "ends_at"),
        ("service", NOW.replace(tzinfo=None), NOW + H, [1], "starts_at"),
    ],
)
def test_bounds_refuse_naming_the_field(
    kind: str, start: datetime, end: datetime, devices: list[int], field: str
) -> None:
    with pytest.raises(WindowError) as e:
        check_window(kind, start, end, devices, NOW)
    assert e.value.field == field and e.value.message


def test_overdue_service_after_fifteen_days() -> None:
    assert not overdue("service", NOW - timedelta(days=15), NOW)
    assert overdue("service", NOW - timedelta(days=15, seconds=1), NOW)
    assert overdue("service", None, NOW)
    assert overdue("annual_inspection", NOW - timedelta(days=366), NOW)
    assert not overdue("repair", None, NOW)  # no interval
