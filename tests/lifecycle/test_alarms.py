"""Alarm lifecycle and rule detectors on hand-made streams (pure)."""

from __future__ import annotations

import time

import pytest

from analytics.conditions import DeviceView, EventCodes, Offline, Stuck, Threshold, Trapped
from analytics.engine import Engine, Rule
from core.db import Conn
from core.settings import Settings
from lifecycle.alarms import Alarm, Kind, Lifecycle, Observation, Policy


def life(hold: float = 60.0, raise_after: float | None = None) -> Lifecycle:
    return Lifecycle(lambda _d, _c: Policy("P2", hold, raise_after, "P1" if raise_after else None))


def test_one_alarm_per_device_and_code_retriggers_counted_flapping_absorbed() -> None:
    lc = life(hold=60)
    kinds = []
    for t, active in [
        (0, True),
        (10, True),
        (20, False),
        (30, True),
        (40, False),
        (50, True),
        (60, False),
        (100, False),
        (121, False),
    ]:
        kinds += [tr.kind for tr in lc.observe(Observation(1, "X", t, active))]
    assert kinds == [
        Kind.OPEN,
        Kind.NORMAL,
        Kind.RETRIGGER,
        Kind.NORMAL,
        Kind.RETRIGGER,
        Kind.NORMAL,
        Kind.CLEAR,
    ]
    assert not lc.open


def test_clears_only_after_the_hold_and_severity_rises_when_it_persists() -> None:
    lc = life(hold=30, raise_after=120)
    lc.observe(Observation(1, "X", 0, True))
    assert [t.kind for t in lc.tick(100)] == []
    raised = lc.tick(130)
    assert [t.kind for t in raised] == [Kind.RAISE] and raised[0].alarm.severity == "P1"
    lc.observe(Observation(1, "X", 140, False))
    assert lc.tick(160) == []
    assert [t.kind for t in lc.tick(171)] == [Kind.CLEAR]


def engine(*checks: object, interval: float = 10.0) -> Engine:
    e = Engine({"elevator": [Rule("R", tuple(checks))]})  # type: ignore[arg-type]
    e.add_device(DeviceView(1, "elevator", interval))
    return e


def test_threshold_needs_to_hold_for_its_seconds_and_late_samples_are_ignored() -> None:
    e = engine(Threshold("speed", above=2.0, for_seconds=15))
    assert [o.active for o in e.on_sample(1, 0, {"speed": 3.0})] == [False]
    assert [o.active for o in e.on_sample(1, 10, {"speed": 3.0})] == [False]
    assert [o.active for o in e.on_sample(1, 20, {"speed": 3.0})] == [True]
    assert e.on_sample(1, 5, {"speed": 0.0}) == [], (
        "an out-of-order sample does not move state back"
    )


def test_trapped_pattern_offline_and_stuck() -> None:
    e = engine(Trapped(for_seconds=20))
    stuck_in = {"car_status": 0.0, "passenger_present": 1.0, "door_zone": 0.0, "door_state": 0.0}
    out = [o.active for t in (0, 10, 20) for o in e.on_sample(1, t, stuck_in)]
    assert out == [False, False, True]

    e = engine(Offline(intervals=3))
    e.on_sample(1, 0, {"floor": 1.0})
    assert [o.active for o in e.on_tick(25)] == [False]
    assert [o.active for o in e.on_tick(31)] == [True]
    assert [o.active for o in e.on_sample(1, 40, {"floor": 1.0})] == [False]

    e = engine(Stuck("floor", samples=3))
    assert [o.active for t in range(4) for o in e.on_sample(1, t * 10, {"floor": 5.0})] == [
        False,
        False,
        True,
        True,
    ]


def run(
    e: Engine, lc: Lifecycle, steps: list[tuple[float, str | None]]
) -> list[tuple[Kind, float]]:
    """Feed device 1's samples (``None``) and code-90 presses (``"90"``) in the order given;
    the alarm transitions, with their times."""
    out = []
    for t, code in steps:
        obs = e.on_sample(1, t, {"floor": 1.0}) if code is None else e.on_event(1, t, code, True)
        out += [(tr.kind, tr.t) for o in obs for tr in lc.observe(o)]
    return out


