"""Ingest: the benchmark. In one run on one machine it measures

1. broker pass-through: a paho publisher -> broker -> a paho subscriber, QoS 1, same payloads;
2. raw COPY: the same binary COPY ingest uses, straight into the readings hypertable;
3. end-to-end: published -> committed by an ingest worker, single-reading messages;
4. end-to-end: the same with batched messages (``batch`` readings per message);

and prints each figure, the ratios the targets are stated in, and the worker's peak RSS.
It runs against a scratch database created beside the configured one, and drops it after.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import threading
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection

import orjson
import paho.mqtt.client as mqtt
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table

from core.db import Conn, connect, migrate
from core.mqtt import new_client
from core.settings import Settings
from core.wire import Channel, device_topic
from ingest.copy_format import readings_buffer
from ingest.store import copy_readings
from shouwang.launch import command

BENCH_PREFIX = "BENCH"
METRIC = "sprinkler_pressure"  # fire_water metric, range 0..4 MPa


@dataclass(frozen=True, slots=True)
class Figures:
    passthrough_msgs: float
    copy_rows: float
    e2e_single_msgs: float
    e2e_batched_rows: float
    peak_rss_mb: float


def scratch_database(admin_url: str, suffix: str = "_bench") -> str:
    params = conninfo_to_dict(admin_url)
    name = f"{params.get('dbname', 'shouwang')}{suffix}"
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


def drop_database(admin_url: str, url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def register_devices(conn: Conn, n: int) -> list[str]:
    conn.execute("INSERT INTO regions (code, kind, name_zh) VALUES ('BENCH', 'county', '基准')")
    conn.execute(
        "INSERT INTO communities (code, region_id, name_zh)"
        " SELECT 'BENCH', id, '基准小区' FROM regions WHERE code = 'BENCH'"
    )
    uids = [f"{BENCH_PREFIX}-{i:05d}" for i in range(n)]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (uid, device_class, community_id)"
            " SELECT %s, 'fire_water', id FROM communities WHERE code = 'BENCH'",
            [(u,) for u in uids],
        )
    return uids


def single_payloads(uids: list[str], n: int, t0: int) -> list[tuple[str, bytes]]:
    out = []
    for k in range(n):
        uid = uids[k % len(uids)]
        ts = t0 + k // len(uids)
        out.append(
            (
                device_topic(uid, Channel.TELEMETRY),
                orjson.dumps({"ts": ts, "values": {METRIC: 0.45}}),
            )
        )
    return out


def batched_payloads(
    uids: list[str], n_readings: int, batch: int, t0: int
) -> list[tuple[str, bytes]]:
    out = []
    k = 0
    per_device = 0
    while k < n_readings:
        uid = uids[(k // batch) % len(uids)]
        samples = [
            {"ts": t0 + per_device * batch + j, "values": {METRIC: 0.45}} for j in range(batch)
        ]
        out.append((device_topic(uid, Channel.TELEMETRY), orjson.dumps({"samples": samples})))
        k += batch
        if (k // batch) % len(uids) == 0:
            per_device += 1
    return out


class Publisher:
    def __init__(self, s: Settings) -> None:
        self.client, props = new_client(
            "bench-publisher", s.mqtt_admin_username, s.mqtt_admin_password.get_secret_value()
        )
        self.acked = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect(s.mqtt_host, s.mqtt_port, properties=props)
        self.client.loop_start()

    def _on_publish(self, *_: object) -> None:
        with self._lock:
            self.acked += 1

    def publish_all(self, messages: list[tuple[str, bytes]]) -> None:
        self.acked = 0
        for k, (topic, payload) in enumerate(messages):
            # paho numbers messages 1..65535 when they are queued: keep well below a wrap.
            while k - self.acked > 20_000:
                time.sleep(0.001)
            self.client.publish(topic, payload, qos=1)
        while self.acked < len(messages):
            time.sleep(0.005)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _count_messages(
    host: str, port: int, user: str, password: str, n: int, conn: Connection
) -> None:
    """In its own process, as ingest is: receive ``n`` messages, send back when the last came."""
    sub, props = new_client("bench-subscriber", user, password)
    count = [0]
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        count[0] += 1
        if count[0] == n:
            conn.send(time.perf_counter())
            done.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *_: conn.send("ready")
    sub.on_connect = lambda c, *_: c.subscribe("sw/v1/d/+/telemetry", qos=1) and None
    sub.connect(host, port, properties=props)
    sub.loop_start()
    if not done.wait(300):
        conn.send(f"received {count[0]} of {n}")
    sub.disconnect()
    sub.loop_stop()


def passthrough(s: Settings, pub: Publisher, messages: list[tuple[str, bytes]]) -> float:
    ours, theirs = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=_count_messages,
        args=(
            s.mqtt_host,
            s.mqtt_port,
            s.mqtt_admin_username,
            s.mqtt_admin_password.get_secret_value(),
            len(messages),
            theirs,
        ),
    )
    proc.start()
    try:
        if not ours.poll(20) or ours.recv() != "ready":
            raise TimeoutError("the pass-through subscriber did not subscribe within 20 s")
        time.sleep(0.2)
        began = time.perf_counter()
        pub.publish_all(messages)
        if not ours.poll(300):
            raise TimeoutError("the pass-through subscriber did not receive everything")
        last = ours.recv()
        if isinstance(last, str):
            raise TimeoutError(f"pass-through subscriber: {last}")
    finally:
        proc.join(30)
    return len(messages) / (float(last) - began)


def raw_copy(
    conn: Conn, rows: int, per_txn: int, t0: int, device_ids: list[int], metric_id: int
) -> float:
    bufs = []
    for start in range(0, rows, per_txn):
        n = min(per_txn, rows - start)
        ts = array("q", (t0 + (start + i) // len(device_ids) for i in range(n)))
        dev = array("i", (device_ids[(start + i) % len(device_ids)] for i in range(n)))
        bufs.append(readings_buffer(ts, dev, array("h", [metric_id]) * n, array("d", [0.45]) * n))
    began = time.perf_counter()
    for buf in bufs:
        with conn.transaction():
            copy_readings(conn, buf)
    return rows / (time.perf_counter() - began)


def wait_committed(conn: Conn, expected: int, timeout: float = 120.0) -> float:
    """Poll until ``expected`` readings are committed; return when (perf_counter)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (n,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
        if n >= expected:
            return time.perf_counter()
        time.sleep(0.02)
    raise TimeoutError(f"only {n} of {expected} readings committed within {timeout} s")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(s: Settings, *, seconds: float, batch: int, devices: int) -> Figures:
    console = Console()
    url = scratch_database(s.database_url)
    ingest: subprocess.Popen[bytes] | None = None
    try:
        with connect(url, autocommit=True) as conn:
            migrate(conn)
            uids = register_devices(conn, devices)
            device_ids = [
                r[0] for r in conn.execute("SELECT id FROM devices ORDER BY id").fetchall()
            ]
            (metric_id,) = conn.execute(
                "SELECT id FROM metrics WHERE device_class = 'fire_water' AND name = %s", (METRIC,)
            ).fetchone() or (0,)
            t0 = int(time.time() * 1000) - 3_600_000
            n_single = int(12_000 * seconds)
            n_batched = int(150_000 * seconds)
            console.print(
                f"bench: {devices} devices, {n_single:,} single-reading messages, "
                f"{n_batched:,} readings in messages of {batch}"
            )
            single = single_payloads(uids, n_single, t0)
            batched = batched_payloads(uids, n_batched, batch, t0 - 10_000_000)
            pub = Publisher(s)
            try:
                pt = passthrough(s, pub, single)
                console.print(
                    f"  broker pass-through (paho -> mosquitto -> paho, QoS 1): {pt:,.0f} msg/s"
                )
                cp = raw_copy(conn, n_batched, 20_000, t0 - 100_000_000, device_ids, int(metric_id))
                console.print(
                    f"  raw binary COPY into readings (20,000-row transactions): {cp:,.0f} rows/s"
                )
                conn.execute("TRUNCATE readings")

                # The benchmark's devices send far above the per-device rate limit on purpose:
                # raise it (every message still goes through the limiter, so its cost is in
                # the figures) instead of measuring rate_limited rejects.
                env = dict(
                    os.environ,
                    SHOUWANG_DATABASE_URL=url,
                    SHOUWANG_INGEST_SHARE_GROUP="bench",
                    SHOUWANG_INGEST_DEVICE_MESSAGES_PER_MINUTE="1e9",
                    SHOUWANG_INGEST_DEVICE_BURST_MESSAGES="1e9",
                )
                ingest = subprocess.Popen(
                    command("ingest", "--client-id", "bench-ingest"),
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(2.0)
                began = time.perf_counter()
                pub.publish_all(single)
                e2e_single = n_single / (wait_committed(conn, n_single) - began)
                console.print(f"  end-to-end, single-reading messages: {e2e_single:,.0f} msg/s")
                conn.execute("TRUNCATE readings")
                began = time.perf_counter()
                pub.publish_all(batched)
                e2e_batched = n_batched / (wait_committed(conn, n_batched) - began)
                console.print(
                    f"  end-to-end, {batch} readings per message: {e2e_batched:,.0f} readings/s"
                )
                rss = peak_rss_mb(ingest.pid)
            finally:
                pub.close()
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(30)
            from ingest.__main__ import config_from  # noqa: PLC0415
            from ingest.consumer import retire_session  # noqa: PLC0415

            retire_session(config_from(s, "bench-ingest"))
        drop_database(s.database_url, url)
    figures = Figures(pt, cp, e2e_single, e2e_batched, rss)
    report(console, figures, batch)
    return figures


def report(console: Console, f: Figures, batch: int) -> None:
    t = Table(title=f"shouwang ingest benchmark ({os.cpu_count()} cores)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("target", justify="right")
    t.add_row("broker pass-through, QoS 1", f"{f.passthrough_msgs:,.0f} msg/s", "")
    t.add_row("raw COPY", f"{f.copy_rows:,.0f} rows/s", "")
    t.add_row("end-to-end single-reading", f"{f.e2e_single_msgs:,.0f} msg/s", "")
    t.add_row("  ratio to pass-through", f"{f.e2e_single_msgs / f.passthrough_msgs:.0%}", "≥ 70 %")
    t.add_row(
        f"end-to-end batched ({batch}/msg)", f"{f.e2e_batched_rows:,.0f} readings/s", "≥ 100,000"
    )
    t.add_row("  ratio to raw COPY", f"{f.e2e_batched_rows / f.copy_rows:.0%}", "≥ 50 %")
    t.add_row("ingest peak RSS", f"{f.peak_rss_mb:,.0f} MB", "< 300 MB")
    console.print(t)
