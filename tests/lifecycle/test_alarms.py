"""Alarm lifecycle and rule detectors on hand-made streams (pure)."""

from __future__ import annotations

import time

from analytics.conditions import DeviceView, Offline, Stuck, Threshold, Trapped
from analytics.engine import Engine, Rule
from core.db import Conn
from core.settings import Settings
from lifecycle.alarms import Kind, Lifecycle, Observation, Policy


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