def test_an_event_handled_after_later_samples_neither_clears_nor_refiles_its_alarm() -> None:
    """The drill's sequence: analytics restarted reads the press at 100 back from the events
    (so samples after 100 see it) and then takes the backlog as ingest published it, a batch's
    readings before its events. The press handled at its own time, after the samples, used to
    find the condition not yet held there (held since the first sample after it): normal at
    100, a clear at 100 before the opening at 101.5 (hold 0), and a second alarm at the next
    sample."""
    e = engine(EventCodes(frozenset({"90"})))
    e.views[1].active_codes["90"] = 100.0  # read back with the time it was raised
    lc = life(hold=0)
    backlog: list[tuple[float, str | None]] = [(95.0, None), (101.5, None), (103.0, None)]
    assert run(e, lc, [*backlog, (100.0, "90"), (105.0, None), (1000.0, None)]) == [
        (Kind.OPEN, 101.5)
    ]
    assert lc.open[(1, "R")].opened_at == 101.5 and lc.open[(1, "R")].normal_since is None
    # Another code's event from before the press, handled late, does not say it is normal.
    assert e.on_event(1, 99.0, "02", True) == []


def test_samples_older_than_an_event_already_handled_do_not_clear_its_alarm() -> None:
    """Without a restart: the press's feed message came before a readings message with
    samples older than it; those samples do not see the code yet, and say nothing of now."""
    e, lc = engine(EventCodes(frozenset({"90"}))), life(hold=0)
    assert run(e, lc, [(90.0, None), (100.0, "90"), (96.0, None), (98.0, None), (102.0, None)]) == [
        (Kind.OPEN, 100.0)
    ]


def test_the_lifecycle_disregards_observations_older_than_what_the_alarm_knows() -> None:
    """Normal before the condition was last seen holding (or holding before it was seen
    normal) is old news: no clear before the alarm opened, no re-trigger of a recovered one."""
    lc = life(hold=0)
    assert [t.kind for t in lc.observe(Observation(1, "X", 10.0, True))] == [Kind.OPEN]
    assert lc.observe(Observation(1, "X", 5.0, False)) == []
    assert (1, "X") in lc.open and lc.open[(1, "X")].normal_since is None
    assert [(t.kind, t.t) for t in lc.observe(Observation(1, "X", 12.0, False))] == [
        (Kind.NORMAL, 12.0),
        (Kind.CLEAR, 12.0),
    ]

    lc = life(hold=60)
    lc.observe(Observation(1, "X", 0.0, True))
    lc.observe(Observation(1, "X", 5.0, False))
    lc.observe(Observation(1, "X", 10.0, True))  # re-triggered: normal before 10 is old news
    assert lc.observe(Observation(1, "X", 8.0, False)) == []
    assert [t.kind for t in lc.observe(Observation(1, "X", 20.0, False))] == [Kind.NORMAL]
    assert lc.observe(Observation(1, "X", 15.0, True)) == [], "holding before it was normal"
    assert lc.open[(1, "X")].triggers == 2
    assert [(t.kind, t.t) for t in lc.tick(80.0)] == [(Kind.CLEAR, 80.0)]


def test_an_adopted_alarm_normal_before_it_opened_is_not_cleared_before_its_opening() -> None:
    lc = life(hold=30)
    lc.adopt([Alarm(1, "X", "P2", "test", 100.0, 100.0, normal_since=50.0)])
    assert lc.tick(120.0) == [], "the hold counts from the opening"
    assert [(t.kind, t.t) for t in lc.tick(130.0)] == [(Kind.CLEAR, 130.0)]


