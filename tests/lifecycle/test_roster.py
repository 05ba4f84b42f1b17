from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lifecycle.roster import Shift, on_duty

SH = ZoneInfo("Asia/Shanghai")


def day_and_night(day: datetime) -> list[Shift]:
    """08:00–20:00 person 1, 19:45–08:15 person 2 (a 15-minute handover each way), Shanghai time."""
    d8 = day.replace(hour=8, tzinfo=SH)
    return [
        Shift(1, "duty_staff", 1, d8, d8 + timedelta(hours=12)),
        Shift(
            1,
            "duty_staff",
            2,
            d8 + timedelta(hours=11, minutes=45),
            d8 + timedelta(hours=24, minutes=15),
        ),
        Shift(2, "duty_staff", 3, d8, d8 + timedelta(hours=24)),
        Shift(1, "project_manager", 4, d8, d8 + timedelta(hours=24)),
    ]


def test_who_is_on_duty_by_community_role_and_time_of_day() -> None:
    shifts = day_and_night(datetime(2026, 11, 27))
    noon = datetime(2026, 11, 27, 12, tzinfo=SH)
    assert on_duty(shifts, 1, "duty_staff", noon) == [1]
    assert on_duty(shifts, 1, "duty_staff", noon.replace(hour=23)) == [2]
    assert on_duty(shifts, 1, "duty_staff", noon.replace(hour=19, minute=50)) == [1, 2], (
        "handover: both"
    )
    assert on_duty(shifts, 2, "duty_staff", noon) == [3]
    assert on_duty(shifts, 1, "project_manager", noon) == [4]
    assert on_duty(shifts, 1, "duty_staff", noon.astimezone(UTC)) == [1], (
        "any time zone in, same answer"
    )
    assert on_duty(shifts, 1, "duty_staff", noon + timedelta(days=2)) == []


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        on_duty([], 1, "duty_staff", datetime(2026, 11, 27, 12))
