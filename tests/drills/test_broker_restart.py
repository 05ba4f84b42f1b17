"""Drill: the broker restarts cleanly mid-stream under load, down for longer than the offline
rule's silence (one minute for the demo county's 10 s devices), while analytics runs on the wall
clock as in production. The simulator's devices and gateways reconnect with backoff and send
again what the broker had not acknowledged; ingest's persistent session gets what the broker
held; every reading published is stored exactly once. No device that kept reporting gets an
OFFLINE alarm or a work order; the silent feed is one ``feed_silent`` platform alarm; a device
that really went silent during the outage is still detected after it. The same harness as
``shouwang drill broker-restart``, kept short.

62 s down: the stages' reconnection backoff (paho's, doubling from 1 s) tries again 63 s after
the connection was lost, so they are back a second after the broker is."""

from __future__ import annotations

import pytest

from bench.drills.run import Options
from core.settings import Settings
from simulators.county import County
from tests.drills.harness import drill


@pytest.mark.timeout(330)
def test_a_clean_broker_restart_loses_nothing_and_blames_no_device(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, _secrets = county
    opts = Options(
        kind="broker-restart",
        community_codes=(c.communities[1].code,),
        outage_s=62.0,
        warmup_s=10.0,
        settle_s=40.0,
    )
    f, log = drill(settings, opts)
    assert f.alive_after == {"ingest": True, "analytics": True}, (f.problems, log)
    assert f.log_counts["simulator: links that lost their connection"] > 0, "links were cut"
    assert f.readings_published > 1000
    assert f.messages_acknowledged == f.messages_published
    assert f.duplicates == 0
    assert f.lost == 0, (f.problems, log)
    assert f.readings_stored == f.readings_published
    assert f.readings_extra == 0
    assert f.all_stored_after_s is not None
    assert f.feed_gap_s is not None and f.feed_gap_s > 60 + 2, (f.feed_gap_s, log)
    assert f.offline_alarms_others == 0, (f.problems, log)
    assert f.offline_work_orders_others == 0
    assert f.platform_alarms == ["feed_silent (cleared)"], (f.problems, log)
    assert f.victim_silent_at_s is not None and 0 < f.victim_silent_at_s < 62.0
    assert f.victim_detected_after_s is not None, (f.problems, log)
    assert f.victim_work_order
    assert f.ok, (f.problems, log)
