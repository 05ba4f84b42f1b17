"""Analytics never stops, and the platform's own outage is not the devices' fault.

On the real database, analytics' own code throughout, fed the feed messages ingest publishes:
devices deactivated under open alarms, a detector that fails for one device, the whole feed
silent, many devices silent at once. The data clock fast-forwards where time matters.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from psycopg.types.json import Jsonb

import analytics.service as service_module
from analytics.engine import Engine
from analytics.health import FeedWatch, MassSilence
from analytics.service import Analytics
from core.db import Conn
from core.feed import READINGS_TOPIC
from core.mqtt import new_client
from core.settings import Settings
from ingest.__main__ import config_from as ingest_config
from ingest.consumer import retire_session
from lifecycle.alarms import Observation, Transition
from tests.analytics.feed_helpers import (
    Feed,
    clean,
    event,
    offline_alarms,
    platform,
    send,
    service,
    stream,
)

T0 = float(math.floor(time.time()) - 86400)  # data time: yesterday


@pytest.fixture
def feed(db: Conn) -> Iterator[Feed]:
    """A clean slate of alarms, and every device active again afterwards."""
    clean(db)
    active = [int(r[0]) for r in db.execute("SELECT id FROM devices WHERE active")]
    yield Feed(db)
    db.execute("UPDATE devices SET active = true WHERE id = ANY(%s)", (active,))
    clean(db)


@pytest.fixture
def services() -> Iterator[list[Analytics]]:
    """Services to close at the end."""
    made: list[Analytics] = []
    yield made
    for s in made:
        s.conn.close()


def alarm_rows(db: Conn, device_id: int) -> list[tuple[str, str, str | None]]:
    return db.execute(
        "SELECT event_code, state, cleared_reason FROM alarms WHERE device_id = %s ORDER BY id",
        (device_id,),
    ).fetchall()


# -- 2. deactivated devices ---------------------------------------------------------------------


def test_a_device_deactivated_under_an_open_alarm_is_retired_and_the_rest_goes_on(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    svc = service(settings, refresh_s=0.0)  # re-read the registry at every step
    services.append(svc)
    devs = feed.devices()
    fa, fb = feed.devices("fire_panel")[:2]
    t = stream(svc, feed, T0, T0 + 60, devs)
    send(svc, feed.readings(t, devs, {fa: {"active_fire": 1.0}}))
    assert alarm_rows(db, fa) == [("FP.FIRE", "active", None)]
    (wo,) = db.execute("SELECT id FROM work_orders WHERE device_id = %s", (fa,)).fetchone() or (0,)

    # Decommissioned (as DELETE /v1/devices/{uid} does); its last readings are still in the feed,
    # saying the fire is out, and the detectors keep running.
    db.execute("UPDATE devices SET active = false WHERE id = %s", (fa,))
    t = stream(svc, feed, t + 10, t + 200, devs, values={fa: {"active_fire": 0.0}})

    assert alarm_rows(db, fa) == [("FP.FIRE", "cleared", "device_deactivated")]
    assert db.execute(
        "SELECT status, closed_at FROM work_orders WHERE id = %s", (wo,)
    ).fetchone() == ("occurred", None), "the work order is kept as it is"
    assert fa not in svc.engine.views and fa not in svc.devices
    assert not [k for k in svc.lifecycle.open if k[0] == fa]
    assert svc.stats.retired == 1

    # Every other device is still alarmed on.
    send(svc, feed.readings(t, [d for d in devs if d != fa], {fb: {"active_fire": 1.0}}))
    assert alarm_rows(db, fb) == [("FP.FIRE", "active", None)]


def test_a_device_deactivated_while_analytics_was_down_does_not_stop_its_start(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    first = service(settings)
    services.append(first)
    devs = feed.devices()
    fa = feed.devices("fire_panel")[0]
    t = stream(first, feed, T0, T0 + 30, devs)
    send(first, feed.readings(t, devs, {fa: {"active_fire": 1.0}}))
    send(first, feed.readings(t + 10, devs, {fa: {"active_fire": 0.0}}))  # normal: hold runs
    assert (fa, "FP.FIRE") in first.lifecycle.open
    first.conn.close()
    db.execute("UPDATE devices SET active = false WHERE id = %s", (fa,))

    second = service(settings)  # before: KeyError in the store at the first tick, every restart
    services.append(second)
    stream(second, feed, t + 20, t + 4000, [d for d in devs if d != fa])
    assert alarm_rows(db, fa) == [("FP.FIRE", "cleared", "device_deactivated")]
    assert db.execute(
        "SELECT count(*) FROM work_orders WHERE device_id = %s", (fa,)
    ).fetchone() == (1,)


# -- 3. quarantine instead of crash -------------------------------------------------------------


def test_a_failing_detector_quarantines_its_device_and_the_others_go_on(
    settings: Settings,
    db: Conn,
    feed: Feed,
    services: list[Analytics],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    svc = service(settings, quarantine_s=120.0)
    services.append(svc)
    devs = feed.devices()
    bad = feed.devices("elevator")[0]
    hot = feed.devices("electrical_fire")[:3]
    overheat = {h: {"cable_temp": 90.0} for h in hot}  # EF.CABLE_OVERHEAT after 60 s
    original = Engine.on_sample

    def failing(self: Engine, device_id: int, t: float, values: Any) -> list[Observation]:
        if device_id == bad:
            raise RuntimeError("detector state corrupt")
        return original(self, device_id, t, values)

    monkeypatch.setattr(Engine, "on_sample", failing)
    with caplog.at_level(logging.ERROR, logger="shouwang.analytics"):
        t = stream(svc, feed, T0, T0 + 100, devs, values=overheat)

    assert svc.stats.quarantined == 1, "out of detection: its later samples are not handled"
    assert bad in svc.quarantined and bad not in svc.engine.views
    assert any(
        feed.uid[bad] in r.getMessage() and "detector state corrupt" in r.getMessage()
        for r in caplog.records
    )
    assert platform(db, "detector_quarantined") == [(feed.uid[bad], "active", 1, None)]
    severity = db.execute("SELECT severity FROM platform_alarms").fetchone()
    assert severity == ("P3",)
    raised = {
        d
        for (d,) in db.execute(
            "SELECT device_id FROM alarms WHERE event_code = %s", ("EF.CABLE_OVERHEAT",)
        )
    }
    assert raised == set(hot), "every other device is still watched"

    # The quarantine ends; still failing, it is quarantined again: the same alarm, re-triggered.
    t = stream(svc, feed, t, T0 + 200, devs)
    assert svc.stats.quarantined == 2
    assert platform(db, "detector_quarantined") == [(feed.uid[bad], "active", 2, None)]

    # Mended: back in detection at the end of the quarantine, the alarm cleared once it ran clean
    # for another quarantine period.
    monkeypatch.undo()
    t = stream(svc, feed, t, T0 + 350, devs)
    assert bad in svc.engine.views and bad not in svc.quarantined
    assert platform(db, "detector_quarantined") == [(feed.uid[bad], "active", 2, None)]
    stream(svc, feed, t, T0 + 500, devs)
    assert platform(db, "detector_quarantined") == [(feed.uid[bad], "cleared", 2, "ran_clean")]
    assert svc.stats.quarantined == 2


def test_a_failing_event_handler_quarantines_only_its_device(
    settings: Settings,
    db: Conn,
    feed: Feed,
    services: list[Analytics],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = service(settings)
    services.append(svc)
    bad, good = feed.devices("elevator")[:2]
    stream(svc, feed, T0, T0 + 30, feed.devices())
    original = Engine.on_event

    def failing(self: Engine, device_id: int, t: float, code: str, active: bool) -> Any:
        if device_id == bad:
            raise AssertionError("an internal check failed")  # any type, not only ValueError
        return original(self, device_id, t, code, active)

    monkeypatch.setattr(Engine, "on_event", failing)
    event(svc, T0 + 31, bad, "90", True)
    event(svc, T0 + 32, good, "90", True)
    assert bad in svc.quarantined
    assert alarm_rows(db, good) == [("EL.ALARM_BUTTON", "active", None)]
    assert alarm_rows(db, bad) == []


def test_alarm_changes_the_database_refuses_for_one_device_quarantine_it_alone(
    settings: Settings,
    db: Conn,
    feed: Feed,
    services: list[Analytics],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    svc = service(settings)
    services.append(svc)
    devs = feed.devices()
    fa, fb = feed.devices("fire_panel")[:2]
    real = service_module.apply

    def refusing(conn: Conn, transitions: list[Transition], **kw: Any) -> None:
        if any(t.alarm.device_id == fa for t in transitions):
            raise ValueError("refused")
        real(conn, transitions, **kw)

    monkeypatch.setattr(service_module, "apply", refusing)
    t = stream(svc, feed, T0, T0 + 30, devs)
    send(svc, feed.readings(t, devs, {fa: {"active_fire": 1.0}, fb: {"active_fire": 1.0}}))
    assert alarm_rows(db, fb) == [("FP.FIRE", "active", None)], "written on its own"
    assert alarm_rows(db, fa) == []
    assert fa in svc.quarantined
    assert (fa, "FP.FIRE") not in svc.lifecycle.open, "memory follows the database"


def test_on_the_broker_the_stage_survives_and_acknowledges_the_message(
    settings: Settings, db: Conn, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings.model_copy(update={"analytics_client_id": "resilience-analytics"})
    bad = feed.devices("elevator")[0]
    fire = feed.devices("fire_panel")[0]
    original = Engine.on_sample

    def failing(self: Engine, device_id: int, t: float, values: Any) -> list[Observation]:
        if device_id == bad:
            raise RuntimeError("detector state corrupt")
        return original(self, device_id, t, values)

    monkeypatch.setattr(Engine, "on_sample", failing)

    errors: list[BaseException] = []

    def start() -> tuple[Analytics, threading.Thread]:
        svc = service(s, clock="wall")

        def run() -> None:
            try:
                svc.run()
            except BaseException as e:  # surfaced below: a dead stage fails the test
                errors.append(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert svc._connected.wait(10)
        time.sleep(0.5)  # the subscription is in place
        return svc, thread

    svc, thread = start()
    pub, props = new_client(
        "resilience-feed", s.mqtt_ingest_username, s.mqtt_ingest_password.get_secret_value()
    )
    pub.connect(s.mqtt_host, s.mqtt_port, properties=props)
    pub.loop_start()
    try:
        now = time.time()
        pub.publish(
            READINGS_TOPIC, feed.readings(now, [bad, fire], {fire: {"active_fire": 1.0}}), qos=1
        ).wait_for_publish(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not alarm_rows(db, fire):
            time.sleep(0.1)
        assert alarm_rows(db, fire) == [("FP.FIRE", "active", None)]
        assert thread.is_alive() and bad in svc.quarantined
    finally:
        pub.disconnect()
        pub.loop_stop()
        svc.stop()
        thread.join(30)
    assert not errors, errors

    # The same session again: had the message not been acknowledged, it would come back.
    again, thread = start()
    try:
        time.sleep(1.5)
        assert again.stats.samples == 0, "the message was acknowledged"
    finally:
        again.stop()
        thread.join(30)
        retire_session(
            replace(
                ingest_config(s, s.analytics_client_id),
                username=s.mqtt_analytics_username,
                password=s.mqtt_analytics_password.get_secret_value(),
            )
        )
    assert not errors, errors


# -- 4. offline detection waits for the platform ------------------------------------------------


def test_a_county_wide_silence_is_one_platform_alarm_and_then_the_one_device_really_offline(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    svc = service(settings, offline_grace_s=300.0, feed_silent_s=120.0)
    services.append(svc)
    devs = feed.devices()
    victim = feed.devices("fire_water")[0]
    others = [d for d in devs if d != victim]
    t = stream(svc, feed, T0, T0 + 600, devs)
    last = t - 10
    assert offline_alarms(db) == [] and platform(db, "feed_silent") == []

    # Nothing from ingest for half an hour, far beyond every device's offline silence (60 s);
    # then data again from every device but one.
    resume = last + 1800
    t = stream(svc, feed, resume, resume + 250, others)
    assert offline_alarms(db) == [], "within the grace nobody is judged"
    assert platform(db, "feed_silent") == [("", "cleared", 1, "feed_resumed")]
    opened, cleared = db.execute(
        "SELECT extract(epoch FROM opened_at), extract(epoch FROM cleared_at) FROM platform_alarms"
    ).fetchone() or (0, 0)
    assert (float(opened), float(cleared)) == (last + 120, resume), "on the data's clock"
    severity = db.execute("SELECT severity FROM platform_alarms").fetchone()
    assert severity == ("P1",)

    stream(svc, feed, t, resume + 600, others)
    found = offline_alarms(db)
    assert [(d, c) for d, c, _ in found] == [(victim, "FW.OFFLINE")]
    assert found[0][2] >= resume + 300, "judged after the grace"
    assert db.execute("SELECT device_id, event_code FROM work_orders").fetchall() == [
        (victim, "FW.OFFLINE")
    ]
    assert svc.stats.feed_silences == 1


def test_on_the_wall_clock_the_feed_silence_is_open_while_it_lasts(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    svc = service(settings, clock="wall", offline_grace_s=300.0, feed_silent_s=120.0)
    services.append(svc)
    wall = [T0]
    svc.wall_clock = lambda: wall[0]
    devs = feed.devices()
    victim = feed.devices("electrical_fire")[0]

    def run(until: float, devices: list[int]) -> None:
        while wall[0] < until:  # every 10 s: readings stamped with the time, or none
            if devices:
                send(svc, feed.readings(wall[0], devices))
            else:
                svc.step()
            wall[0] += 10

    run(T0 + 600, devs)
    assert offline_alarms(db) == []
    run(T0 + 750, [])  # ingest down: nothing since T0 + 590
    assert platform(db, "feed_silent") == [("", "active", 1, None)], "while it lasts"
    run(T0 + 2400, [])
    assert platform(db, "feed_silent") == [("", "active", 1, None)]
    assert offline_alarms(db) == [], "no device is judged while the feed is silent"

    run(T0 + 2400 + 250, [d for d in devs if d != victim])
    assert platform(db, "feed_silent") == [("", "cleared", 1, "feed_resumed")]
    assert offline_alarms(db) == []
    run(T0 + 2400 + 600, [d for d in devs if d != victim])
    assert [(d, c) for d, c, _ in offline_alarms(db)] == [(victim, "EF.OFFLINE")]


def test_a_wall_clock_start_after_a_pause_files_nothing_for_the_backlog(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    """Analytics restarted after ten minutes away: its session hands it the readings it missed,
    old by then, before the live ones. Before: an OFFLINE alarm for every device."""
    svc = service(settings, clock="wall", offline_grace_s=300.0)
    services.append(svc)
    wall = [T0 + 600]
    svc.wall_clock = lambda: wall[0]
    devs = feed.devices()
    for t in range(int(T0), int(T0 + 600), 10):  # the backlog, in a few steps
        send(svc, feed.readings(float(t), devs))
    while wall[0] < T0 + 1200:
        send(svc, feed.readings(wall[0], devs))
        wall[0] += 10
    assert offline_alarms(db) == []
    assert platform(db, "feed_silent") == []


def test_many_devices_silent_at_once_are_one_platform_alarm_not_an_offline_alarm_each(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    svc = service(settings, offline_grace_s=300.0)  # mass silence: ≥ 30 % of ≥ 20 devices
    services.append(svc)
    devs = feed.devices()
    assert len(devs) >= 20
    silent = devs[: math.ceil(0.3 * len(devs)) + 2]
    rest = [d for d in devs if d not in silent]
    t = stream(svc, feed, T0, T0 + 600, devs)

    # A share of the county goes quiet together (a network segment down); the rest reports on.
    t = stream(svc, feed, t, t + 1200, rest)
    assert offline_alarms(db) == []
    assert db.execute("SELECT count(*) FROM work_orders").fetchone() == (0,)
    assert platform(db, "mass_silence") == [("", "active", 1, None)]
    (detail,) = db.execute("SELECT detail FROM platform_alarms").fetchone() or ({},)
    assert detail["silent"] == len(silent) and detail["watched"] == len(devs)

    # They come back, all but one: the mass silence is over, and after the grace that one is
    # offline on its own.
    straggler = silent[0]
    back = t
    stream(svc, feed, t, t + 600, [d for d in devs if d != straggler])
    assert platform(db, "mass_silence") == [("", "cleared", 1, "devices_back")]
    found = offline_alarms(db)
    assert [d for d, _, _ in found] == [straggler]
    assert found[0][2] >= back + 300
    assert svc.stats.mass_silences == 1


def test_one_device_silent_is_offline_after_the_window(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    svc = service(settings, offline_grace_s=300.0)
    services.append(svc)
    devs = feed.devices()
    victim = feed.devices("pump_room")[0]
    t = stream(svc, feed, T0, T0 + 600, devs)
    stop = t - 10
    stream(svc, feed, t, t + 200, [d for d in devs if d != victim])
    found = offline_alarms(db)
    assert [(d, c) for d, c, _ in found] == [(victim, "PR.OFFLINE")]
    assert stop + 60 < found[0][2] <= stop + 80, "judged at its own silence, filed a window later"
    assert platform(db, "mass_silence") == []


# -- the pure parts -----------------------------------------------------------------------------


def test_the_feed_watch_judges_only_after_the_grace() -> None:
    w = FeedWatch(grace_s=100.0)
    assert not w.may_judge(0.0)
    assert w.start(1000.0) and not w.start(2000.0)
    assert not w.may_judge(1099.0) and w.may_judge(1100.0)
    assert w.lag(1050.0) == 50.0
    w.heard(1040.0)
    assert w.lag(1050.0) == 10.0 and w.jump(1100.0) == 60.0 and w.jump(1000.0) == 0.0
    w.silent = True
    assert not w.may_judge(5000.0)


def test_mass_silence_counts_devices_silent_within_the_window() -> None:
    m = MassSilence(share=0.3, min_devices=20, window_s=60.0)
    assert m.threshold(19) is None and m.threshold(20) == 6 and m.threshold(42) == 13

    def off(d: int, t: float, active: bool = True) -> Observation:
        return Observation(d, "X.OFFLINE", t, active, "offline")

    v = m.step([off(1, 0.0)], 42, 0.0)
    assert v.release == [] and v.wave == [], "held back for the window"
    v = m.step([off(1, 30.0)], 42, 30.0)
    assert v.release == []
    v = m.step([off(1, 60.0)], 42, 60.0)
    assert v.release == [off(1, 0.0)], "alone: filed as first judged"
    v = m.step([off(d, 100.0) for d in range(10, 23)], 42, 100.0)
    assert v.wave == list(range(10, 23)) and m.active and v.release == []
    v = m.step([off(d, 110.0) for d in range(10, 23)], 42, 110.0)
    assert v.release == [] and v.ended is None, "no OFFLINE alarm for them"
    v = m.step([off(d, 120.0, d > 15) for d in range(10, 23)], 42, 120.0)
    assert v.ended is None and len(m.silenced) == 7, "7 of 13 still silent: it lasts"
    v = m.step([off(d, 130.0, d > 16) for d in range(10, 23)], 42, 130.0)
    assert v.ended == list(range(17, 23)) and not m.active, "6: fewer than half of 13"
    v = m.step([off(d, 140.0) for d in range(17, 23)], 42, 140.0)
    assert v.wave == [] and v.release == [], "judged one by one again, after the window"
    # Too few devices watched: nothing is held back.
    small = MassSilence(share=0.3, min_devices=20, window_s=60.0)
    assert small.step([off(1, 0.0)], 5, 0.0).release == [off(1, 0.0)]


def test_a_restart_clears_what_rested_on_lost_state_and_the_feed_silence_once_data_flows(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    from lifecycle.platform import PlatformKind, raise_alarm

    uid = feed.uid[feed.devices("elevator")[0]]
    raise_alarm(db, PlatformKind.FEED_SILENT, severity="P1")
    raise_alarm(db, PlatformKind.MASS_SILENCE, severity="P1")
    raise_alarm(db, PlatformKind.DETECTOR_QUARANTINED, uid, severity="P3")
    svc = service(settings)
    services.append(svc)
    assert platform(db, "mass_silence") == [("", "cleared", 1, "analytics_restarted")]
    assert platform(db, "detector_quarantined") == [(uid, "cleared", 1, "analytics_restarted")]
    assert platform(db, "feed_silent") == [("", "active", 1, None)], "until data flows"
    stream(svc, feed, T0, T0 + 20, feed.devices())
    assert platform(db, "feed_silent") == [("", "cleared", 1, "feed_resumed")]


def test_a_device_the_detectors_cannot_take_is_quarantined_not_the_start(
    settings: Settings, db: Conn, feed: Feed, services: list[Analytics]
) -> None:
    bad = feed.devices("elevator")[0]
    (attributes,) = db.execute(
        "SELECT attributes FROM devices WHERE id = %s", (bad,)
    ).fetchone() or ({},)
    db.execute(
        'UPDATE devices SET attributes = attributes || \'{"rated_speed": "fast"}\' WHERE id = %s',
        (bad,),
    )
    try:
        svc = service(settings, refresh_s=0.0)
        services.append(svc)
        assert bad in svc.quarantined and bad not in svc.engine.views
        assert platform(db, "detector_quarantined") == [(feed.uid[bad], "active", 1, None)]
        stream(svc, feed, T0, T0 + 30, feed.devices())
        # Mended in the registry: watched again at the next re-read.
        db.execute("UPDATE devices SET attributes = %s WHERE id = %s", (Jsonb(attributes), bad))
        stream(svc, feed, T0 + 30, T0 + 60, feed.devices())
        assert bad in svc.engine.views and bad not in svc.quarantined
    finally:
        db.execute("UPDATE devices SET attributes = %s WHERE id = %s", (Jsonb(attributes), bad))
