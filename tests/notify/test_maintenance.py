"""Maintenance windows in notify: an alarm whose device was under maintenance when it opened is
not sent (its outbox row is finished as superseded, nothing delivered); the same device's alarms
before and after its windows, and other devices' alarms during them, go out. Overlapping windows
combine; a window ends by itself and when closed early."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from psycopg.types.json import Jsonb

from core.db import Conn
from core.settings import Settings
from lifecycle import maintenance_windows as store
from notify.dispatcher import Dispatcher
from tests.notify.test_dispatch import LOCAL, Receiver, duty, receiver  # noqa: F401  (fixtures)
from tests.notify.test_routing import GROUPED, Clock, clean, dispatcher, notify, on_duty_now  # noqa: F401

MIN = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def windows_removed(db: Conn) -> Iterator[None]:
    """Each test's windows are removed afterwards: a window left behind, even one in the past,
    keeps later tests' alarms on the same devices and times from being notified."""
    yield
    db.execute("TRUNCATE maintenance_windows CASCADE")


def window(db: Conn, device_id: int, start: datetime, end: datetime) -> int:
    """A window as stored (times in the past are set here directly, past the API's bounds)."""
    (community,) = db.execute(
        "SELECT community_id FROM devices WHERE id = %s", (device_id,)
    ).fetchone() or (0,)
    (wid,) = db.execute(
        "INSERT INTO maintenance_windows (community_id, kind, starts_at, ends_at, performer,"
        " opened_by) VALUES (%s, 'service', %s, %s, 'MU crew', 'test') RETURNING id",
        (community, start, end),
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO maintenance_window_devices (window_id, device_id) VALUES (%s, %s)",
        (wid, device_id),
    )
    return int(wid)


def alarm_row(db: Conn, community_id: int, device_id: int, code: str, opened: datetime) -> int:
    (alarm,) = db.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
        " last_triggered_at, list_version) VALUES (%s, %s, 'P0', 'active', 'test', %s, %s, 't')"
        " RETURNING id",
        (device_id, code, opened, opened),
    ).fetchone() or (0,)
    (oid,) = db.execute(
        "INSERT INTO outbox (kind, alarm_id, community_id, severity, responsible_party, payload)"
        " VALUES ('alarm_opened', %s, %s, 'P0', 'firm_duty_room', %s) RETURNING id",
        (alarm, community_id, Jsonb({"alarm_id": alarm, "code": code})),
    ).fetchone() or (0,)
    return int(oid)


def test_alarms_in_a_window_are_not_sent_others_are(
    settings: Settings,
    db: Conn,
    receiver: Receiver,  # noqa: F811
    duty: tuple[int, int],  # noqa: F811
) -> None:
    community_id, _ = duty
    db.execute(
        "TRUNCATE deliveries, outbox, alarms, work_orders, work_order_transitions,"
        " work_order_breaches, escalation_steps, maintenance_windows CASCADE"
    )
    dev, other = (
        int(r[0])
        for r in db.execute(
            "SELECT id FROM devices WHERE community_id = %s ORDER BY id LIMIT 2", (community_id,)
        ).fetchall()
    )
    now = datetime.now(UTC)
    # Two overlapping windows on dev: [now-120, now-90) and [now-95, now-60).
    window(db, dev, now - 120 * MIN, now - 90 * MIN)
    window(db, dev, now - 95 * MIN, now - 60 * MIN)
    # A window open now, closed early below.
    current = window(db, dev, now - 10 * MIN, now + 60 * MIN)
    rows = {
        "before": alarm_row(db, community_id, dev, "T.BEFORE", now - 121 * MIN),
        "first": alarm_row(db, community_id, dev, "T.FIRST", now - 110 * MIN),
        "overlap": alarm_row(db, community_id, dev, "T.OVERLAP", now - 92 * MIN),
        "second": alarm_row(db, community_id, dev, "T.SECOND", now - 61 * MIN),
        "expired": alarm_row(db, community_id, dev, "T.EXPIRED", now - 60 * MIN),
        "between": alarm_row(db, community_id, dev, "T.BETWEEN", now - 30 * MIN),
        "current": alarm_row(db, community_id, dev, "T.CURRENT", now - 5 * MIN),
        "other device": alarm_row(db, community_id, other, "T.OTHER", now - 100 * MIN),
    }
    with db.transaction():
        store.close(db, current, closed_by="test", now=now)
    rows["after closing"] = alarm_row(db, community_id, dev, "T.AFTER", now + MIN / 60)
    with httpx.Client(timeout=5) as http:
        d = Dispatcher(settings.database_url, "d1", http, addresses=LOCAL)
        for _ in range(5):
            d.run_once()
        d.conn.close()
    done = dict(
        db.execute("SELECT id, superseded FROM outbox WHERE done_at IS NOT NULL").fetchall()
    )
    delivered = {
        int(r[0])
        for r in db.execute(
            "SELECT DISTINCT outbox_id FROM deliveries WHERE status = 'accepted'"
        ).fetchall()
    }
    suppressed = {"first", "overlap", "second", "current"}
    assert set(done) == set(rows.values()), "every row is finished"
    for name, oid in rows.items():
        if name in suppressed:
            assert done[oid] is True and oid not in delivered, name
        else:
            assert done[oid] is False and oid in delivered, name
    assert len(receiver.accepted) == len(rows) - len(suppressed)


