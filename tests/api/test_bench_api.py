"""`shouwang bench api` in a short run, on a database of its own (it seeds the demo county)."""

from __future__ import annotations

import re

from core.db import connect
from core.settings import Settings
from tests.api.bench_run import assert_figures, bench_database, run_bench


def test_bench_api_prints_its_figures_and_cleans_up(api_settings: Settings) -> None:
    with bench_database("bench") as database:
        text = run_bench(api_settings, database, "api", "--seconds", "1.5", "--clients", "5")
        assert re.search(
            r"firm F\d\d: \d+ communities, \d+ devices, \d+ open alarms; 5 clients", text
        ), text
        for endpoint in ("latest device state", "open alarms"):
            assert_figures(text, endpoint + r" GET \S+")
        with connect(database, autocommit=True) as db:
            (communities,) = db.execute("SELECT count(*) FROM communities").fetchone() or (0,)
            left = db.execute(
                "SELECT (SELECT count(*) FROM alarms), (SELECT count(*) FROM latest_readings),"
                " (SELECT count(*) FROM api_tokens WHERE revoked_at IS NULL)"
            ).fetchone()
    assert communities == 20  # the full demo county was seeded
    assert left == (0, 0, 0)
