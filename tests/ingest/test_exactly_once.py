"""Kill the ingest worker mid-stream, twice; every published reading is stored exactly once."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic, encode_sample
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from simulators.county import County
from tests.conftest import Broker, settings_env, shouwang
from tests.mqtt_helpers import peer


def start_ingest(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        return subprocess.Popen(
            shouwang("ingest", "--client-id", "kill-test-ingest"), env=env, stdout=f, stderr=f
        )


def stored(db: Conn) -> set[tuple[str, str, int]]:
    rows = db.execute(
        "SELECT d.uid, m.name, (extract(epoch FROM r.ts) * 1000)::bigint FROM readings r"
        " JOIN devices d ON d.id = r.device_id JOIN metrics m ON m.id = r.metric_id"
    ).fetchall()
    return {(u, m, int(t)) for u, m, t in rows}


def test_sigkill_twice_mid_stream_loses_and_duplicates_nothing(
    db: Conn, settings: Settings, county: tuple[County, dict[str, str]], tmp_path: Path
) -> None:
    db.execute("TRUNCATE readings, rejects, latest_readings, device_presence")
    env = settings_env(settings)
    record = tmp_path / "published.csv"
    log = tmp_path / "ingest.log"
    ingest = start_ingest(env, log)
    time.sleep(1.5)  # connected and subscribed: the persistent session exists from here on
    sim = subprocess.Popen(
        shouwang("simulate", "--speed", "60", "--duration", "600", "--record", str(record)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    kills = 0
    try:
        for at in (3.0, 3.0):
            time.sleep(at)
            assert sim.poll() is None, (
                "the stream ended before the kill; the test would prove nothing"
            )
            ingest.send_signal(signal.SIGKILL)
            ingest.wait(10)
            kills += 1
            time.sleep(0.5)  # the broker holds what arrives meanwhile for the worker's session
            ingest = start_ingest(env, log)
        _, err = sim.communicate(timeout=120)
        assert sim.returncode == 0, err.decode()
        with record.open() as f:
            published = {(u, m, int(t)) for u, m, t, _v in csv.reader(f)}
        assert len(published) > 5000
        deadline = time.monotonic() + 60
        got: set[tuple[str, str, int]] = set()
        while time.monotonic() < deadline:
            got = stored(db)
            if len(got) >= len(published):
                break
            time.sleep(0.5)
        time.sleep(1.0)
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)
        retire_session(config_from(settings, "kill-test-ingest"))
    assert kills == 2
    row = db.execute(
        "SELECT count(*), count(DISTINCT (device_id, metric_id, ts)) FROM readings"
    ).fetchone()
    assert row is not None and row[0] == row[1], "a reading is stored twice"
    missing = published - got
    extra = got - published
    assert not missing, (
        f"{len(missing)} published readings never stored, e.g. {sorted(missing)[:3]}"
    )
    assert not extra, f"{len(extra)} stored readings were never published"
    assert row[0] == len(published)


def test_redelivered_and_duplicated_messages_are_stored_once(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    c, secrets = county
    db.execute("TRUNCATE readings, rejects")
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    dev = peer(broker.host, broker.port, el, secrets[el])
    now = int(time.time() * 1000)
    payload = encode_sample(now, {"floor": 7, "speed": 0.0})
    mids = [dev.publish(device_topic(el, Channel.TELEMETRY), payload) for _ in range(3)]
    dev.wait_acks(mids)
    time.sleep(1.0)
    later = [
        dev.publish(device_topic(el, Channel.TELEMETRY), payload),
        dev.publish(device_topic(el, Channel.TELEMETRY), encode_sample(now + 1, {"floor": 8})),
    ]
    dev.wait_acks(later)
    dev.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ingest_worker.stats.messages < 5:
        time.sleep(0.1)
    time.sleep(0.5)
    rows = db.execute("SELECT count(*) FROM readings").fetchone()
    assert rows == (3,)
    assert ingest_worker.stats.slow_path_readings >= 2, "duplicates went through the absorbing path"
    latest = db.execute(
        "SELECT l.value FROM latest_readings l JOIN metrics m ON m.id = l.metric_id"
        " JOIN devices d ON d.id = l.device_id WHERE d.uid = %s AND m.name = 'floor'",
        (el,),
    ).fetchone()
    assert latest == (8.0,)