def test_raised_device_codes_and_open_alarms_survive_an_analytics_restart(
    settings, db, county
) -> None:  # type: ignore[no-untyped-def]
    """An alarm from a device fault code stays open across a restart while the code stands."""
    import time

    from analytics.__main__ import build

    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions, work_order_breaches, escalation_steps, events CASCADE"
    )
    (dev_id,) = db.execute(
        "SELECT id FROM devices WHERE device_class = 'elevator' ORDER BY id LIMIT 1"
    ).fetchone()
    t = time.time() - 30
    db.execute(
        "INSERT INTO events (ts, device_id, code, active) VALUES (to_timestamp(%s), %s, '90', true)",
        (t, dev_id),
    )
    first = build(settings, clock="data")
    transitions = [
        o for o in first.engine.on_event(dev_id, t, "90", True) if o.code == "EL.ALARM_BUTTON"
    ]
    assert [o.active for o in transitions] == [True]
    from analytics.store import apply

    apply(
        first.conn,
        [tr for o in transitions for tr in first.lifecycle.observe(o)],
        entry_of=first._entry,
        devices=first.devices,
        calendar=first.calendar,
        list_version="test",
    )
    first.conn.close()

    second = build(settings, clock="data")
    assert (dev_id, "EL.ALARM_BUTTON") in second.lifecycle.open
    later = second.engine.on_sample(dev_id, t + 10, {"floor": 3.0, "car_status": 0.0})
    assert all(o.active for o in later if o.code == "EL.ALARM_BUTTON")
    second.conn.close()
    assert db.execute("SELECT count(*) FROM work_orders").fetchone() == (1,)


def test_a_backlog_replayed_after_a_restart_does_not_see_a_code_before_it_was_raised(
    settings, db, county
) -> None:  # type: ignore[no-untyped-def]
    """Analytics killed before it saw a fault code that ingest stored: at its start the code is
    read back from the events with its time, and the older samples still queued for it must not
    file the alarm before the moment the code was raised (the drill found alarms opened up to
    28 s before an alarm button was pressed)."""
    import time

    from analytics.__main__ import build

    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions, work_order_breaches, escalation_steps, events CASCADE"
    )
    (dev_id,) = db.execute(
        "SELECT id FROM devices WHERE device_class = 'elevator' ORDER BY id LIMIT 1"
    ).fetchone()
    pressed = time.time() - 30
    db.execute(
        "INSERT INTO events (ts, device_id, code, active) VALUES (to_timestamp(%s), %s, '90', true)",
        (pressed, dev_id),
    )
    svc = build(settings, clock="data")
    try:
        before = svc.engine.on_sample(dev_id, pressed - 20, {"floor": 3.0, "car_status": 0.0})
        assert not [o for o in before if o.code == "EL.ALARM_BUTTON" and o.active]
        replayed = svc.engine.on_event(dev_id, pressed, "90", True)
        opened = [o for o in replayed if o.code == "EL.ALARM_BUTTON"]
        assert [(o.active, o.t) for o in opened] == [(True, pytest.approx(pressed))]
        after = svc.engine.on_sample(dev_id, pressed + 5, {"floor": 3.0, "car_status": 0.0})
        assert all(o.active for o in after if o.code == "EL.ALARM_BUTTON")
    finally:
        svc.conn.close()


def test_an_alarm_cleared_by_hand_is_forgotten_and_the_next_fault_opens_a_new_one(
    settings: Settings, db: Conn
) -> None:
    from analytics.__main__ import build
    from analytics.store import apply

    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions,"
        " work_order_breaches, escalation_steps CASCADE"
    )
    (dev,) = db.execute(
        "SELECT id FROM devices WHERE device_class = 'elevator' ORDER BY id LIMIT 1"
    ).fetchone() or (0,)
    service = build(settings, clock="data")
    t0 = time.time() - 600

    def observe(t: float, active: bool) -> None:
        apply(
            service.conn,
            service.lifecycle.observe(Observation(dev, "EL.TRAPPED", t, active, "test")),
            entry_of=service._entry,
            devices=service.devices,
            calendar=service.calendar,
            list_version="t",
        )

    try:
        observe(t0, True)
        db.execute("UPDATE alarms SET state = 'cleared', cleared_reason = 'manual: resolved'")
        observe(t0 + 10, False)  # analytics still thinks it open: its writes leave it cleared
        assert db.execute("SELECT state, normal_since FROM alarms").fetchall() == [
            ("cleared", None)
        ]
        service.forget_cleared()
        observe(t0 + 20, True)
    finally:
        service.conn.close()
    rows = db.execute("SELECT state FROM alarms ORDER BY id").fetchall()
    assert rows == [("cleared",), ("active",)], "the new fault is a new alarm"
