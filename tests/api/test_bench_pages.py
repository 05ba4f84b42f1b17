"""`shouwang bench pages` in a short run, on a database of its own (it seeds the demo county):
its figures are printed and the officers, sessions and shifts it added are gone afterwards."""

from __future__ import annotations

import re

from core.db import connect
from core.settings import Settings
from tests.api.bench_run import assert_figures, bench_database, run_bench


def test_bench_pages_prints_its_figures_and_cleans_up(api_settings: Settings) -> None:
    with bench_database("bench_pages") as database:
        text = run_bench(api_settings, database, "pages", "--seconds", "1", "--sessions", "5")
        assert re.search(r"5 signed-in officers", text), text
        for page in ("home /duty", "alarm page"):
            assert_figures(text, page)
        with connect(database, autocommit=True) as db:
            left = db.execute(
                "SELECT (SELECT count(*) FROM page_sessions), (SELECT count(*) FROM duty_shifts),"
                " (SELECT count(*) FROM people WHERE name LIKE 'shouwang bench pages%%'),"
                " (SELECT count(*) FROM alarms)"
            ).fetchone()
    assert left == (0, 0, 0, 0)
