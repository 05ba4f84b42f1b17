"""A simulated week of one demo community (the data clock: the simulator's behaviour models
sampled over the past week), archived by ingest's pass: ``shouwang storage`` shows at most 10
bytes per archived reading, and the dashboards' panels, the rollup and the API's range query
over archived days give what they gave before, in time."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from analytics.rollup import catch_up, recompute
from bench.storage import RANGE_QUERY, community, simulate
from core.db import Conn, connect
from dashboards.access import grant_regulator, revoke
from dashboards.folders import all_dashboards
from dashboards.macros import TimeRange
from ingest.archive import archive_pass
from ingest.footprint import measure, total
from responsibility.loader import default_list
from tests.conftest import fresh_database
from tests.dashboards.panels import login_url, problems, run

DAYS = 7.0
STEP_S = 120.0  # devices report every 10 s; one sample in two minutes keeps the test short (and is
# the harder case for the archive: fewer readings share each row's overhead)
# The targets are 500 ms a panel and the API's 100 ms p99 (docs/benchmarks.md, measured by the
# benchmark commands); here, on two cores shared with the rest of the suite, a query may take a
# little over them, so the test holds twice the target: it catches an archive the queries cannot
# use, not a busy machine.
PANEL_MS = 1000.0
API_MS = 200.0


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, datetime, Conn]]:
    with (
        fresh_database(f"shouwang_test_{os.getpid()}_week") as url,
        connect(url, autocommit=True) as conn,
    ):
        community(conn, tmp_path_factory.mktemp("week") / "secrets.json")
        now = time.time()
        simulate(conn, now=now, days=DAYS, step_s=STEP_S)
        end = datetime.fromtimestamp(now, UTC)
        catch_up(conn, end)
        conn.execute("CREATE TABLE rollup_before AS SELECT * FROM readings_1m")
        conn.execute("CREATE TABLE readings_before AS SELECT * FROM readings")
        done = archive_pass(conn, now=end, after_days=2)
        assert done.chunks >= 4, done
        conn.execute("VACUUM ANALYZE readings_archive")
        yield url, end, conn


def test_storage_shows_at_most_10_bytes_per_archived_reading(
    week: tuple[str, datetime, Conn], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, end, conn = week
    archived = total(measure(conn), "readings_archive")
    assert archived is not None and archived.per_reading is not None
    assert archived.per_reading <= 10.0, archived
    monkeypatch.setenv("SHOUWANG_DATABASE_URL", url)
    from shouwang.cli import app

    out = CliRunner().invoke(app, ["storage"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    print(out.output)
    line = next(li for li in out.output.splitlines() if "readings_archive" in li and " all " in li)
    shown = float(re.findall(r"(\d+\.\d+)", line)[-1])
    assert shown == pytest.approx(archived.per_reading, abs=0.01)
    assert shown <= 10.0
    (left,) = conn.execute("SELECT min(ts) FROM readings").fetchone() or (None,)
    assert left is not None and left >= end - timedelta(days=3), "younger days stay as they are"


def test_every_reading_is_in_one_place_and_equal(week: tuple[str, datetime, Conn]) -> None:
    _, _, conn = week
    row = conn.execute(
        "SELECT (SELECT count(*) FROM readings_before),"
        " (SELECT count(*) FROM readings) + (SELECT sum(n) FROM readings_archive),"
        " (SELECT count(*) FROM (SELECT * FROM readings_before"
        "  EXCEPT ALL SELECT ts, device_id, metric_id, value FROM readings_all) x)"
    ).fetchone()
    assert row is not None
    assert row[0] == row[1] and row[2] == 0


def test_the_rollup_of_archived_days_is_the_same(week: tuple[str, datetime, Conn]) -> None:
    _, end, conn = week
    lo, hi = end - timedelta(days=5), end - timedelta(days=4)
    lo = lo.replace(second=0, microsecond=0)
    hi = hi.replace(second=0, microsecond=0)
    with conn.transaction():
        t0 = time.perf_counter()
        recompute(conn, lo, hi)
        spent = time.perf_counter() - t0
    diff = conn.execute(
        "SELECT count(*) FROM ((SELECT * FROM readings_1m WHERE bucket >= %(lo)s AND bucket < %(hi)s"
        " EXCEPT ALL SELECT * FROM rollup_before WHERE bucket >= %(lo)s AND bucket < %(hi)s)"
        " UNION ALL (SELECT * FROM rollup_before WHERE bucket >= %(lo)s AND bucket < %(hi)s"
        " EXCEPT ALL SELECT * FROM readings_1m WHERE bucket >= %(lo)s AND bucket < %(hi)s)) d",
        {"lo": lo, "hi": hi},
    ).fetchone()
    print(f"\nrollup of an archived day recomputed in {spent:.2f} s")
    assert diff == (0,)


def test_api_range_queries_over_archived_days_are_fast(week: tuple[str, datetime, Conn]) -> None:
    _, end, conn = week
    (dev,) = conn.execute("SELECT min(id) FROM devices").fetchone() or (None,)
    at = end - timedelta(days=4)
    for span, bucket in ((timedelta(hours=1), 60), (timedelta(days=1), 300)):
        args = {"b": bucket, "start": at - span, "end": at, "d": dev}
        rows = conn.execute(RANGE_QUERY, args).fetchall()
        expected = conn.execute(
            RANGE_QUERY.replace("readings_between(%(start)s, %(end)s)", "readings_before"), args
        ).fetchall()
        assert rows and len(rows) == len(expected)
        for got, want in zip(rows, expected, strict=True):
            # the same readings; an average may differ in its last bits (another summing order)
            assert got[:2] + got[3:] == want[:2] + want[3:]
            assert got[2] == pytest.approx(want[2], rel=1e-12)
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            conn.execute(RANGE_QUERY, args).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
        print(f"\nAPI range {span}, bucket {bucket} s: median {sorted(times)[2]:.1f} ms")
        assert sorted(times)[2] < API_MS, times


def test_panels_over_archived_days_run_in_time(week: tuple[str, datetime, Conn]) -> None:
    url, end, conn = week
    name = f"dash_week_{os.getpid()}"
    creds = grant_regulator(conn, name)
    try:
        with connect(login_url(url, creds), autocommit=True) as reg:
            tr = TimeRange(end - timedelta(days=4, hours=6), end - timedelta(days=4))
            results = [r for p in all_dashboards(default_list()) for r in run(reg, p.dashboard, tr)]
    finally:
        revoke(conn, name)
    # (the week has no alarms or work orders: panels of those are empty, as they should be)
    bad = {r.name: p for r in results if r.rows and (p := problems(r))}
    assert not bad, bad
    slow = {r.name: round(r.ms) for r in results if r.ms > PANEL_MS}
    assert not slow, slow
    print(f"\n{len(results)} panel queries, slowest {max(r.ms for r in results):.1f} ms")
    with_rows = [r for r in results if r.rows]
    assert len(with_rows) > len(results) / 2
