"""Drills: how big the broker's backlog gets, and what holding and saving it costs
(``shouwang drill backlog``).

1. The load: the simulator's own scheduler (``simulators.run``) over the demo county (``shouwang
   seed``'s defaults) for some simulated minutes, with a fleet that only counts what it is given:
   messages, readings and payload bytes an hour, and per device.
2. The broker: a private Mosquitto of the platform's configuration holds ``held`` of those
   messages for an offline persistent session (as it holds ingest's while the database is away);
   its RSS growth per message, the size of its save file, and how long a save blocks it (the
   broker is signalled to save, SIGUSR1, and a QoS 1 probe's acknowledgement waits for it).
3. What follows for a one-hour outage, for the queue limit (``max_queued_bytes``) and for the
   autosave interval, from the platform's configuration (``broker.files``).
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.drills.stack import Proc, free_port, peak_rss_mb
from broker.acl import Account, render_acl, render_passwd
from broker.credentials import hash_password
from broker.files import (
    AUTOSAVE_INTERVAL_S,
    MAX_QUEUED_BYTES,
    MAX_QUEUED_MESSAGES,
    broker_config,
)
from core.mqtt import new_client
from core.wire import PREFIX
from simulators.county import demo_county
from simulators.run import SimClock, build_devices, run


@dataclass(frozen=True)
class Load:
    devices: int
    messages_h: float
    readings_h: float
    payload_h: float  # bytes an hour
    sample: list[tuple[str, bytes]]  # the messages, for the broker to hold

    @property
    def payload_per_message(self) -> float:
        return self.payload_h / self.messages_h


class Counting:
    """A fleet that counts what the scheduler publishes and keeps a sample of it."""

    def __init__(self, keep: int) -> None:
        self.messages = 0
        self.payload = 0
        self.keep = keep
        self.sample: list[tuple[str, bytes]] = []

    def publish(self, _uid: str, topic: str, payload: bytes) -> None:
        self.messages += 1
        self.payload += len(payload)
        if len(self.sample) < self.keep:
            self.sample.append((topic, payload))

    def pump(self, _timeout: float = 0.0) -> None:
        return

    def outstanding(self) -> int:
        return 0


def county_load(communities: int, minutes: float, keep: int) -> Load:
    county = demo_county(communities=communities)
    rows = [
        (d.uid, str(d.device_class), d.report_interval_s, d.gateway, dict(d.attributes))
        for d in county.devices()
    ]
    devices = build_devices(rows, seed=7)
    fleet = Counting(keep)
    clock = SimClock(start=time.time() - minutes * 60, speed=0)
    stats = run(fleet, devices, clock, until=clock.start + minutes * 60)  # type: ignore[arg-type]
    per_h = 60.0 / minutes
    return Load(
        len(devices),
        fleet.messages * per_h,
        stats.readings * per_h,
        fleet.payload * per_h,
        fleet.sample,
    )


@dataclass(frozen=True)
class Holding:
    held: int
    rss_per_message: float  # bytes of broker RSS per message held
    file_per_message: float  # bytes of the save file per message held
    save_stall_s: float  # how long one save blocked the broker (median of three)
    publish_rate: float  # messages a second the broker took while filling


def broker_holding(sample: list[tuple[str, bytes]], held: int, directory: Path) -> Holding:
    """A private broker holds ``held`` of the ``sample`` messages (cycled) for an offline
    persistent session; what that costs it."""
    pw = secrets.token_urlsafe(16)
    accounts = [
        Account("drill-admin", "admin", hash_password(pw)),
        Account("drill-ingest", "ingest", hash_password(pw)),
    ]
    (directory / "passwd").write_text(render_passwd(accounts))
    (directory / "acl").write_text(render_acl(accounts, "ingest"))
    port = free_port()
    # autosave_interval 0: saves only when told (SIGUSR1) and on exit, so each save is ours
    conf = broker_config(host="127.0.0.1", port=port, directory=directory, autosave_s=0)
    (directory / "mosquitto.conf").write_text(conf)
    broker = Proc(
        "mosquitto",
        subprocess.Popen(
            ["mosquitto", "-c", str(directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ),
    )
    try:
        time.sleep(0.5)
        _session("drill-ingest", pw, port)  # subscribes, then goes away: the broker holds for it
        base = _rss(broker.pid)
        pub = _Publisher(pw, port)
        try:
            began = time.monotonic()
            for i in range(held):
                topic, payload = sample[i % len(sample)]
                pub.publish(topic, payload)
            pub.wait_acked(held, 600)
            rate = held / (time.monotonic() - began)
            time.sleep(0.5)
            full = _rss(broker.pid)
            stalls = []
            db = directory / "data" / "mosquitto.db"
            for _ in range(3):
                before = db.stat().st_mtime_ns if db.exists() else 0
                os.kill(broker.pid, signal.SIGUSR1)
                worst, deadline = 0.0, time.monotonic() + 30
                while time.monotonic() < deadline:
                    worst = max(worst, pub.round_trip())
                    if db.exists() and db.stat().st_mtime_ns != before:
                        break
                stalls.append(worst)
                time.sleep(0.3)
        finally:
            pub.close()
        return Holding(
            held,
            (full - base) / held,
            db.stat().st_size / held,
            statistics.median(stalls),
            rate,
        )
    finally:
        broker.stop()


def _rss(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024.0
    return float(peak_rss_mb(pid) or 0) * 2**20


def _session(client_id: str, password: str, port: int) -> None:
    client, props = new_client(client_id, client_id, password, persistent=True)
    done = threading.Event()
    client.on_subscribe = lambda *_: done.set()
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    client.subscribe(f"{PREFIX}/#", qos=1)
    try:
        if not done.wait(10):
            raise SystemExit("the drill's broker did not acknowledge the subscription")
    finally:
        client.disconnect()
        client.loop_stop()


class _Publisher:
    def __init__(self, password: str, port: int) -> None:
        self.client, props = new_client("drill-publisher", "drill-admin", password)
        self.acked = 0
        self.sent = 0
        self._lock = threading.Lock()
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port, properties=props)
        self.client.loop_start()

    def _on_publish(self, *_: object) -> None:
        with self._lock:
            self.acked += 1

    def publish(self, topic: str, payload: bytes) -> None:
        deadline = time.monotonic() + 60
        while self.sent - self.acked > 5_000 and time.monotonic() < deadline:
            time.sleep(0.001)
        self.client.publish(topic, payload, qos=1)
        self.sent += 1

    def wait_acked(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.acked < n and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.acked < n:
            raise SystemExit(f"the broker acknowledged {self.acked} of {n} messages")

    def round_trip(self) -> float:
        """A QoS 1 probe (no subscriber) until its acknowledgement: what a save delays."""
        before = self.acked
        began = time.monotonic()
        self.publish("drill/probe", b"p")
        deadline = began + 30
        while self.acked == before and time.monotonic() < deadline:
            time.sleep(0.0005)
        return time.monotonic() - began

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def main(
    *, communities: int = 20, minutes: float = 10.0, held: int = 100_000, outage_h: float = 1.0
) -> tuple[Load, Holding]:
    console = Console()
    load = county_load(communities, minutes, keep=min(held, 50_000))
    with tempfile.TemporaryDirectory(prefix="shouwang-drill-backlog-") as d:
        holding = broker_holding(load.sample, held, Path(d))
    report(console, load, holding, communities, outage_h)
    return load, holding


def report(console: Console, load: Load, h: Holding, communities: int, outage_h: float) -> None:
    per_msg = load.payload_per_message
    overhead = h.rss_per_message - per_msg
    out_msgs = load.messages_h * outage_h
    out_bytes = load.payload_h * outage_h
    stall_per_msg = h.save_stall_s / h.held
    cover_h = min(MAX_QUEUED_BYTES / load.payload_h, MAX_QUEUED_MESSAGES / load.messages_h)
    t = Table(
        title=f"broker backlog: demo county, {communities} communities, {load.devices} devices"
    )
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("messages an hour", f"{load.messages_h:,.0f} ({load.messages_h / 3600:,.1f}/s)")
    t.add_row("readings an hour", f"{load.readings_h:,.0f} ({load.readings_h / 3600:,.0f}/s)")
    t.add_row("payload an hour", f"{load.payload_h / 1e6:,.1f} MB ({per_msg:,.0f} B a message)")
    t.add_row("payload per device-hour", f"{load.payload_h / load.devices / 1e3:,.1f} KB")
    t.add_row(f"broker holding {h.held:,} of them: RSS", f"{h.rss_per_message:,.0f} B a message")
    t.add_row("  besides the payload", f"{overhead:,.0f} B a message")
    t.add_row("  save file", f"{h.file_per_message:,.0f} B a message")
    t.add_row(
        "  one save blocks the broker",
        f"{h.save_stall_s * 1000:,.0f} ms ({stall_per_msg * 1e6:,.2f} µs a message)",
    )
    t.add_row("  filled at", f"{h.publish_rate:,.0f} msg/s")
    t.add_row(
        f"a {outage_h:g} h outage: held",
        f"{out_msgs:,.0f} messages, {out_bytes / 2**20:,.0f} MiB payload",
    )
    t.add_row("  broker memory for it", f"{out_msgs * h.rss_per_message / 2**20:,.0f} MiB")
    t.add_row(
        f"  each save (every {AUTOSAVE_INTERVAL_S + 1} s) at its end",
        f"{out_msgs * stall_per_msg * 1000:,.0f} ms,"
        f" {out_msgs * stall_per_msg / (AUTOSAVE_INTERVAL_S + 1):.0%} of the broker's time,"
        f" {out_msgs * h.file_per_message / 1e6:,.0f} MB written",
    )
    t.add_row(
        "max_queued_bytes / max_queued_messages",
        f"{MAX_QUEUED_BYTES / 2**20:,.0f} MiB / {MAX_QUEUED_MESSAGES:,} per session",
    )
    t.add_row("  covers at this load", f"{cover_h:,.1f} h")
    t.add_row(
        "  a one-hour outage fits for",
        f"{MAX_QUEUED_BYTES / (load.payload_h / load.devices):,.0f} devices like these",
    )
    t.add_row(
        "  a session's memory at the limit",
        f"{min(MAX_QUEUED_BYTES / per_msg, MAX_QUEUED_MESSAGES) * h.rss_per_message / 2**20:,.0f}"
        f" MiB (messages like these); tiny ones:"
        f" {MAX_QUEUED_MESSAGES * overhead / 2**20:,.0f} MiB",
    )
    lost_window = load.messages_h / 3600 * (AUTOSAVE_INTERVAL_S + 1)
    t.add_row(
        f"autosave_interval {AUTOSAVE_INTERVAL_S}: kill window",
        f"{AUTOSAVE_INTERVAL_S + 1} s = {lost_window:,.0f} messages,"
        f" {load.readings_h / 3600 * (AUTOSAVE_INTERVAL_S + 1):,.0f} readings at this load",
    )
    console.print(t)
