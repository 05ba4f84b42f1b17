"""Drill: the database goes away under load for 90 s (cut behind a TCP proxy) while ingest,
analytics (``--clock data``) and notify run as the platform's own processes beside the
simulator; in the middle of the cut elevators press their alarm button, and at three quarters
of it analytics and notify are SIGKILLed, to be started again once the database is back. Every
stage must still run afterwards, every reading published be stored exactly once, the faults be
alarmed, and every notification the outbox holds for the community reach the drill's own person
on duty exactly once, signed as the webhook contract says. The same harness as ``shouwang drill
db-outage --kill analytics --kill notify``, kept short."""

from __future__ import annotations

import pytest

from bench.drills.run import BACKDATED, Options
from core.settings import Settings
from simulators.county import County
from tests.drills.harness import drill

OUTAGE_S = 90.0


@pytest.mark.timeout(300)
def test_a_database_outage_with_stages_killed_loses_nothing_and_notifies_once(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, _secrets = county
    opts = Options(
        kind="db-outage",
        community_codes=(c.communities[0].code,),
        speed=20.0,  # analytics on the data clock
        warmup_s=4.0,
        outage_s=OUTAGE_S,
        seconds=4.0 + OUTAGE_S + 12.0,
        kill=("analytics", "notify"),
        faults=3,
        settle_s=40.0,
    )
    f, log = drill(settings, opts)
    assert f.killed == ["analytics", "notify"]
    assert f.alive_after == {"ingest": True, "analytics": True, "notify": True}, (f.problems, log)
    assert f.log_counts["ingest: DATABASE UNAVAILABLE"] > 0, "the drill did cut the database"
    assert f.readings_published > 1000
    assert f.duplicates == 0
    assert f.lost == 0, f.problems
    assert f.readings_stored == f.readings_published
    assert f.readings_extra == 0
    assert f.all_stored_after_s is not None, "the backlog was stored after the outage"
    assert f.peak_rss_mb["ingest"] < 300
    raised = f.alarms["faults raised mid-outage"]
    assert raised >= 1, log
    assert f.alarms["  alarmed"] == f.alarms["  with a work order"] == raised, log
    # Analytics restarted after ingest stored the press reads the code back with its time and
    # replays the older readings still queued for it: no alarm may open before the press.
    assert f.alarms[f"  {BACKDATED}"] == 0, (f.problems, log)
    n = f.notifications
    assert n["faults raised mid-outage notified"] == raised, (f.problems, log)
    assert n["notifications expected (outbox rows for the drill's duty staff)"] >= raised
    assert n["  missing"] == 0, (f.problems, log)
    assert n["  duplicates (an alarm's news in two deliveries)"] == 0, (f.problems, log)
    assert n["  bad signatures / unreadable"] == 0
    assert f.problems == [], log
