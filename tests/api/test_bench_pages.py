"""`shouwang bench pages` in a short run, on a database of its own (it seeds the demo county):
its figures are printed and the officers, sessions and shifts it added are gone afterwards."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator

import pytest

from core.db import connect
from core.settings import Settings
from tests.conftest import fresh_database, settings_env, shouwang


@pytest.fixture
def empty_database() -> Iterator[str]:
    with fresh_database(f"shouwang_bench_pages_{os.getpid()}") as url:
        yield url


def test_bench_pages_prints_its_figures_and_cleans_up(
    api_settings: Settings, empty_database: str
) -> None:
    env = settings_env(api_settings) | {"SHOUWANG_DATABASE_URL": empty_database}
    args = ["bench", "pages", "--seconds", "1", "--sessions", "5"]
    out = subprocess.run(
        shouwang(*args), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr + out.stdout
    text = " ".join(out.stdout.split())
    assert re.search(r"5 signed-in officers", text), text
    for page in ("home /duty", "alarm page"):
        m = re.search(
            page + r" +([\d,]+) req/s p50 +([\d.]+) ms p99 +([\d.]+) ms"
            r" \((\d+) ok, 0 errors\) p99 < 100 ms: (yes|NO)",
            text,
        )
        assert m is not None, out.stdout
        assert int(m.group(4)) > 0 and float(m.group(2)) <= float(m.group(3))
    with connect(empty_database, autocommit=True) as db:
        left = db.execute(
            "SELECT (SELECT count(*) FROM page_sessions), (SELECT count(*) FROM duty_shifts),"
            " (SELECT count(*) FROM people WHERE name LIKE 'shouwang bench pages%%'),"
            " (SELECT count(*) FROM alarms)"
        ).fetchone()
        assert left == (0, 0, 0, 0)
