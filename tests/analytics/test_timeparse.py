"""Reading a firm's times and durations: every format, naive times in the named zone, and errors
that name the file, line and value."""

from __future__ import annotations

from datetime import UTC

import pytest

from analytics.timeparse import parse_duration, parse_time, zone
from core.errors import ConfigError

T0 = 1_772_323_200.0  # 2026-03-01T00:00:00Z
SHANGHAI = zone("Asia/Shanghai")


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("2026-03-01 08:00", None, T0),  # naive: Shanghai
        ("2026-03-01T08:00:00", "iso", T0),
        ("2026-03-01T00:00:00Z", None, T0),
        ("2026-03-01T09:00:00+09:00", None, T0),
        ("2026-03-01", None, T0 - 8 * 3600),
        (" 2026/03/01 08:00 ", "%Y/%m/%d %H:%M", T0),
        ("01.03.2026 00:00:00 +0000", "%d.%m.%Y %H:%M:%S %z", T0),
        ("2026-03-01T08:00:00+08:00", "%d.%m.%Y", T0),  # not the format, but ISO 8601
        ("1772323200", "epoch", T0),
        ("1772323200.5", "epoch_s", T0 + 0.5),
        ("1772323200000", "epoch_ms", T0),
        ("2026-03-01T00:00:00Z", "epoch", T0),
    ],
)
def test_reads_every_format(text: str, fmt: str | None, expected: float) -> None:
    assert parse_time(text, fmt, SHANGHAI) == expected


def test_naive_times_are_in_the_named_zone_daylight_saving_included() -> None:
    assert parse_time("2026-03-01 00:00", None, UTC) == T0
    berlin = zone("Europe/Berlin")
    assert parse_time("2026-03-01 01:00", None, berlin) == T0  # winter: UTC+1
    assert parse_time("2026-07-01 02:00", None, berlin) == parse_time(
        "2026-07-01 00:00", None, UTC
    )  # summer: UTC+2


@pytest.mark.parametrize(
    ("text", "fmt", "message"),
    [
        ("", None, "data.csv:7: the time is empty"),
        ("yesterday", None, "data.csv:7: cannot read the time 'yesterday' as ISO 8601;"),
        (
            "2026-13-01",
            "%Y-%m-%d",
            "data.csv:7: cannot read the time '2026-13-01' as '%Y-%m-%d' or",
        ),
        ("nan", "epoch", "data.csv:7: the time 'nan' is not a finite epoch time"),
        ("-1e12", "epoch", "data.csv:7: the time '-1e12' is not a finite epoch time"),
        ("x" * 500, None, "data.csv:7: cannot read the time 'xxxxxxxxxx"),
    ],
)
def test_a_bad_time_names_the_place_and_the_value(text: str, fmt: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_time(text, fmt, UTC, "data.csv:7")
    assert str(e.value).startswith(message)
    assert len(str(e.value)) < 300  # a hostile cell is not echoed whole


def test_an_unknown_zone_says_what_to_give() -> None:
    for name in ("Mars/Olympus", "../../etc/passwd", ""):
        with pytest.raises(ConfigError, match="not a known IANA time zone"):
            zone(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        (" 1.5H ", 5400.0),
        (".5m", 30.0),
        ("0", 0.0),
    ],
)
def test_reads_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5m", "5x", "inf", "nan", "1e3", "5 min", "9" * 400])
def test_a_bad_duration_says_how_to_write_one(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--early: (cannot read|the duration)"):
        parse_duration(text, "--early")
