"""Dashboard test fixtures: the session database with demo data for the last hours, a full-size
demo county in a database of its own, and dashboards login roles (dropped afterwards: roles
belong to the whole cluster)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from core.db import Conn, connect
from core.responsibility import default_list
from dashboards.access import Credentials, grant_regulator, revoke
from simulators.county import County, demo_county
from simulators.seed import seed
from tests.conftest import fresh_database
from tests.dashboards.demo_data import Summary, backfill
from tests.dashboards.panels import login_url

SPAN_S = 6 * 3600.0
FULL_SPAN_S = 2 * 3600.0


@pytest.fixture(scope="session")
def demo(database_url: str, county: tuple[County, dict[str, str]]) -> tuple[str, float, Summary]:
    """The session database with the small county and 6 hours of demo data up to ``now``."""
    now = time.time()
    with connect(database_url, autocommit=True) as conn:
        summary = backfill(conn, default_list(), now=now, span_s=SPAN_S, step_s=60.0)
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
    two hours of readings from every device."""
    with fresh_database(f"shouwang_test_{os.getpid()}_full") as url:
        now = time.time()
        with connect(url, autocommit=True) as conn:
            seed(conn, demo_county(), tmp_path_factory.mktemp("full") / "secrets.json")
            summary = backfill(
                conn, default_list(), now=now, span_s=FULL_SPAN_S, step_s=60.0, fault_rounds=10
            )
        yield url, now, summary
