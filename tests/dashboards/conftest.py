"""Dashboard test fixtures: the session database with demo data for the last hours, a full-size
demo county in a database of its own, and dashboards login roles (dropped afterwards: roles
belong to the whole cluster). After a backfill the per-minute rollup (``readings_1m``, what the
panels over time read) is brought up to date, as analytics' rollup keeps it in production."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from analytics.rollup import catch_up
from core.db import Conn, connect
from dashboards.access import Credentials, grant_regulator, revoke
from responsibility.loader import default_list
from simulators.county import County, demo_county
from simulators.seed import seed
from tests.conftest import fresh_database
from tests.dashboards.demo_data import Summary, backfill
from tests.dashboards.panels import login_url

SPAN_S = 6 * 3600.0
# The full county: the 6 hours dashboards open on, one sample a minute. Devices report every
# 10 s, but the panels over time read the rollup, which has one row per device, metric and
# minute either way: its size is that of real density. (Raw-reading panels read the latest
# values only.)
FULL_SPAN_S = 6 * 3600.0
FULL_STEP_S = 60.0


@pytest.fixture(scope="session")
def demo(database_url: str, county: tuple[County, dict[str, str]]) -> tuple[str, float, Summary]:
    """The session database with the small county and 6 hours of demo data up to ``now``."""
    now = time.time()
    with connect(database_url, autocommit=True) as conn:
        summary = backfill(conn, default_list(), now=now, span_s=SPAN_S, step_s=60.0)
        catch_up(conn, datetime.fromtimestamp(now, UTC))
        conn.execute("ANALYZE readings_1m")
    return database_url, now, summary


def _regulator(url: str, name: str) -> Iterator[Credentials]:
    with connect(url, autocommit=True) as conn:
        creds = grant_regulator(conn, name)
    try:
        yield creds
    finally:
        with connect(url, autocommit=True) as conn:
            revoke(conn, name)


@pytest.fixture(scope="session")
def regulator(demo: tuple[str, float, Summary]) -> Iterator[Credentials]:
    yield from _regulator(demo[0], f"dash_test_reg_{os.getpid()}")


@pytest.fixture
def as_regulator(demo: tuple[str, float, Summary], regulator: Credentials) -> Iterator[Conn]:
    with connect(login_url(demo[0], regulator), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def full_county(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, float, Summary]]:
    """The full demo county (20 communities, ~2,000 devices) in a database of its own, with
    six hours of readings from every device (one a minute) and their rollup."""
    with fresh_database(f"shouwang_test_{os.getpid()}_full") as url:
        now = time.time()
        with connect(url, autocommit=True) as conn:
            seed(conn, demo_county(), tmp_path_factory.mktemp("full") / "secrets.json")
            summary = backfill(
                conn,
                default_list(),
                now=now,
                span_s=FULL_SPAN_S,
                step_s=FULL_STEP_S,
                fault_rounds=10,
            )
            catch_up(conn, datetime.fromtimestamp(now, UTC))
            conn.execute("ANALYZE readings_1m")
        yield url, now, summary
