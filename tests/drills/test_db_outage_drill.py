"""Drill: the database goes away under load for 25 s (cut behind a TCP proxy) while ingest and
analytics run as the platform's own processes (``shouwang ingest``, ``shouwang analytics
--clock data``) beside the simulator; both must still run afterwards and every reading published
be stored exactly once. The same harness as ``shouwang drill db-outage``, kept short."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from bench.drills.run import Drill, Options
from core.settings import Settings
from simulators.county import County


@pytest.mark.timeout(150)
def test_a_database_outage_under_load_stops_no_stage_and_loses_nothing(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, _secrets = county
    out = io.StringIO()
    opts = Options(
        kind="db-outage",
        community_codes=(c.communities[0].code,),
        speed=20.0,  # analytics on the data clock
        warmup_s=4.0,
        outage_s=25.0,
        seconds=40.0,
        stages=("ingest", "analytics"),
        faults=0,
        settle_s=40.0,
    )
    f = Drill(settings, opts, Console(file=out, width=200)).run()
    log = out.getvalue()
    assert f.alive_after == {"ingest": True, "analytics": True}, (f.problems, log)
    assert f.log_counts["ingest: DATABASE UNAVAILABLE"] > 0, "the drill did cut the database"
    assert f.readings_published > 1000
    assert f.duplicates == 0
    assert f.lost == 0, f.problems
    assert f.readings_stored == f.readings_published
    assert f.readings_extra == 0
    assert f.all_stored_after_s is not None, "the backlog was stored after the outage"
    assert f.peak_rss_mb["ingest"] < 300
    assert f.ok, f.problems
