"""The macro expander against the outputs Grafana's PostgreSQL data source documents and tests
(``macros_test.go``, ``sqleng.Interpolate``, ``gtime``, ``rangeutil.roundInterval`` and the SQL
data sources' ``interpolateVariable``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.macros import (
    Fill,
    MacroError,
    TimeRange,
    Variable,
    auto_interval,
    expand_macros,
    format_interval,
    interpolate_variables,
    parse_interval,
    render,
    rfc3339nano,
    round_interval,
)

FROM = datetime(2018, 4, 12, 18, 0, tzinfo=UTC)
TR = TimeRange(FROM, FROM + timedelta(minutes=5))
MIN = timedelta(minutes=1)


def sql(text: str, *, ts: bool = False, tr: TimeRange = TR, interval: timedelta = MIN) -> str:
    return expand_macros(text, tr, interval, timescaledb=ts).sql


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("select $__time(time_column)", 'select time_column AS "time"'),
        ("select min($__time(time_column))", 'select min(time_column AS "time")'),
        ("select $__timeEpoch(t)", 'select extract(epoch from t) as "time"'),
        (
            "WHERE $__timeFilter(time_column)",
            "WHERE time_column BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'",
        ),
        ("select $__timeFrom()", "select '2018-04-12T18:00:00Z'"),
        ("select $__timeTo()", "select '2018-04-12T18:05:00Z'"),
        (
            "SELECT $__timeGroup(time_column,'5m')",
            "SELECT floor(extract(epoch from time_column)/300)*300",
        ),
        (
            "SELECT $__timeGroupAlias(time_column,'5m')",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time"',
        ),
        ("$__timeGroup(time_column , '5m')", "floor(extract(epoch from time_column)/300)*300"),
        # before Grafana 5.3 "$__timeGroup(...)," meant the aliased form, and still does
        (
            "SELECT $__timeGroup(time_column,'5m'), value",
            'SELECT floor(extract(epoch from time_column)/300)*300 AS "time", value',
        ),
        (
            "SELECT $__timeGroup(time_column,'5m') as time, value",
            "SELECT floor(extract(epoch from time_column)/300)*300 as time, value",
        ),
        ("select $__unixEpochFilter(time)", "select time >= 1523556000 AND time <= 1523556300"),
        (
            "select $__unixEpochNanoFilter(time)",
            "select time >= 1523556000000000000 AND time <= 1523556300000000000",
        ),
        ("select $__unixEpochNanoFrom()", "select 1523556000000000000"),
        ("select $__unixEpochNanoTo()", "select 1523556300000000000"),
        (
            "SELECT $__unixEpochGroup(time_column+time_adjustment,'5m')",
            "SELECT floor((time_column+time_adjustment)/300)*300",
        ),
        (
            "SELECT $__unixEpochGroupAlias(time_column+time_adjustment,'5m')",
            'SELECT floor((time_column+time_adjustment)/300)*300 AS "time"',
        ),
        ("select $__unixEpochFrom(), $__unixEpochTo()", "select 1523556000, 1523556300"),
        ("select 1 -- no macro here", "select 1 -- no macro here"),
    ],
)
def test_macros_expand_as_grafana_expands_them(given: str, expected: str) -> None:
    assert sql(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("GROUP BY $__timeGroup(time_column,'5m')", "GROUP BY time_bucket('300.000s',time_column)"),
        (
            "GROUP BY $__timeGroup(time_column , '5m')",
            "GROUP BY time_bucket('300.000s',time_column)",
        ),
        (
            "GROUP BY $__timeGroup(time_column , '12d')",
            "GROUP BY time_bucket('1036800.000s',time_column)",
        ),
        (
            "GROUP BY $__timeGroup(time_column , '20ms')",
            "GROUP BY time_bucket('0.020s',time_column)",
        ),
    ],
)
def test_timescaledb_groups_by_time_bucket(given: str, expected: str) -> None:
    assert sql(given, ts=True) == expected


def test_interval_and_its_milliseconds_come_first() -> None:
    out = sql(
        "SELECT $__timeGroupAlias(ts, $__interval), $__interval_ms", interval=timedelta(seconds=30)
    )
    assert out == 'SELECT floor(extract(epoch from ts)/30)*30 AS "time", 30000'
    assert sql("$__timeGroup(ts,$__interval)", ts=True, interval=timedelta(minutes=2)) == (
        "time_bucket('120.000s',ts)"
    )


def test_time_ranges_before_1970_and_with_fractions() -> None:
    old = TimeRange(
        datetime(1960, 2, 1, 7, 0, 0, 500_000, tzinfo=UTC),
        datetime(1980, 2, 3, 8, 0, 0, 500_000, tzinfo=UTC),
    )
    assert rfc3339nano(old.start) == "1960-02-01T07:00:00.5Z"
    assert sql("WHERE $__timeFilter(t)", tr=old) == (
        "WHERE t BETWEEN '1960-02-01T07:00:00.5Z' AND '1980-02-03T08:00:00.5Z'"
    )
    whole = TimeRange(datetime(1960, 2, 1, 7, tzinfo=UTC), datetime(1965, 2, 3, 8, tzinfo=UTC))
    # date -u -d '1960-02-01 07:00' +%s; date -u -d '1965-02-03 08:00' +%s
    assert sql("select $__unixEpochFilter(time)", tr=whole) == (
        "select time >= -312915600 AND time <= -154886400"
    )
    assert sql("select $__unixEpochNanoFilter(time)", tr=whole) == (
        "select time >= -312915600000000000 AND time <= -154886400000000000"
    )


def test_times_in_other_zones_are_written_in_utc() -> None:
    from zoneinfo import ZoneInfo

    local = FROM.astimezone(ZoneInfo("Asia/Shanghai"))
    assert rfc3339nano(local) == "2018-04-12T18:00:00Z"


def test_fill_modes_are_returned_for_grafana_to_apply() -> None:
    out = expand_macros("SELECT $__timeGroupAlias(t,'5m',NULL)", TR, MIN)
    assert out.fill == Fill("null", timedelta(minutes=5))
    assert expand_macros("$__timeGroup(t,'1m',previous)", TR, MIN).fill == Fill("previous", MIN)
    assert expand_macros("$__timeGroup(t,'1m',0)", TR, MIN).fill == Fill("value", MIN, 0.0)
    with pytest.raises(MacroError, match="fill value"):
        expand_macros("$__timeGroup(t,'1m',zero)", TR, MIN)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("$__timeGroup(t)", "needs a time column and an interval"),
        ("$__timeGroup(t, 'soon')", "error parsing interval"),
        ("$__nosuch(t)", 'unknown macro "__nosuch"'),
    ],
)
def test_what_grafana_refuses_is_refused(given: str, message: str) -> None:
    with pytest.raises(MacroError, match=message):
        sql(given)


def test_intervals_parse_and_format_like_gtime() -> None:
    assert parse_interval("5m") == timedelta(minutes=5)
    assert parse_interval("1h30m") == timedelta(minutes=90)
    assert parse_interval("250ms") == timedelta(milliseconds=250)
    assert parse_interval("2d") == timedelta(days=2)
    assert parse_interval("1w") == timedelta(weeks=1)
    feb = datetime(2024, 2, 10, tzinfo=UTC)
    assert parse_interval("1M", now=feb) == timedelta(days=29)
    assert parse_interval("1y", now=feb) == timedelta(days=366)
    with pytest.raises(MacroError):
        parse_interval("5 minutes")
    assert [
        format_interval(timedelta(seconds=s)) for s in (0.0005, 0.25, 30, 90, 7200, 86400 * 400)
    ] == [
        "1ms",
        "250ms",
        "30s",
        "1m",
        "2h",
        "1y",
    ]


def test_auto_interval_rounds_like_grafana_and_respects_the_minimum() -> None:
    assert [round_interval(ms) for ms in (10, 16_000, 21_600, 80_000, 10**11)] == [
        10,
        15_000,
        20_000,
        60_000,
        31_536_000_000,
    ]
    six_hours = TimeRange(FROM, FROM + timedelta(hours=6))
    assert auto_interval(six_hours, 1000) == timedelta(seconds=20)
    assert auto_interval(six_hours, 200) == timedelta(minutes=2)
    assert auto_interval(TR, 1000, "10s") == timedelta(seconds=10)


def test_variables_are_quoted_as_the_sql_data_sources_quote_them() -> None:
    chosen = {
        "community": Variable(("C01", "O'Brien")),
        "single": Variable(("it's",), multi=False, include_all=False),
        "one_of_many": Variable(("C01",)),
    }
    text = "IN ($community) AND ${single} = x AND [[one_of_many]] AND $__timeFilter(t) AND $other"
    assert interpolate_variables(text, chosen) == (
        "IN ('C01','O''Brien') AND it''s = x AND 'C01' AND $__timeFilter(t) AND $other"
    )


def test_render_runs_variables_then_macros() -> None:
    out = render(
        "SELECT $__timeGroupAlias(ts, $__interval) FROM r WHERE d IN ($device) AND $__timeFilter(ts)",
        {"device": Variable(("a", "b"))},
        TR,
        timedelta(seconds=20),
        timescaledb=True,
    )
    assert out == (
        "SELECT time_bucket('20.000s',ts) AS \"time\" FROM r WHERE d IN ('a','b')"
        " AND ts BETWEEN '2018-04-12T18:00:00Z' AND '2018-04-12T18:05:00Z'"
    )


def test_a_time_range_needs_time_zones() -> None:
    with pytest.raises(ValueError, match="timezone"):
        TimeRange(datetime(2024, 1, 1), datetime(2024, 1, 2))
