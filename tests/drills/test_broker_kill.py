"""Drill: the broker is killed (SIGKILL) while it holds a backlog for ingest (stopped cleanly 10 s
before, its session kept). Mosquitto comes back from its last autosave, so what it acknowledged
since then and had not delivered is lost: the platform's autosave interval bounds that window.
Every reading lost must lie in it, the part of the backlog saved before it must be stored, and
nothing twice. The same harness as ``shouwang drill broker-kill``, kept short."""

from __future__ import annotations

import pytest

from bench.drills.run import Options
from broker.files import AUTOSAVE_INTERVAL_S
from core.settings import Settings
from simulators.county import County
from tests.drills.harness import drill


@pytest.mark.timeout(150)
def test_a_killed_broker_loses_at_most_its_autosave_window(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, _secrets = county
    backlog_s = 2 * AUTOSAVE_INTERVAL_S  # longer than the window: part of it must have been saved
    opts = Options(
        kind="broker-kill",
        community_codes=(c.communities[0].code,),
        speed=20.0,
        warmup_s=3.0,
        backlog_s=backlog_s,
        outage_s=3.0,
        seconds=3.0 + backlog_s + 3.0 + 12.0,
        settle_s=40.0,
    )
    f, log = drill(settings, opts)
    assert f.readings_published > 1000, log
    assert f.held_at_kill, "the broker held a backlog for ingest when it was killed"
    assert f.duplicates == 0
    assert f.lost_outside_window == 0, (f.problems, log)
    assert f.lost <= f.readings_in_window, "at most what the window allows is lost"
    assert f.backlog_saved > 0
    assert f.backlog_saved_stored == f.backlog_saved, (
        "the backlog saved before the window came back"
    )
    assert f.readings_stored + f.lost == f.readings_published
    assert f.alive_after == {"ingest": True}
    assert f.ok, f.problems
