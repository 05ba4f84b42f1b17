"""Ingest's metrics against the real broker and database: what a stream of good and bad messages
does to the counters (their differences: the registry is the test process's), and the heartbeat
the stuck-ingest test reads through ``shouwang health --stage ingest``."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from prometheus_client import REGISTRY

from core.db import Conn
from core.metrics import scrape
from core.settings import Settings
from core.wire import (
    Channel,
    device_topic,
    encode_batch,
    encode_event,
    encode_sample,
    encode_status,
    gateway_topic,
)
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from shouwang.stages import worker_ports
from simulators.county import County
from tests.conftest import Broker, free_port, settings_env, shouwang
from tests.mqtt_helpers import peer

KINDS = ("telemetry", "event", "status", "batch", "config", "unknown")
REASONS = ("malformed", "out_of_range", "unknown_event", "unknown_device", "invalid")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot() -> dict[str, float]:
    out = {f"messages:{k}": value("shouwang_ingest_messages_total", kind=k) for k in KINDS}
    out |= {f"rejects:{r}": value("shouwang_ingest_rejects_total", reason=r) for r in REASONS}
    out["readings"] = value("shouwang_ingest_readings_total")
    out["flushes"] = value("shouwang_ingest_flush_rows_count")
    out["flush_rows"] = value("shouwang_ingest_flush_rows_sum")
    out["flush_seconds"] = value("shouwang_ingest_flush_seconds_count")
    out["progress"] = value("shouwang_stage_progress_total", stage="ingest")
    return out


def until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def stored(db: Conn, since_ms: int) -> int:
    """Readings stored with a time from ``since_ms`` on: only recent ones, since ingest's upkeep
    archives older days of earlier tests' readings meanwhile (they leave ``readings``)."""
    row = db.execute(
        "SELECT count(*) FROM readings WHERE ts >= to_timestamp(%s / 1000.0)", (since_ms,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_counters_follow_good_and_bad_messages(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    c, secrets = county
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    gw = c.communities[0].gateway
    mine = next(
        d.uid
        for d in c.communities[0].devices
        if d.gateway == gw and d.device_class == "electrical_fire"
    )
    now = int(time.time() * 1000)
    good = {"floor": 3, "speed": 1.0, "door_state": 0, "car_status": 1}
    telemetry = device_topic(el, Channel.TELEMETRY)
    rows_before, before = stored(db, now - 60_000), snapshot()
    assert value("shouwang_ingest_broker_connected") == 1
    dev = peer(broker.host, broker.port, el, secrets[el])
    gateway = peer(broker.host, broker.port, gw, secrets[gw])
    try:
        mids = [
            dev.publish(telemetry, encode_sample(now - 5000 - i * 1000, good)) for i in range(10)
        ]
        mids += [
            dev.publish(telemetry, b'{"ts": 1, "values": {'),  # malformed
            dev.publish(telemetry, encode_sample(now - 100, {"floor": 500})),  # out_of_range
            dev.publish(telemetry, b'{"values": {"floor": 1}}'),  # invalid
            dev.publish(device_topic(el, Channel.EVENT), encode_event(now - 200, "NOT-A-CODE")),
            dev.publish(device_topic(el, Channel.STATUS), encode_status(True, now - 300)),
        ]
        dev.wait_acks(mids)
        batch = encode_batch(
            [
                (mine, now - 2000, {"residual_current": 120.0, "cable_temp": 30.0}),
                ("NO-SUCH-DEVICE", now - 2000, {"residual_current": 120.0}),
            ]
        )
        gateway.wait_acks([gateway.publish(gateway_topic(gw, Channel.BATCH), batch)])
    finally:
        dev.close()
        gateway.close()

    expected_rows = 10 * 4 + 2
    until(lambda: snapshot()["readings"] - before["readings"] >= expected_rows)
    until(lambda: snapshot()["messages:batch"] > before["messages:batch"])
    time.sleep(0.5)  # and nothing more comes
    after = snapshot()
    diff = {k: after[k] - before[k] for k in after}
    assert stored(db, now - 60_000) - rows_before == expected_rows
    assert diff["readings"] == expected_rows, "readings committed are the rows stored"
    assert diff["progress"] == expected_rows, "the heartbeat's progress is readings committed"
    assert {k: diff[f"messages:{k}"] for k in KINDS} == {
        "telemetry": 13,
        "event": 1,
        "status": 1,
        "batch": 1,
        "config": 0,
        "unknown": 0,
    }
    assert {r: diff[f"rejects:{r}"] for r in REASONS} == dict.fromkeys(REASONS, 1)
    assert diff["flushes"] >= 1 and diff["flush_seconds"] == diff["flushes"]
    assert diff["flush_rows"] == expected_rows
    assert value("shouwang_stage_pending", stage="ingest") == 0
    assert time.time() - value("shouwang_stage_heartbeat_timestamp_seconds", stage="ingest") < 5
    assert ingest_worker.stats.rejects["unknown_device"] >= 1


def test_pending_counts_what_waits_for_the_database(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]], ingest_worker: Consumer
) -> None:
    """While the database holds a lock on readings, what comes waits: pending rises, no
    progress; once it is released it all commits and pending is back to 0."""
    c, secrets = county
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    now = int(time.time() * 1000)
    progress = value("shouwang_stage_progress_total", stage="ingest")
    dev = peer(broker.host, broker.port, el, secrets[el])
    try:
        with db.transaction():
            db.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            mids = [
                dev.publish(
                    device_topic(el, Channel.TELEMETRY),
                    encode_sample(now - 90_000 - i, {"floor": i}),
                )
                for i in range(20)
            ]
            until(lambda: value("shouwang_stage_pending", stage="ingest") >= 20, 10)
            time.sleep(0.5)
            assert value("shouwang_stage_progress_total", stage="ingest") == progress
        dev.wait_acks(mids)  # acknowledged by the broker; ingest's own ack comes after its commit
    finally:
        dev.close()
    until(lambda: value("shouwang_stage_progress_total", stage="ingest") - progress >= 20)
    until(lambda: value("shouwang_stage_pending", stage="ingest") == 0)


def health(env: dict[str, str], *args: str) -> tuple[int, str]:
    done = subprocess.run(
        shouwang("health", *args), check=False, env=env, capture_output=True, text=True, timeout=30
    )
    return done.returncode, done.stdout + done.stderr


def until_health(env: dict[str, str], ok: bool, says: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code, out = health(env, "--stage", "ingest")
        if (code == 0) == ok and says in out:
            return out
        assert time.monotonic() < deadline, f"health never said {says!r} ({code}): {out}"
        time.sleep(0.3)


def test_health_says_stuck_while_the_database_blocks_ingest_and_down_once_killed(
    db: Conn, settings: Settings, county: tuple[County, dict[str, str]], tmp_path: Path
) -> None:
    c, secrets = county
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    port = free_port()
    env = settings_env(settings) | {
        "SHOUWANG_METRICS_HOST": "127.0.0.1",
        "SHOUWANG_METRICS_PORT_INGEST": str(port),
        "SHOUWANG_HEALTH_STUCK_AFTER_S": "3",
    }
    log = tmp_path / "ingest.log"
    with log.open("ab") as f:
        ingest = subprocess.Popen(
            shouwang("ingest", "--client-id", "stuck-test-ingest"), env=env, stdout=f, stderr=f
        )
    dev = peer(settings.mqtt_host, settings.mqtt_port, el, secrets[el])
    topic = device_topic(el, Channel.TELEMETRY)
    base = int(time.time() * 1000) - 120_000
    try:
        until_health(env, True, "ingest", 20)
        dev.wait_acks([dev.publish(topic, encode_sample(base + i, {"floor": 1})) for i in range(5)])
        out = until_health(env, True, "ingest running", 10)
        assert f"127.0.0.1:{port}" in out
        rows_before = stored(db, base)
        started = time.monotonic()
        with db.transaction():
            db.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            mids = [
                dev.publish(topic, encode_sample(base + 100 + i, {"floor": 2})) for i in range(30)
            ]
            dev.wait_acks(mids)
            out = until_health(env, False, "ingest stuck", 10)
            assert time.monotonic() - started < 10
            samples, _ = scrape("127.0.0.1", port, "ingest")
            assert samples is not None and samples["pending"] >= 30, samples
            assert stored(db, base) == rows_before  # (the lock is ours: we see our own table)
        until_health(env, True, "ingest running", 15)  # released: it recovers
        until(lambda: stored(db, base) - rows_before == 30, 15)  # nothing lost
        samples, _ = scrape("127.0.0.1", port, "ingest")
        assert samples is not None and samples["pending"] == 0
        ingest.send_signal(signal.SIGKILL)
        ingest.wait(10)
        out = until_health(env, False, "ingest down", 5)
        assert f"127.0.0.1:{port}/metrics" in out
    finally:
        dev.close()
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(30)
        retire_session(config_from(settings, "stuck-test-ingest"))


def test_health_names_the_stages_when_given_an_unknown_one(settings: Settings) -> None:
    code, out = health(settings_env(settings), "--stage", "ingest", "--stage", "ingset")
    said = " ".join(out.replace("│", " ").split())  # typer's error box, unfolded
    assert code == 2
    assert "no stage 'ingset'; the stages are ingest, analytics, notify, api, gateway" in said


def test_worker_ports_skip_the_other_stages() -> None:
    assert worker_ports(9461, 4, {9462, 9463, 9464, 9465}) == [9461, 9466, 9467, 9468]
    assert worker_ports(20000, 3) == [20000, 20001, 20002]
    assert worker_ports(0, 3) == [0, 0, 0] and worker_ports(-1, 2) == [-1, -1]
    with pytest.raises(typer.BadParameter, match="beyond 65535"):
        worker_ports(65535, 2)


def test_each_ingest_worker_serves_its_own_port(
    settings: Settings, county: tuple[County, dict[str, str]], tmp_path: Path
) -> None:
    port = free_port()
    env = settings_env(settings) | {"SHOUWANG_METRICS_PORT_INGEST": str(port)}
    log = tmp_path / "ingest.log"
    with log.open("ab") as f:
        ingest = subprocess.Popen(shouwang("ingest", "--workers", "2"), env=env, stdout=f, stderr=f)
    try:
        deadline = time.monotonic() + 20
        while True:
            code, out = health(env, "--stage", "ingest", "--workers", "2")
            if code == 0:
                break
            assert time.monotonic() < deadline, f"{out}\n{log.read_text()[-2000:]}"
            time.sleep(0.3)
        assert "ingest worker 0 idle" in out or "ingest worker 0 running" in out
        assert f"127.0.0.1:{port})" in out and f"127.0.0.1:{port + 1})" in out
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)
        for i in range(2):
            retire_session(config_from(settings, f"shouwang-ingest-{i}"))


def test_a_flood_on_the_metrics_port_stops_nothing(
    db: Conn, settings: Settings, county: tuple[County, dict[str, str]], tmp_path: Path
) -> None:
    """600 connections to ingest's metrics port that never send a request (a scanner, a
    slow-loris): ingest goes on storing readings, holds a bounded number of threads (the endpoint
    serves at most core.metrics.MAX_CLIENTS at once and closes the rest), and once the flood
    ends its endpoint answers again."""
    import socket

    from core.metrics import MAX_CLIENTS

    c, secrets = county
    el = next(d.uid for d in c.devices() if d.device_class == "elevator")
    port = free_port()
    env = settings_env(settings) | {
        "SHOUWANG_METRICS_HOST": "127.0.0.1",
        "SHOUWANG_METRICS_PORT_INGEST": str(port),
    }
    with (tmp_path / "ingest.log").open("ab") as f:
        ingest = subprocess.Popen(
            shouwang("ingest", "--client-id", "flood-test-ingest"), env=env, stdout=f, stderr=f
        )
    dev = peer(settings.mqtt_host, settings.mqtt_port, el, secrets[el])
    topic = device_topic(el, Channel.TELEMETRY)
    base = int(time.time() * 1000) - 30_000
    flood: list[socket.socket] = []
    try:
        until_health(env, True, "ingest", 20)
        threads_before = _threads(ingest.pid)
        began = time.monotonic()
        for _ in range(600):
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break  # the backlog is full: the flood is as big as it gets
        print(f"{len(flood)} connections in {time.monotonic() - began:.1f} s")
        assert len(flood) >= 300, "the flood connected"
        rows_before = stored(db, base)
        dev.wait_acks(
            [dev.publish(topic, encode_sample(base + i, {"floor": 4})) for i in range(20)]
        )
        until(lambda: stored(db, base) - rows_before == 20, 15)  # stored meanwhile
        assert _threads(ingest.pid) <= threads_before + MAX_CLIENTS + 2
        assert ingest.poll() is None
    finally:
        for s in flood:
            s.close()
        dev.close()
    try:
        samples: dict[str, float] | None = None
        deadline = time.monotonic() + 15
        while samples is None and time.monotonic() < deadline:
            samples, _ = scrape("127.0.0.1", port, "ingest", timeout_s=2)
            time.sleep(0.2)
        assert samples is not None, "the endpoint answers once the flood is gone"
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)
        retire_session(config_from(settings, "flood-test-ingest"))


def _threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("Threads:")[1].split()[0])
