"""The database goes away under ingest (through a proxy the test cuts): ingest stays up, holds at
most its byte limit in memory and stops reading from the broker, acknowledges nothing it has not
stored, and after the database returns every reading is stored exactly once."""

from __future__ import annotations

import time
from dataclasses import replace

from psycopg.conninfo import conninfo_to_dict

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic, encode_sample
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from simulators.county import County
from tests.background import running
from tests.conftest import Broker
from tests.mqtt_helpers import peer
from tests.proxy import proxied

LIMIT = 16 * 1024


def test_a_database_outage_pauses_reading_and_loses_nothing(
    db: Conn, settings: Settings, broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    el = next(d.uid for d in c.devices() if d.device_class == "elevator" and d.gateway is None)
    db.execute(
        "DELETE FROM readings WHERE device_id = (SELECT id FROM devices WHERE uid = %s)", (el,)
    )
    params = conninfo_to_dict(settings.database_url)
    with proxied(str(params.get("host", "127.0.0.1")), int(params.get("port", 5432))) as proxy:
        url = proxy.url(settings.database_url)
        cfg = replace(config_from(settings, "outage-ingest"), max_buffer_bytes=LIMIT)
        consumer = Consumer(cfg, url)
        dev = peer(broker.host, broker.port, el, secrets[el])
        try:
            with running(consumer.run, consumer.stop, "ingest") as worker:
                assert consumer._connected.wait(10)
                proxy.cut()
                now = int(time.time() * 1000) - 600_000
                mids = [
                    dev.publish(
                        device_topic(el, Channel.TELEMETRY),
                        encode_sample(now + i * 1000, {"floor": i % 30, "speed": 1.0 + i / 1000}),
                    )
                    for i in range(400)
                ]
                dev.wait_acks(mids)  # the broker has them all
                time.sleep(4.0)
                assert worker.is_alive()
                assert consumer.paused_reading > 0, "ingest stopped reading at its limit"
                held = consumer._buffer_bytes + consumer._held_bytes
                assert held < LIMIT + 200, f"{held} bytes held beyond the {LIMIT} byte limit"
                assert consumer.stats.messages == 0, (
                    "nothing counted stored while the database is away"
                )
                proxy.restore()
                deadline = time.monotonic() + 60
                stored = 0
                while time.monotonic() < deadline and stored < 800:
                    row = db.execute(
                        "SELECT count(*) FROM readings r JOIN devices d ON d.id = r.device_id"
                        " WHERE d.uid = %s",
                        (el,),
                    ).fetchone()
                    stored = int(row[0]) if row else 0
                    time.sleep(0.2)
        finally:
            dev.close()
            retire_session(cfg)
            consumer.conn.close()
    if stored != 800:
        have = {
            int(r[0])
            for r in db.execute(
                "SELECT DISTINCT (extract(epoch FROM r.ts) * 1000)::bigint FROM readings r"
                " JOIN devices d ON d.id = r.device_id WHERE d.uid = %s",
                (el,),
            ).fetchall()
        }
        missing = [i for i in range(400) if now + i * 1000 not in have]
        rejects = db.execute(
            "SELECT reason, count(*) FROM rejects WHERE topic LIKE %s GROUP BY 1", (f"%/{el}/%",)
        ).fetchall()
        raise AssertionError(
            f"{stored} of 800 readings stored; messages missing: {missing[:20]}; rejects {rejects}"
        )
    dup = db.execute(
        "SELECT count(*) - count(DISTINCT (device_id, metric_id, ts)) FROM readings"
    ).fetchone()
    assert dup == (0,)
