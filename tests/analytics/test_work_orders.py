"""Work orders: deadlines on the right calendar, transitions stamped with who, breaches recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.__main__ import build
from analytics.store import apply, record_breaches
from core.db import Conn
from core.settings import Settings
from lifecycle.alarms import Observation
from lifecycle.work_orders import TransitionError, transition

# Friday 2026-11-27 17:30 in Asia/Shanghai
FRIDAY_EVENING = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


def open_alarm(settings: Settings, db: Conn, code: str, device_class: str) -> int:
    service = build(settings, clock="data")
    (dev_id,) = db.execute(
        "SELECT id FROM devices WHERE device_class = %s ORDER BY id LIMIT 1", (device_class,)
    ).fetchone() or (0,)
    obs = Observation(dev_id, code, FRIDAY_EVENING.timestamp(), True, "test")
    apply(
        service.conn,
        service.lifecycle.observe(obs),
        entry_of=service._entry,
        devices=service.devices,
        calendar=service.calendar,
        list_version="test",
    )
    service.conn.close()
    (wo,) = db.execute(
        "SELECT w.id FROM work_orders w JOIN alarms a ON a.id = w.alarm_id"
        " WHERE a.device_id = %s AND a.event_code = %s",
        (dev_id, code),
    ).fetchone() or (0,)
    return int(wo)


@pytest.fixture
def clean(db: Conn) -> None:
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions, work_order_breaches, escalation_steps CASCADE"
    )


@pytest.mark.usefixtures("clean")
def test_safety_events_run_on_calendar_minutes_ordinary_repairs_on_working_time(
    settings: Settings, db: Conn
) -> None:
    trapped = open_alarm(settings, db, "EL.TRAPPED", "elevator")
    due = db.execute(
        "SELECT response_due, arrival_due, emergency_fund, notify_regulator, responsible_party"
        " FROM work_orders WHERE id = %s",
        (trapped,),
    ).fetchone()
    assert due is not None
    assert due[1] - FRIDAY_EVENING == timedelta(minutes=30), (
        "arrival at a trapped-passenger call: 30 min"
    )
    assert due[3] is True and due[4] == "elevator_maintenance_unit"
    steps = db.execute(
        "SELECT count(*) FROM escalation_steps WHERE work_order_id = %s", (trapped,)
    ).fetchone()
    assert steps is not None and steps[0] >= 1

    offline = open_alarm(settings, db, "FW.OFFLINE", "fire_water")
    (resolution_due,) = db.execute(
        "SELECT resolution_due FROM work_orders WHERE id = %s", (offline,)
    ).fetchone() or (None,)
    assert resolution_due is not None
    assert resolution_due.astimezone(UTC) > FRIDAY_EVENING + timedelta(days=2), (
        "the weekend does not count"
    )


@pytest.mark.usefixtures("clean")
def test_transitions_are_stamped_and_checked_and_breaches_recorded(
    settings: Settings, db: Conn
) -> None:
    wo = open_alarm(settings, db, "EL.TRAPPED", "elevator")
    late = FRIDAY_EVENING + timedelta(minutes=45)
    transition(db, wo, "on_site", actor="维保 张师傅", at=late, note="arrived")
    with pytest.raises(TransitionError, match="can go to completed, false_alarm, not responded"):
        transition(db, wo, "responded", actor="x", at=late)
    transition(db, wo, "completed", actor="维保 张师傅", at=late + timedelta(minutes=10))
    with pytest.raises(TransitionError, match="closed"):
        transition(db, wo, "false_alarm", actor="x", at=late)
    rows = db.execute(
        "SELECT actor, from_status, to_status FROM work_order_transitions WHERE work_order_id = %s"
        " ORDER BY id",
        (wo,),
    ).fetchall()
    assert rows == [
        ("system", None, "occurred"),
        ("维保 张师傅", "occurred", "on_site"),
        ("维保 张师傅", "on_site", "completed"),
    ]
    assert record_breaches(db, (late + timedelta(hours=1)).timestamp()) >= 1
    kinds = {
        r[0]
        for r in db.execute(
            "SELECT limit_kind FROM work_order_breaches WHERE work_order_id = %s", (wo,)
        )
    }
    assert {"response", "arrival"} <= kinds, "responded and arrived 45 min after the call"
    assert record_breaches(db, (late + timedelta(hours=2)).timestamp()) == 0, "each breach once"
    pending = db.execute(
        "SELECT count(*) FROM escalation_steps WHERE work_order_id = %s AND cancelled_at IS NULL"
        " AND fired_at IS NULL",
        (wo,),
    ).fetchone()
    assert pending == (0,), "closing cancels the escalation still pending"


@pytest.mark.usefixtures("clean")
def test_each_alarm_change_writes_its_notification_in_the_same_transaction(
    settings: Settings, db: Conn
) -> None:
    db.execute("TRUNCATE ack_tokens_used, deliveries, outbox")
    wo = open_alarm(settings, db, "EL.TRAPPED", "elevator")
    rows = db.execute(
        "SELECT kind, work_order_id, severity, responsible_party, payload FROM outbox"
    ).fetchall()
    assert len(rows) == 1
    kind, wo_id, severity, party, payload = rows[0]
    assert (kind, wo_id, severity, party) == ("alarm_opened", wo, "P0", "elevator_maintenance_unit")
    assert payload["name"]["zh"] and payload["deadlines"]["arrival"]

    # A change that fails leaves no notification behind, and one that commits leaves exactly one.
    service = build(settings, clock="data")
    (dev_id,) = db.execute(
        "SELECT id FROM devices WHERE device_class = 'fire_water' ORDER BY id LIMIT 1"
    ).fetchone() or (0,)
    transitions = service.lifecycle.observe(
        Observation(dev_id, "FW.SPRINKLER_LOW", FRIDAY_EVENING.timestamp(), True)
    )
    with pytest.raises(KeyError):
        apply(
            service.conn,
            transitions,
            entry_of=service._entry,
            devices={},
            calendar=service.calendar,
            list_version="test",
        )
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
    assert db.execute(
        "SELECT count(*) FROM alarms WHERE event_code = 'FW.SPRINKLER_LOW'"
    ).fetchone() == (0,)
    apply(
        service.conn,
        transitions,
        entry_of=service._entry,
        devices=service.devices,
        calendar=service.calendar,
        list_version="test",
    )
    assert db.execute("SELECT count(*) FROM outbox").fetchone() == (2,)
    service.conn.close()