def test_a_batch_leaves_out_the_alarms_of_devices_under_maintenance(
    settings: Settings,
    db: Conn,
    clean: int,  # noqa: F811
) -> None:
    """Grouped severities: the batch says only what is not under maintenance."""
    db.execute("TRUNCATE maintenance_windows CASCADE")
    rx = Receiver()
    try:
        on_duty_now(db, clean, "值班员 李", rx.url)
        dev, other = (
            int(r[0])
            for r in db.execute(
                "SELECT id FROM devices WHERE community_id = %s ORDER BY id LIMIT 2", (clean,)
            ).fetchall()
        )
        now = datetime.now(UTC)
        window(db, dev, now - 10 * MIN, now + 60 * MIN)
        (elsewhere,) = db.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
            " last_triggered_at, list_version) VALUES (%s, 'EL.DOOR.X', 'P2', 'active', 'test',"
            " now(), now(), 't') RETURNING id",
            (other,),
        ).fetchone() or (0,)
        notify(db, clean, "P2", "EL.DOOR.0")  # the first device: under maintenance
        notify(db, clean, "P2", "EL.DOOR.1")
        notify(db, clean, "P2", "EL.DOOR.X", alarm=int(elsewhere))
        clock = Clock()
        with httpx.Client(timeout=5) as http:
            d = dispatcher(settings, http, clock, GROUPED)
            d.run_once()
            clock.advance(seconds=31)
            d.run_once()
            d.close()
        assert [(p["kind"], p["code"]) for p in rx.accepted.values()] == [
            ("alarm_opened", "EL.DOOR.X")
        ]
        assert db.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetchone() == (0,)
    finally:
        rx.close()


def test_the_stages_roles_may_read_the_windows(db: Conn) -> None:
    """notify and analytics read windows (and the rule); the API also writes them."""
    (dev,) = db.execute(
        "SELECT min(id) FROM devices WHERE id NOT IN (SELECT device_id FROM"
        " maintenance_window_devices)"
    ).fetchone() or (0,)
    for role in ("shouwang_notify", "shouwang_analytics", "shouwang_api"):
        with db.transaction(force_rollback=True):
            db.execute(f"SET LOCAL ROLE {role}")
            assert db.execute(
                "SELECT device_in_maintenance(%s, now()), (SELECT count(*) >= 0 FROM"
                " device_last_service)",
                (dev,),
            ).fetchone() == (False, True)
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL ROLE shouwang_api")
        wid = window(db, int(dev), datetime.now(UTC), datetime.now(UTC) + 60 * MIN)
        assert store.under_maintenance(db, int(dev), datetime.now(UTC))
        assert wid > 0
