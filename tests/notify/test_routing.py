"""Routing notifications with real local receivers (our HTTP receiver, the test Mosquitto, the
dispatcher as a process): who is on duty by time of day, grouping of lower severities, quiet
hours, duplicates, reminders until someone acknowledges, the clear notice, the duty app's MQTT
topic, and a dispatcher killed mid-delivery losing nothing.

The dispatcher's clock is injected, so hours pass in an instant."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from psycopg.types.json import Jsonb

from broker.accounts import issue_person
from core.db import Conn
from core.settings import Settings
from core.wire import duty_topic
from lifecycle.acknowledge import acknowledge, read_token
from notify.ack_links import AckLinks
from notify.dispatcher import Dispatcher
from notify.duty_app import DutyApps
from notify.policy import Policy, PolicyError, QuietHours, merge_batch
from tests.conftest import (
    NOTIFY_PASSWORD,
    Broker,
    clear_people,
    settings_env,
    shouwang,
    sync_broker,
)
from tests.mqtt_helpers import peer
from tests.notify.test_dispatch import LOCAL, LOCAL_ENV, SECRET, Receiver

TZ = ZoneInfo("Asia/Shanghai")
ACK_SECRET = "ack-test-secret"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def clean(db: Conn) -> int:
    clear_people(db)
    db.execute(
        "TRUNCATE alarms, work_orders, work_order_transitions, work_order_breaches,"
        " escalation_steps CASCADE"
    )
    (community_id,) = db.execute("SELECT id FROM communities ORDER BY id LIMIT 1").fetchone() or (
        0,
    )
    return int(community_id)


def person(
    db: Conn,
    community_id: int,
    name: str,
    address: str,
    start: datetime,
    end: datetime,
    *,
    kind: str = "webhook",
    role: str = "duty_staff",
    language: str = "zh",
) -> int:
    (pid,) = db.execute(
        "INSERT INTO people (name, role, language) VALUES (%s, %s, %s) RETURNING id",
        (name, role, language),
    ).fetchone() or (0,)
    db.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES (%s, %s, %s, %s)",
        (pid, kind, address, SECRET),
    )
    db.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " VALUES (%s, %s, %s, %s, %s)",
        (community_id, role, pid, start, end),
    )
    return int(pid)


def on_duty_now(db: Conn, community_id: int, name: str, address: str, **kw: str) -> int:
    now = datetime.now(UTC)
    # Three days: a test whose clock runs ahead (to the next night's quiet hours and past them)
    # still finds the person on shift.
    return person(
        db, community_id, name, address, now - timedelta(hours=1), now + timedelta(days=3), **kw
    )


def notify(
    db: Conn,
    community_id: int,
    severity: str,
    code: str,
    *,
    kind: str = "alarm_opened",
    alarm: int | None = None,
    party: str = "firm_duty_room",
) -> tuple[int, int]:
    """An outbox row (and its alarm, unless given) as analytics writes them; (alarm, outbox)."""
    if alarm is None:
        (dev,) = db.execute(
            "SELECT id FROM devices WHERE community_id = %s ORDER BY id LIMIT 1", (community_id,)
        ).fetchone() or (0,)
        (alarm,) = db.execute(
            "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
            " last_triggered_at, list_version) VALUES (%s, %s, %s, 'active', 'test', now(), now(), 't')"
            " RETURNING id",
            (dev, code, severity),
        ).fetchone() or (0,)
    payload = {
        "kind": kind,
        "alarm_id": alarm,
        "code": code,
        "severity": severity,
        "community": "C1",
        "device": "EL-1",
        "name": {"zh": code, "en": code},
    }
    (oid,) = db.execute(
        "INSERT INTO outbox (kind, alarm_id, community_id, severity, responsible_party, payload)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (kind, alarm, community_id, severity, party, Jsonb(payload)),
    ).fetchone() or (0,)
    return int(alarm), int(oid)


def dispatcher(
    settings: Settings, http: httpx.Client, clock: Clock, policy: Policy, **kw: object
) -> Dispatcher:
    return Dispatcher(
        settings.database_url,
        "d-test",
        http,
        policy=policy,
        clock=clock,
        housekeeping_s=0,
        backoff_base_s=0.05,
        **kw,
        addresses=LOCAL,  # type: ignore[arg-type]
    )


GROUPED = Policy(
    group_wait=timedelta(seconds=30), group_interval=timedelta(minutes=5), reminder_every={}
)
REMINDING = Policy(group_wait=timedelta(seconds=30), group_interval=timedelta(minutes=5))


def test_the_person_on_duty_by_time_of_day_and_both_at_a_handover(
    settings: Settings, db: Conn, receiver: Receiver, clean: int
) -> None:
    day0 = datetime.now(TZ).replace(hour=0, minute=0, second=0, microsecond=0)
    day, night = receiver.url + "?day", receiver.url + "?night"
    # Day shift 08:00-20:15, night shift 20:00-08:15: a quarter-hour handover at each end.
    person(
        db, clean, "白班 李", day, day0 + timedelta(hours=8), day0 + timedelta(hours=20, minutes=15)
    )
    person(
        db,
        clean,
        "夜班 王",
        night,
        day0 + timedelta(hours=20),
        day0 + timedelta(hours=32, minutes=15),
    )
    clock = Clock()
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, clock, GROUPED)
        for local, expected in [
            (day0 + timedelta(hours=10), {"白班 李"}),
            (day0 + timedelta(hours=23), {"夜班 王"}),
            (day0 + timedelta(hours=20, minutes=5), {"白班 李", "夜班 王"}),
        ]:
            names = {
                db.execute("SELECT name FROM people WHERE id = %s", (r.person_id,)).fetchone()[0]  # type: ignore[index]
                for r in d.recipients(clean, "firm_duty_room", local)
            }
            assert names == expected, local
        # Delivered at 23:00: the night shift's address only.
        clock.now = (day0 + timedelta(hours=23)).astimezone(UTC)
        notify(db, clean, "P0", "EL.TRAPPED")
        d.run_once()
        d.close()
    assert [k for k in receiver.accepted] and receiver.requests == 1
    (channel,) = db.execute(
        "SELECT c.address FROM deliveries d JOIN contact_channels c ON c.id = d.channel_id"
    ).fetchone() or ("",)
    assert channel == night


def test_lower_severities_wait_for_companions_and_go_out_together(
    settings: Settings, db: Conn, receiver: Receiver, clean: int
) -> None:
    on_duty_now(db, clean, "值班员 李", receiver.url)
    clock = Clock()
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, clock, GROUPED)
        for i in range(3):
            notify(db, clean, "P2", f"EL.DOOR.{i}")
        notify(db, clean, "P0", "EL.TRAPPED")
        d.run_once()
        kinds = [p["kind"] for p in receiver.accepted.values()]
        assert kinds == ["alarm_opened"], "P0 at once, the P2s wait for the group wait"
        clock.advance(seconds=31)
        d.run_once()
        groups = [p for p in receiver.accepted.values() if p["kind"] == "group"]
        assert len(groups) == 1
        assert [i["code"] for i in groups[0]["items"]] == ["EL.DOOR.0", "EL.DOOR.1", "EL.DOOR.2"]  # type: ignore[index]
        # One more in the same group: it waits for the group interval, not just the group wait.
        notify(db, clean, "P2", "EL.DOOR.3")
        clock.advance(seconds=60)
        d.run_once()
        assert len(receiver.accepted) == 2
        clock.advance(minutes=5)
        d.run_once()
        d.close()
    assert len(receiver.accepted) == 3
    last = list(receiver.accepted.values())[-1]
    assert (last["kind"], last["code"]) == ("alarm_opened", "EL.DOOR.3")
    assert db.execute("SELECT count(*) FROM outbox WHERE done_at IS NULL").fetchone() == (0,)
    assert db.execute(
        "SELECT count(DISTINCT outbox_id) FROM deliveries WHERE status = 'accepted'"
    ).fetchone() == (3,), "a batch is delivered (and logged) once, on its first row"


def test_quiet_hours_hold_back_the_quiet_severities_until_they_end(
    settings: Settings, db: Conn, receiver: Receiver, clean: int
) -> None:
    on_duty_now(db, clean, "值班员 李", receiver.url)
    quiet = Policy(
        group_wait=timedelta(0), quiet=QuietHours.parse("22:00-07:00"), reminder_every={}
    )
    clock = Clock()
    night = datetime.now(TZ).replace(hour=23, minute=30, second=0, microsecond=0)
    clock.now = night.astimezone(UTC)
    if clock.now < datetime.now(UTC):  # keep the clock ahead of the rows' real creation times
        clock.advance(days=1)
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, clock, quiet)
        notify(db, clean, "P3", "WS.TURBIDITY")
        notify(db, clean, "P1", "EL.SAFETY")
        d.run_once()
        assert [p["code"] for p in receiver.accepted.values()] == ["EL.SAFETY"]
        clock.advance(hours=7, minutes=31)  # 07:01
        d.run_once()
        d.close()
    assert [p["code"] for p in receiver.accepted.values()] == ["EL.SAFETY", "WS.TURBIDITY"]


def test_duplicates_in_a_batch_are_reported_once_with_the_latest_news() -> None:
    opened = {"kind": "alarm_opened", "alarm_id": 1, "code": "A", "opened_at": "t0"}
    cleared = {"kind": "alarm_cleared", "alarm_id": 1, "code": "A", "opened_at": "t0"}
    reminder = {"kind": "reminder", "alarm_id": 2, "code": "B"}
    other = {"kind": "alarm_opened", "alarm_id": 2, "code": "B"}
    assert merge_batch([opened, other, cleared, reminder]) == [cleared, other]
    with pytest.raises(PolicyError, match="P0 goes out at once"):
        Policy.build(
            grouped=["P0"],
            group_wait_s=1,
            group_interval_s=1,
            quiet_hours="",
            quiet_severities=[],
            timezone="Asia/Shanghai",
            reminder_minutes={},
        )
    with pytest.raises(PolicyError, match="HH:MM-HH:MM"):
        QuietHours.parse("22-7")


def test_reminders_repeat_with_an_ack_link_until_someone_acknowledges(
    settings: Settings, db: Conn, receiver: Receiver, clean: int
) -> None:
    on_duty_now(db, clean, "值班员 李", receiver.url)
    clock = Clock()
    links = AckLinks(ACK_SECRET, "https://duty.example/v1/ack")
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, clock, REMINDING, ack=links)
        alarm, _ = notify(db, clean, "P0", "EL.TRAPPED")
        d.run_once()
        clock.advance(minutes=4)
        d.run_once()
        assert len(receiver.accepted) == 1, "no reminder before the P0 interval (5 min)"
        clock.advance(minutes=2)
        d.run_once()
        clock.advance(minutes=6)
        d.run_once()
        sent = list(receiver.accepted.values())
        assert [(p["kind"], p.get("reminder")) for p in sent] == [
            ("alarm_opened", None),
            ("reminder", 1),
            ("reminder", 2),
        ]
        # The link in the last reminder acknowledges; nothing more follows.
        url = str(sent[-1]["ack_url"])
        assert url.startswith("https://duty.example/v1/ack/")
        token = read_token(ACK_SECRET, url.rsplit("/", 1)[1], now=time.time())
        assert (token.alarm_id, token.person) == (alarm, "值班员 李")
        acknowledge(db, token.alarm_id, actor=token.person, at=clock.now, token_id=token.token_id)
        for _ in range(3):
            clock.advance(minutes=6)
            d.run_once()
        d.close()
    assert len(receiver.accepted) == 3


def test_a_reminder_due_after_the_acknowledgement_is_dropped(
    settings: Settings, db: Conn, receiver: Receiver, clean: int
) -> None:
    on_duty_now(db, clean, "值班员 李", receiver.url)
    clock = Clock()
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, clock, REMINDING)
        alarm, _ = notify(db, clean, "P0", "EL.TRAPPED")
        d.run_once()
        clock.advance(minutes=6)
        d.fire_reminders()  # written, not yet delivered ...
        acknowledge(db, alarm, actor="值班员 李", at=clock.now)  # ... when someone acknowledges
        d.run_once()
        d.close()
    assert len(receiver.accepted) == 1
    assert db.execute(
        "SELECT superseded, done_at IS NOT NULL FROM outbox WHERE kind = 'reminder'"
    ).fetchall() == [(True, True)]


def test_the_clear_notice_reaches_the_people_on_duty(
    settings: Settings, db: Conn, receiver: Receiver, clean: int
) -> None:
    from analytics.__main__ import build
    from analytics.store import apply
    from lifecycle.alarms import Observation

    on_duty_now(db, clean, "值班员 李", receiver.url)
    (dev,) = db.execute(
        "SELECT id FROM devices WHERE community_id = %s AND device_class = 'elevator' ORDER BY id"
        " LIMIT 1",
        (clean,),
    ).fetchone() or (0,)
    service = build(settings, clock="data")
    t0 = time.time() - 3600
    for obs_t, active in [(t0, True), (t0 + 60, False)]:
        apply(
            service.conn,
            service.lifecycle.observe(Observation(dev, "EL.TRAPPED", obs_t, active, "test")),
            entry_of=service._entry,
            devices=service.devices,
            calendar=service.calendar,
            list_version="t",
        )
    apply(
        service.conn,
        service.lifecycle.tick(t0 + 3000),
        entry_of=service._entry,
        devices=service.devices,
        calendar=service.calendar,
        list_version="t",
    )
    service.conn.close()
    with httpx.Client(timeout=5) as http:
        d = dispatcher(settings, http, Clock(), GROUPED)
        d.run_once()
        d.close()
    kinds = [(p["kind"], p["code"]) for p in receiver.accepted.values()]
    assert kinds == [("alarm_opened", "EL.TRAPPED"), ("alarm_cleared", "EL.TRAPPED")]
    cleared = list(receiver.accepted.values())[1]
    assert cleared["building"] and cleared["community_name"], "where: community and building"
    assert "ack_url" not in cleared, "a cleared alarm needs no acknowledgement"


def test_the_duty_app_reads_its_own_notifications_on_its_mqtt_topic(
    settings: Settings, db: Conn, broker: Broker, clean: int
) -> None:
    pid = on_duty_now(db, clean, "值班员 李", "", kind="mqtt", language="en")
    username, password = issue_person(db, pid)
    db.execute("UPDATE contact_channels SET address = %s WHERE person_id = %s", (username, pid))
    other = on_duty_now(db, clean, "值班员 王", "", kind="mqtt")
    other_user, _ = issue_person(db, other)
    db.execute("UPDATE contact_channels SET address = %s WHERE person_id = %s", (other_user, other))
    sync_broker(db, broker)
    # The app asks for everyone's notifications; the broker gives it only its own.
    app = peer(broker.host, broker.port, username, password, subscribe="sw/duty/v1/+/notifications")
    try:
        apps = DutyApps(
            broker.host, broker.port, "svc-notify", NOTIFY_PASSWORD, client_id="notify-test"
        )
        with httpx.Client(timeout=5) as http:
            d = dispatcher(settings, http, Clock(), GROUPED, duty_apps=apps)
            notify(db, clean, "P0", "EL.TRAPPED")
            d.run_once()
            d.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not app.received:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        app.close()
    got = list(app.received)
    assert [t for t, _ in got] == [duty_topic(username)]
    message = orjson.loads(got[0][1])
    assert message["code"] == "EL.TRAPPED" and message["title"].startswith("[P0] Alarm")
    assert db.execute("SELECT count(*) FROM deliveries WHERE status = 'accepted'").fetchone() == (
        2,
    ), "both people's apps had it accepted by the broker"


def test_a_dispatcher_killed_mid_delivery_and_restarted_loses_nothing(
    settings: Settings, db: Conn, clean: int
) -> None:
    receiver = Receiver(delay_s=0.05)
    try:
        on_duty_now(db, clean, "值班员 李", receiver.url)
        ids = [notify(db, clean, "P0", f"EL.{i}")[1] for i in range(30)]
        env = (
            settings_env(settings)
            | LOCAL_ENV
            | {
                "SHOUWANG_NOTIFY_LEASE_S": "1",
                "SHOUWANG_NOTIFY_BACKOFF_BASE_S": "0.1",
            }
        )
        first = subprocess.Popen(shouwang("notify", "--name", "victim"), env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(receiver.accepted) < 8:
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        got_before = len(receiver.accepted)
        assert 8 <= got_before < 30, "killed mid-way"
        second = subprocess.Popen(shouwang("notify", "--name", "survivor"), env=env)
        try:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and db.execute(
                "SELECT count(*) FROM outbox WHERE done_at IS NULL"
            ).fetchone() != (0,):
                time.sleep(0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(15) == 0
    finally:
        receiver.close()
    assert len(receiver.accepted) == 30, "every notification arrived"
    accepted = db.execute(
        "SELECT outbox_id, count(*) FROM deliveries WHERE status = 'accepted' GROUP BY 1"
    ).fetchall()
    assert sorted(accepted) == [(i, 1) for i in ids], "each accepted once in the log"
    in_flight = settings.notify_concurrency_per_firm  # one firm: at most this many at once
    assert receiver.requests - len(receiver.accepted) <= in_flight, (
        "at most the ones in flight at the kill are posted again (and dropped by their delivery id)"
    )


def test_issuing_a_duty_app_credential_from_the_command_line(
    settings: Settings, db: Conn, broker: Broker, clean: int
) -> None:
    pid = on_duty_now(db, clean, "值班员 赵", "https://unused.example/hook")
    out = subprocess.run(
        shouwang("broker", "issue-duty-app", str(pid)),
        env=settings_env(settings),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = dict(line.split(maxsplit=1) for line in out.splitlines() if line.strip())
    assert fields["username"] == f"duty-{pid}"
    assert fields["topic"] == duty_topic(f"duty-{pid}")
    assert db.execute(
        "SELECT kind, address FROM contact_channels WHERE person_id = %s AND kind = 'mqtt'", (pid,)
    ).fetchall() == [("mqtt", f"duty-{pid}")]
    app = peer(broker.host, broker.port, fields["username"], fields["password"])
    try:
        assert app.connect_rc is not None and not app.connect_rc.is_failure
    finally:
        app.close()
