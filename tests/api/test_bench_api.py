"""`shouwang bench api` in a short run, on a database of its own (it seeds the demo county)."""

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
    with fresh_database(f"shouwang_bench_{os.getpid()}") as url:
        yield url


def test_bench_api_prints_its_figures_and_cleans_up(
    api_settings: Settings, empty_database: str
) -> None:
    env = settings_env(api_settings) | {"SHOUWANG_DATABASE_URL": empty_database}
    args = ["bench", "api", "--seconds", "1.5", "--clients", "5"]
    out = subprocess.run(
        shouwang(*args), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr + out.stdout
    text = " ".join(out.stdout.split())
    assert re.search(r"firm F\d\d: \d+ communities, \d+ devices, \d+ open alarms; 5 clients", text)
    for endpoint in ("latest device state", "open alarms"):
        m = re.search(
            endpoint + r" GET \S+ +([\d,]+) req/s p50 +([\d.]+) ms p99 +([\d.]+) ms"
            r" \((\d+) ok, 0 errors\) p99 < 100 ms: (yes|NO)",
            text,
        )
        assert m is not None, out.stdout
        assert int(m.group(4)) > 0 and float(m.group(2)) <= float(m.group(3))
    with connect(empty_database, autocommit=True) as db:
        (communities,) = db.execute("SELECT count(*) FROM communities").fetchone() or (0,)
        assert communities == 20  # the full demo county was seeded
        left = db.execute(
            "SELECT (SELECT count(*) FROM alarms), (SELECT count(*) FROM latest_readings),"
            " (SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL)"
        ).fetchone()
        assert left == (0, 0, 0)
