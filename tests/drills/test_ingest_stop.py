"""Drill: ingest stops under load for longer than the offline rule's silence (one minute for the
demo county's 10 s devices), its broker session kept, while analytics runs on the wall clock as
in production. Nothing may be lost or stored twice; no device that kept reporting gets an
OFFLINE alarm or a work order; the silent feed is one ``feed_silent`` platform alarm, cleared
when data flows again; and a device that really went silent during the outage is still detected
after it. The same harness as ``shouwang drill ingest-stop``, kept short."""

from __future__ import annotations

import pytest

from bench.drills.run import Options
from core.settings import Settings
from simulators.county import County
from tests.drills.harness import drill


@pytest.mark.timeout(300)
def test_an_ingest_stop_blames_no_device_and_still_finds_the_one_gone_silent(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, _secrets = county
    opts = Options(
        kind="ingest-stop",
        community_codes=(c.communities[1].code,),
        outage_s=65.0,
        warmup_s=10.0,
        settle_s=40.0,
    )
    f, log = drill(settings, opts)
    assert f.alive_after == {"ingest": True, "analytics": True}, (f.problems, log)
    assert f.readings_published > 1000
    assert f.duplicates == 0
    assert f.lost == 0, f.problems
    assert f.readings_stored == f.readings_published
    assert f.feed_gap_s is not None and f.feed_gap_s > 60 + 2, "longer than the offline silence"
    assert f.feed_silent_after_s == 60.0
    assert f.offline_alarms_others == 0, (f.problems, log)
    assert f.offline_work_orders_others == 0
    assert f.platform_alarms == ["feed_silent (cleared)"], (f.problems, log)
    assert f.victim is not None
    assert f.victim_silent_at_s is not None and 0 < f.victim_silent_at_s < 65.0
    assert f.victim_detected_after_s is not None, (f.problems, log)
    assert f.victim_detected_after_s >= 60.0, "judged a whole silence after data flowed again"
    assert f.victim_work_order
    assert f.ok, (f.problems, log)
