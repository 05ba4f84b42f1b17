"""Drill: the broker restarts cleanly mid-stream under load. The simulator's devices and gateways
reconnect with backoff and send again what the broker had not acknowledged; ingest's persistent
session gets what the broker held; every reading published is stored exactly once."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db import Conn
from core.settings import Settings
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from simulators.county import County
from tests.conftest import Broker, settings_env, settings_for, shouwang, start_broker, sync_broker


def stored(db: Conn, uids: set[str]) -> set[tuple[str, str, int]]:
    rows = db.execute(
        "SELECT d.uid, m.name, (extract(epoch FROM r.ts) * 1000)::bigint FROM readings r"
        " JOIN devices d ON d.id = r.device_id JOIN metrics m ON m.id = r.metric_id"
        " WHERE d.uid = ANY(%s)",
        (list(uids),),
    ).fetchall()
    return {(u, m, int(t)) for u, m, t in rows}


@pytest.fixture
def own_broker(tmp_path: Path, db: Conn) -> Iterator[Broker]:
    """A broker of this test's own, with persistence, that the test may stop and start."""
    b = start_broker(tmp_path / "broker", persistence=True)
    sync_broker(db, b)
    yield b
    if b.proc.poll() is None:
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(10)


def test_a_clean_broker_restart_loses_and_duplicates_nothing(
    db: Conn,
    database_url: str,
    county: tuple[County, dict[str, str]],
    own_broker: Broker,
    tmp_path: Path,
) -> None:
    c, secrets = county
    community = c.communities[0]
    uids = {d.uid for d in community.devices}
    db.execute(
        "DELETE FROM readings WHERE device_id IN (SELECT id FROM devices WHERE uid = ANY(%s))",
        (list(uids),),
    )
    state = tmp_path / "state"
    state.mkdir()
    (state / "device-secrets.json").write_text(json.dumps(secrets))
    s: Settings = settings_for(database_url, own_broker, state)
    cfg = config_from(s, "drill-restart-ingest")
    consumer = Consumer(cfg, s.database_url)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            consumer.run()
        except BaseException as e:  # surfaced below
            errors.append(e)

    worker = threading.Thread(target=run, name="ingest")
    worker.start()
    record = tmp_path / "published.csv"
    try:
        assert consumer._connected.wait(10)
        sim = subprocess.Popen(
            shouwang(
                "simulate",
                "--community",
                community.code,
                "--speed",
                "30",
                "--duration",
                "450",
                "--record",
                str(record),
            ),
            env=settings_env(s),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(4.0)
        assert sim.poll() is None, "the stream ended before the restart; the drill proves nothing"
        own_broker.proc.send_signal(signal.SIGTERM)  # a clean stop: the broker saves its state
        own_broker.proc.wait(10)
        time.sleep(2.0)
        restarted = start_broker(own_broker.directory, persistence=True, port=own_broker.port)
        own_broker.proc = restarted.proc
        _, err = sim.communicate(timeout=120)
        assert sim.returncode == 0, err.decode()
        with record.open() as f:
            published = {(u, m, int(t)) for u, m, t, _v in csv.reader(f)}
        assert len(published) > 1000
        deadline = time.monotonic() + 60
        got: set[tuple[str, str, int]] = set()
        while time.monotonic() < deadline:
            got = stored(db, uids)
            if got >= published:
                break
            time.sleep(0.5)
    finally:
        consumer.stop()
        worker.join(30)
        retire_session(cfg)
        consumer.conn.close()
    assert not errors, errors
    dup = db.execute(
        "SELECT count(*) - count(DISTINCT (device_id, metric_id, ts)) FROM readings"
    ).fetchone()
    assert dup == (0,), "a reading is stored twice"
    missing = published - got
    spans: dict[str, tuple[int, int, int]] = {}
    for u, _m, t in missing:
        lo, hi, n = spans.get(u, (t, t, 0))
        spans[u] = (min(lo, t), max(hi, t), n + 1)
    assert not missing, (
        f"{len(missing)} of {len(published)} readings lost: {spans}\n{err.decode()[-3000:]}\n{consumer.stats}"
    )
    assert got == published
    assert b"reconnect" in err or "lost its connection" in err.decode(), "the drill did cut links"
