"""Ingest's upkeep (retention and archiving) runs beside the writer: a pass held up in the
database (here: the audit log locked by another session, as a long archive rewrite or a slow
disk would hold it) does not keep readings from being stored, nor the worker's heartbeat from
showing progress; the pass completes once the database lets it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import psycopg

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic, encode_sample
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from ingest.upkeep import Upkeep
from simulators.county import County
from tests.background import running
from tests.conftest import Broker
from tests.mqtt_helpers import peer


def waiting_on_a_lock(db: Conn, application_name: str) -> bool:
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        " AND wait_event_type = 'Lock'",
        (application_name,),
    ).fetchone()
    return bool(row and row[0])


def test_a_held_up_upkeep_pass_does_not_stop_storing(
    db: Conn, settings: Settings, broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    uid = next(d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None)
    cfg = config_from(settings, "test-ingest-upkeep")
    blocker = psycopg.connect(settings.database_url, autocommit=False)
    try:
        blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        consumer = Consumer(cfg, settings.database_url)
        try:
            with running(consumer.run, consumer.stop, "ingest"):
                assert consumer._connected.wait(10), "ingest did not connect"
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not waiting_on_a_lock(
                    db, f"{cfg.client_id}-upkeep"
                ):
                    time.sleep(0.1)
                assert waiting_on_a_lock(db, f"{cfg.client_id}-upkeep"), (
                    "the first upkeep pass waits for the audit log"
                )
                # Meanwhile a device's readings are stored as usual.
                sender = peer(broker.host, broker.port, uid, secrets[uid])
                try:
                    stamps = [int(time.time() * 1000) + i for i in range(5)]
                    sender.wait_acks(
                        [
                            sender.publish(
                                device_topic(uid, Channel.TELEMETRY),
                                encode_sample(ts, {"floor": 3}),
                            )
                            for ts in stamps
                        ]
                    )
                finally:
                    sender.close()
                stored = 0
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and stored < len(stamps):
                    row = db.execute(
                        "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id"
                        " WHERE d.uid = %s AND r.ts = ANY(%s)",
                        (uid, [datetime.fromtimestamp(ts / 1000, UTC) for ts in stamps]),
                    ).fetchone()
                    stored = int(row[0]) if row else 0
                    time.sleep(0.1)
                assert stored == len(stamps), "readings are stored while the pass waits"
                assert consumer.upkeep.passes == 0, "the pass is still held up"
                # The database lets it go: the pass completes.
                blocker.rollback()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and consumer.upkeep.passes == 0:
                    time.sleep(0.1)
                assert consumer.upkeep.passes == 1
        finally:
            retire_session(cfg)
            consumer.conn.close()
    finally:
        blocker.close()


def test_a_worker_stopping_cancels_a_held_up_pass(db: Conn, settings: Settings) -> None:
    """Stopping does not wait for a pass the database holds up (a day's archive takes minutes):
    after its grace time the statement is cancelled and the worker ends."""
    cfg = config_from(settings, "test-ingest-upkeep-stop")
    blocker = psycopg.connect(settings.database_url, autocommit=False)
    try:
        blocker.execute("LOCK TABLE audit_log IN ACCESS EXCLUSIVE MODE")
        upkeep = Upkeep(cfg, settings.database_url)
        upkeep.start()
        name = f"{cfg.client_id}-upkeep"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not waiting_on_a_lock(db, name):
            time.sleep(0.1)
        assert waiting_on_a_lock(db, name)
        began = time.monotonic()
        upkeep.stop(timeout_s=1.0)
        assert time.monotonic() - began < 10, "stopped without waiting for the lock"
        assert upkeep.passes == 0
        row = db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchone()
        assert row == (0,), "its connection is gone"
    finally:
        blocker.close()
