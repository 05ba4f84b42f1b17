"""The database goes away under analytics (through a relay the test cuts): analytics stays up,
waits for it with backoff and says so, keeps what it holds in memory, acknowledges nothing it
has not committed, and when the database is back the alarm whose condition arose meanwhile is
there exactly once, with its work order and notification. A commit the outage cut off is not
written again when it went through; a stage killed during the outage and started after it finds
the alarm from the feed the broker kept for it."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

import analytics.service as service_module
from analytics.__main__ import build
from core.db import Conn
from core.feed import EVENTS_TOPIC, READINGS_TOPIC, pack_events
from core.outlasting_db import Database, backoff
from core.settings import Settings
from ingest.__main__ import config_from as ingest_config
from ingest.consumer import retire_session
from lifecycle.alarms import Transition
from tests.analytics.feed_helpers import Feed, clean, service, stream
from tests.background import running
from tests.conftest import settings_env, shouwang
from tests.mqtt_helpers import Peer, peer
from tests.proxy import Proxy

OUTAGE_S = 10.0


class Relay(Proxy):
    """The drills' proxy to the database, which can also swallow the answers on one connection
    from its next COMMIT on: the database commits, the client never hears so."""

    def __init__(self, host: str, port: int) -> None:
        self._swallow_port: int | None = None  # the client port whose next COMMIT is armed
        self._swallowing: set[int] = set()  # client ports whose answers are dropped
        self.swallowed = 0  # COMMITs whose answer was swallowed
        super().__init__(host, port)

    def cut(self) -> None:
        with self._lock:
            self._swallowing.clear()
            self._swallow_port = None
        super().cut()

    def swallow_next_commit(self, conn: Conn) -> None:
        """From the next COMMIT sent on ``conn``, drop what the database answers on it."""
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as s:
            self._swallow_port = int(s.getsockname()[1])

    def passes(self, data: bytes, *, upstream: bool, client_port: int) -> bool:
        if upstream and client_port == self._swallow_port and b"COMMIT" in data:
            with self._lock:  # armed before the database can answer
                self._swallowing.add(client_port)
                self._swallow_port = None
                self.swallowed += 1
        return upstream or client_port not in self._swallowing


@contextmanager
def relayed(database_url: str) -> Iterator[Relay]:
    params = conninfo_to_dict(database_url)
    relay = Relay(str(params.get("host", "127.0.0.1")), int(str(params.get("port", 5432))))
    try:
        yield relay
    finally:
        relay.close()


def wait_for(check: object, timeout_s: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def fire_rows(db: Conn, device: int) -> tuple[int, int, int]:
    """(alarms, work orders, outbox rows) of the device's FP.FIRE."""
    row = db.execute(
        "SELECT (SELECT count(*) FROM alarms WHERE device_id = %(d)s AND event_code = 'FP.FIRE'),"
        " (SELECT count(*) FROM work_orders WHERE device_id = %(d)s AND event_code = 'FP.FIRE'),"
        " (SELECT count(*) FROM outbox o JOIN alarms a ON a.id = o.alarm_id"
        "  WHERE a.device_id = %(d)s AND a.event_code = 'FP.FIRE' AND o.kind = 'alarm_opened')",
        {"d": device},
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


@pytest.fixture
def feed(db: Conn) -> Iterator[Feed]:
    clean(db)
    yield Feed(db)
    clean(db)


def feed_publisher(s: Settings) -> Peer:
    """Publishes on ingest's feed as ingest does (its account)."""
    return peer(
        s.mqtt_host, s.mqtt_port, s.mqtt_ingest_username, s.mqtt_ingest_password.get_secret_value()
    )


def retire_analytics_session(s: Settings) -> None:
    retire_session(
        replace(
            ingest_config(s, s.analytics_client_id),
            username=s.mqtt_analytics_username,
            password=s.mqtt_analytics_password.get_secret_value(),
        )
    )


def analytics_via(relay: Relay, settings: Settings, client_id: str) -> Settings:
    return settings.model_copy(
        update={
            "database_url": relay.url(settings.database_url),
            "analytics_client_id": client_id,
        }
    )


def test_an_alarm_arising_during_an_outage_is_filed_once_the_database_is_back(
    settings: Settings, db: Conn, feed: Feed, caplog: pytest.LogCaptureFixture
) -> None:
    fire = feed.devices("fire_panel")[0]
    with relayed(settings.database_url) as relay:
        s = analytics_via(relay, settings, "outage-analytics")
        svc = build(s, clock="wall")
        pub = feed_publisher(s)
        try:
            with (
                caplog.at_level(logging.WARNING, logger="shouwang.analytics"),
                running(svc.run, svc.stop, "analytics") as thread,
            ):
                assert svc._connected.wait(10)
                time.sleep(0.5)  # the subscription is in place
                relay.cut()
                cut_at = time.monotonic()
                pub.wait_acks(
                    [
                        pub.publish(
                            READINGS_TOPIC,
                            feed.readings(time.time(), [fire], {fire: {"active_fire": 1.0}}),
                        )
                    ]
                )
                # Held in memory, the alarm open there and waiting to be written.
                wait_for(lambda: (fire, "FP.FIRE") in svc.lifecycle.open, 5, "held in memory")
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
                assert thread.is_alive(), "analytics stays up through the outage"
                assert svc.rollup_thread is not None and svc.rollup_thread.is_alive()
                assert fire_rows(db, fire) == (0, 0, 0)
                assert svc._held_messages == 1, "the feed message is not acknowledged"
                unavailable = [
                    r for r in caplog.records if "DATABASE UNAVAILABLE" in r.getMessage()
                ]
                assert unavailable, "the outage is logged"
                assert 3 <= len(unavailable) <= 20, "once per attempt, with backoff: no flood"
                assert any("not acknowledged" in r.getMessage() for r in unavailable)

                relay.restore()
                wait_for(lambda: fire_rows(db, fire)[0] > 0, 30, "the alarm filed")
                wait_for(lambda: svc._held_messages == 0, 10, "the feed message acknowledged")
                time.sleep(1.0)  # nothing more comes
                assert fire_rows(db, fire) == (1, 1, 1), "alarm, work order, notice: once each"
                assert thread.is_alive() and svc.rollup_thread.is_alive()
                assert svc.db.reconnects >= 1
                assert svc.stats.quarantined == 0
                assert any("reachable again" in r.getMessage() for r in caplog.records)
        finally:
            pub.close()
            retire_analytics_session(s)


def test_a_commit_cut_off_by_the_outage_is_not_written_again(
    settings: Settings, db: Conn, feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database commits the alarm's transaction, then goes away before analytics hears so:
    once it is back, analytics asks it whether that transaction committed instead of writing
    the alarm (and its work order and notice) a second time."""
    fire = feed.devices("fire_panel")[0]
    real = service_module.apply

    def armed(conn: Conn, transitions: list[Transition], **kw: object) -> None:
        real(conn, transitions, **kw)  # type: ignore[arg-type]
        relay.swallow_next_commit(conn)

    monkeypatch.setattr(service_module, "apply", armed)
    with relayed(settings.database_url) as relay:
        svc = build(analytics_via(relay, settings, "outage-analytics-commit"), clock="data")
        try:
            with svc._lock:
                svc._buffer.append(
                    (
                        READINGS_TOPIC,
                        feed.readings(time.time(), [fire], {fire: {"active_fire": 1.0}}),
                        0,
                        0,
                    )
                )
            stepping = threading.Thread(target=svc.step, name="step", daemon=True)
            stepping.start()
            wait_for(lambda: relay.swallowed == 1, 10, "the commit swallowed")
            wait_for(lambda: fire_rows(db, fire) == (1, 1, 1), 5, "committed in the database")
            assert stepping.is_alive(), "analytics has not heard of the commit"
            relay.cut()
            time.sleep(2.0)
            relay.restore()
            stepping.join(30)
            assert not stepping.is_alive()
            assert fire_rows(db, fire) == (1, 1, 1), "not written a second time"
            assert fire not in svc.quarantined
            (alarm_id,) = db.execute(
                "SELECT id FROM alarms WHERE device_id = %s", (fire,)
            ).fetchone() or (0,)
            assert svc.lifecycle.open[(fire, "FP.FIRE")].id == alarm_id, "memory as committed"
        finally:
            svc.stop()  # ends any wait for the database, should the test have failed
            svc.db.close()


def test_a_transaction_lost_before_its_commit_is_written_again(
    settings: Settings, db: Conn
) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS outage_probe (n int)")
    db.execute("TRUNCATE outage_probe")
    with relayed(settings.database_url) as relay:
        stop = threading.Event()
        d = Database(relay.url(settings.database_url), "probe", stop, logging.getLogger("probe"))
        calls = 0

        def write(c: Conn) -> int:
            nonlocal calls
            calls += 1
            c.execute("INSERT INTO outage_probe VALUES (%s)", (calls,))
            if calls == 1:
                relay.cut()  # lost before the COMMIT: rolled back
                threading.Timer(1.5, relay.restore).start()
            return calls

        try:
            assert d.write(write) == 2
        finally:
            d.close()
    assert db.execute("SELECT array_agg(n) FROM outage_probe").fetchone() == ([2],)
    db.execute("DROP TABLE outage_probe")


def test_started_during_an_outage_it_waits_and_killed_during_one_it_loses_nothing(
    settings: Settings, db: Conn, feed: Feed, tmp_path: Path
) -> None:
    """``shouwang analytics`` started while the database is down waits for it; killed outright
    (SIGKILL) while it holds a feed message it could not commit, and started again once the
    database is back, it finds the alarm from the message the broker kept: filed once."""
    fire = feed.devices("fire_panel")[0]
    with relayed(settings.database_url) as relay:
        s = analytics_via(relay, settings, "outage-analytics-kill")
        env = settings_env(s) | {
            "SHOUWANG_ANALYTICS_CLIENT_ID": s.analytics_client_id,
            "COLUMNS": "300",  # log lines unwrapped
        }
        relay.cut()
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        with first_log.open("wb") as out:
            first = subprocess.Popen(shouwang("analytics"), env=env, stderr=out)
        pub = feed_publisher(s)
        try:
            # Its imports take seconds on a loaded machine: wait until it has met the outage.
            wait_for(
                lambda: "DATABASE UNAVAILABLE at start" in first_log.read_text(errors="replace"),
                60,
                "analytics met the outage at start",
            )
            time.sleep(1.0)
            assert first.poll() is None, "started during the outage, it waits"
            relay.restore()
            # Up: its session subscribes; then the database goes again, and a fire comes.
            wait_for(
                lambda: (
                    db.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                        (s.analytics_client_id,),
                    ).fetchone()
                    == (1,)
                ),
                20,
                "analytics connected",
            )
            time.sleep(2.0)
            relay.cut()
            pub.wait_acks(
                [
                    pub.publish(
                        READINGS_TOPIC,
                        feed.readings(time.time(), [fire], {fire: {"active_fire": 1.0}}),
                    )
                ]
            )
            time.sleep(3.0)
            assert first.poll() is None, "still up"
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            relay.restore()
            assert fire_rows(db, fire) == (0, 0, 0)
            with second_log.open("wb") as out:
                second = subprocess.Popen(shouwang("analytics"), env=env, stderr=out)
            try:
                wait_for(lambda: fire_rows(db, fire)[0] > 0, 40, "the alarm filed after restart")
                time.sleep(1.0)
            finally:
                second.send_signal(signal.SIGTERM)
                assert second.wait(30) == 0
        finally:
            if first.poll() is None:
                first.kill()
            pub.close()
            retire_analytics_session(s)
    log = first_log.read_text(errors="replace")
    assert "DATABASE UNAVAILABLE at start" in log, log[-3000:]
    assert fire_rows(db, fire) == (1, 1, 1)


def test_a_press_stored_while_analytics_was_down_is_one_alarm_after_its_restart(
    settings: Settings, db: Conn, feed: Feed
) -> None:
    """The drill's sequence. Ingest stored alarm-button presses during the outage that
    analytics, killed meanwhile, never saw; started again, it reads the codes back with their
    time, then takes the backlog the broker kept, as ingest published it after the outage: the
    batch's readings (older and newer than the presses) before its events. One press is one
    alarm, opened at the first reading after it, and neither cleared when the press itself is
    handled (the drill found it cleared at the press's time, before it opened) nor filed again
    with the readings that follow (a second alarm, the drill's 2 presses became 4 alarms)."""
    t0 = float(math.floor(time.time()) - 86400)  # data time: yesterday
    pressed = t0 + 600.25
    elevators = feed.devices("elevator")[:2]
    for d in elevators:
        db.execute(
            "INSERT INTO events (ts, device_id, code, active)"
            " VALUES (to_timestamp(%s), %s, '90', true)",
            (pressed, d),
        )
    svc = service(settings)
    try:
        for d in elevators:
            assert svc.engine.views[d].active_codes == {"90": pytest.approx(pressed)}
        # One step: ingest's batch of the outage, its readings then its events.
        backlog = [
            (READINGS_TOPIC, feed.readings(t0 + 5.0 * i, elevators), 0, 0) for i in range(300)
        ]
        presses = [(int(pressed * 1000), d, "90", True, {}) for d in elevators]
        backlog.append((EVENTS_TOPIC, pack_events(presses, []), 0, 0))
        with svc._lock:
            svc._buffer.extend(backlog)
        svc.step()
        stream(svc, feed, t0 + 1500.0, t0 + 1800.0, elevators, every=5.0)  # past the grace
        assert (svc.stats.events, svc.stats.opened, svc.stats.transitions) == (2, 2, 2)
    finally:
        svc.conn.close()
    rows = db.execute(
        "SELECT device_id, extract(epoch FROM opened_at)::float8, state, cleared_at,"
        " (SELECT count(*) FROM work_orders w WHERE w.alarm_id = a.id),"
        " (SELECT array_agg(o.kind ORDER BY o.id) FROM outbox o WHERE o.alarm_id = a.id)"
        " FROM alarms a WHERE event_code = 'EL.ALARM_BUTTON' ORDER BY device_id, id"
    ).fetchall()
    assert rows == [
        (d, pytest.approx(t0 + 605.0), "active", None, 1, ["alarm_opened"]) for d in elevators
    ]


def test_the_backoff_doubles_to_fifteen_seconds() -> None:
    assert [backoff(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
