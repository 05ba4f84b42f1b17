"""Gateway: the benchmark (``shouwang bench gateway``). In one run on one machine it measures

1. the platform's batched ingest rate: readings in messages of 50, published -> committed by an
   ingest worker (as ``shouwang bench ingest`` does), the yardstick of the drain;
2. one gateway process (``shouwang gateway run``) polling ``devices`` Modbus devices every
   ``interval`` seconds: devices and registers polled per second (counted in the readings table:
   a poll counts once its sample is stored), its CPU share (of one core) and RSS;
3. an outage: the broker is stopped for ``outage`` seconds while the gateway polls on into its
   buffer, then started again; the drain rate of that backlog (readings per second) and its
   ratio to (1). The drain is timed from the gateway's reconnection (its log line) to the moment
   its buffer holds none of the backlog (every entry confirmed by the platform), so the client's
   reconnection backoff is reported beside it, not in it.

Everything is private to the run: a scratch database beside the configured one, a Mosquitto of
the platform's configuration on its own port (its accounts written from the scratch registry, the
gateway's credential issued as ``shouwang broker issue`` issues it), an ingest worker, and the
Modbus TCP servers of the devices (``simulators/modbus_sites.py``, laid out by the shipped
profiles as the demo lays them out) in a process of their own, so that the gateway's CPU share is
its own.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Final

import orjson
import psutil
from rich.console import Console
from rich.table import Table

from bench.drills.stack import PrivateBroker, Proc, stage_env, start_stage
from bench.ingest import (
    Publisher,
    batched_payloads,
    drop_database,
    register_devices,
    scratch_database,
    wait_committed,
)
from broker.accounts import issue
from core.db import Conn, connect, migrate
from core.settings import Settings
from core.wire import Channel, device_topic
from shouwang.demo_sites import (
    SiteDevice,
    Uplink,
    config_text,
    free_port,
    maps_by_class,
    profiles_by_class,
)
from simulators.behaviour import behaviour_for
from simulators.modbus_sites import FieldDevice, ModbusSite, assign_units
from sites.profiles import Profile, shipped_profiles

GATEWAY: Final = "BENCH-GW"
PREFIX: Final = "BGW"
# A site's mix, as the demo county has it: mostly residual-current monitors, a fire-water
# transmitter per building, a pump room and water-quality analysers per community.
PATTERN: Final = (
    "electrical_fire",
    "electrical_fire",
    "electrical_fire",
    "fire_water",
    "electrical_fire",
    "electrical_fire",
    "electrical_fire",
    "fire_water",
    "water_quality",
    "pump_room",
)
CONNECTED: Final = "connected to 127.0.0.1"  # the gateway's log line on each connection
BATCH: Final = 50  # readings per message of the reference ingest phase
GOAL_RSS_MB: Final = 150.0
GOAL_DRAIN_RATIO: Final = 0.5


@dataclass(frozen=True, slots=True)
class Figures:
    devices: int
    interval_s: float
    ingest_batched_rows: float  # readings/s, the yardstick
    devices_per_s: float
    registers_per_s: float
    requests_per_s: float
    cpu_share: float  # of one core, over the measured window
    servers_cpu_share: float  # the Modbus servers' process, of one core, same window
    rss_mb: float  # peak (VmHWM) over the whole run
    machine_cpu: float  # of all cores, over the measured window
    backlog_entries: int
    backlog_readings: int
    reconnect_s: float  # broker back -> the gateway connected again
    drain_s: float  # the gateway connected again -> the last of the backlog confirmed
    drain_rows: float  # readings/s

    @property
    def drain_ratio(self) -> float:
        return self.drain_rows / self.ingest_batched_rows if self.ingest_batched_rows else 0.0


def site_classes(n: int) -> list[str]:
    return [PATTERN[i % len(PATTERN)] for i in range(n)]


def register_site(conn: Conn, classes: list[str]) -> tuple[list[str], str]:
    """The gateway and its devices in the registry (in the community ``register_devices`` made);
    returns the devices' uids and the gateway's password."""
    conn.execute(
        "INSERT INTO gateways (uid, community_id) SELECT %s, id FROM communities"
        " WHERE code = 'BENCH'",
        (GATEWAY,),
    )
    uids = [f"{PREFIX}-{i:05d}" for i in range(len(classes))]
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO devices (uid, device_class, community_id, gateway_id)"
            " SELECT %s, %s, c.id, g.id FROM communities c JOIN gateways g"
            " ON g.community_id = c.id WHERE c.code = 'BENCH' AND g.uid = %s",
            [(u, cls, GATEWAY) for u, cls in zip(uids, classes, strict=True)],
        )
    return uids, issue(conn, GATEWAY)


def registers_per_poll(profile: Profile) -> tuple[int, int]:
    """(registers or bits read, requests) of one poll of a device of ``profile``."""
    return sum(r.count for r in profile.reads), len(profile.reads)


def _serve_field(
    ports: list[int], classes: list[str], per_port: int, refresh_s: float, pipe: Connection
) -> None:
    """In its own process: the devices' Modbus TCP servers, their values following the
    simulator's behaviour, until told to stop."""
    import asyncio  # noqa: PLC0415 (a spawned process's own imports)
    import logging  # noqa: PLC0415

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    by_class = maps_by_class()
    uids = [f"{PREFIX}-{i:05d}" for i in range(len(classes))]
    places = assign_units(uids, per_port)
    devices = [
        FieldDevice(
            uid,
            by_class[cls],
            *places[uid],
            refresh_s,
            behaviour_for(cls, {}, random.Random(uid)),
        )
        for uid, cls in zip(uids, classes, strict=True)
    ]

    async def serve() -> None:
        site = ModbusSite("bench", devices, ports)
        await site.start(time.time())
        pipe.send("ready")
        while not pipe.poll(0):
            await asyncio.sleep(refresh_s)
            await site.refresh(time.time())
        await site.stop()

    asyncio.run(serve())


def cpu_seconds(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_ingest_ready(conn: Conn, pub: Publisher, uid: str, timeout: float = 30.0) -> None:
    """Publish one reading until ingest stores it: its subscription is in place."""
    deadline = time.monotonic() + timeout
    ts = int(time.time() * 1000) - 60_000
    payload = orjson.dumps({"ts": ts, "values": {"sprinkler_pressure": 0.45}})
    while time.monotonic() < deadline:
        pub.publish_all([(device_topic(uid, Channel.TELEMETRY), payload)])
        stop = time.monotonic() + 1.0
        while time.monotonic() < stop:
            if conn.execute("SELECT 1 FROM readings LIMIT 1").fetchone():
                conn.execute("TRUNCATE readings")
                return
            time.sleep(0.05)
    raise SystemExit(f"ingest stored nothing within {timeout} s; see its log")


def polled(
    conn: Conn, ids: dict[int, str], classes: dict[str, str], a_ms: int, b_ms: int
) -> tuple[int, int, int]:
    """(samples, registers, requests) of the polls begun in [a, b) that are stored."""
    by_class = profiles_by_class(shipped_profiles())
    rows = conn.execute(
        "SELECT device_id, count(DISTINCT ts) FROM readings"
        " WHERE ts >= to_timestamp(%s / 1000.0) AND ts < to_timestamp(%s / 1000.0)"
        " AND device_id = ANY(%s) GROUP BY device_id",
        (a_ms, b_ms, list(ids)),
    ).fetchall()
    samples = registers = requests = 0
    for device_id, n in rows:
        regs, reqs = registers_per_poll(by_class[classes[ids[int(device_id)]]])
        samples += int(n)
        registers += int(n) * regs
        requests += int(n) * reqs
    return samples, registers, requests


def settled(
    conn: Conn, ids: dict[int, str], a_ms: int, b_ms: int, quiet_s: float, timeout: float = 30.0
) -> None:
    """Until the samples of [a, b) stop arriving (ingest has what the gateway sent): no new one
    for ``quiet_s``, longer than the gateway's batch interval (it sends live polls once a
    round, so a shorter wait can end between two batches and miss the last)."""
    last, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE ts >= to_timestamp(%s / 1000.0)"
            " AND ts < to_timestamp(%s / 1000.0) AND device_id = ANY(%s)",
            (a_ms, b_ms, list(ids)),
        ).fetchone()
        n = int(row[0]) if row else 0
        if n != last:
            last, quiet_since = n, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        time.sleep(0.25)


def backlog(buffer: Path) -> tuple[int, int, int]:
    """(highest sequence number, entries, readings of its samples) held in the buffer now."""
    with sqlite3.connect(buffer, timeout=10) as db:
        top = 0
        entries = readings = 0
        for seq, kind, body in db.execute("SELECT seq, kind, body FROM entries"):
            top = max(top, int(seq))
            entries += 1
            if kind == 0:
                readings += len(orjson.loads(body)["values"])
    return top, entries, readings


def held_up_to(buffer: Path, seq: int) -> int:
    with sqlite3.connect(buffer, timeout=10) as db:
        row = db.execute("SELECT count(*) FROM entries WHERE seq <= ?", (seq,)).fetchone()
    return int(row[0])


@dataclass(frozen=True, slots=True)
class Plan:
    devices: int
    interval: float
    seconds: float
    outage: float
    per_port: int
    batch_interval: float
    reference: int
    batch_bytes: int = 128 * 1024  # the gateway's uplink.batch_max_bytes (its default)

    def check(self) -> None:
        for name, v in (
            ("--devices", self.devices),
            ("--per-port", self.per_port),
            ("--reference", self.reference),
            ("--batch-bytes", self.batch_bytes),
        ):
            if v < 1:
                raise SystemExit(f"{name} must be 1 or more, not {v}")
        for name, f in (
            ("--interval", self.interval),
            ("--seconds", self.seconds),
            ("--outage", self.outage),
            ("--batch-interval", self.batch_interval),
        ):
            if f <= 0:
                raise SystemExit(f"{name} must be more than 0 seconds, not {f}")


@dataclass(frozen=True, slots=True)
class Live:
    devices_per_s: float
    registers_per_s: float
    requests_per_s: float
    cpu_share: float
    servers_cpu_share: float
    machine_cpu: float


@dataclass(frozen=True, slots=True)
class Drain:
    entries: int
    readings: int
    reconnect_s: float
    drain_s: float


class Run:
    """The run's private services and processes; :meth:`close` ends them all."""

    def __init__(self, s: Settings, plan: Plan, console: Console) -> None:
        self.s, self.plan, self.console = s, plan, console
        self.work = Path(tempfile.mkdtemp(prefix="bench-gateway-", dir=_state_dir(s)))
        self.url = scratch_database(s.database_url, "_bench_gw")
        self.procs: list[Proc] = []
        self.field: multiprocessing.process.BaseProcess | None = None
        self.pipe: Connection | None = None
        self.broker: PrivateBroker | None = None
        self.env: dict[str, str] = {}
        self.classes = site_classes(plan.devices)
        self.uids: list[str] = []
        self.ids: dict[int, str] = {}
        self.site = self.work / "site"

    def setup(self, conn: Conn) -> tuple[list[str], str]:
        """The registry, the broker and ingest; returns the reference devices and the
        gateway's password."""
        migrate(conn)
        ref_uids = register_devices(conn, 50)
        self.uids, password = register_site(conn, self.classes)
        self.ids = {
            int(i): str(u)
            for i, u in conn.execute(
                "SELECT id, uid FROM devices WHERE uid = ANY(%s)", (self.uids,)
            ).fetchall()
        }
        self.broker = broker = PrivateBroker(self.work / "broker", conn, self.s)
        broker.start()
        self.env = stage_env(
            self.s, database_url=self.url, mqtt_port=broker.port, broker_dir=broker.directory
        )
        self.env |= {
            "SHOUWANG_INGEST_DEVICE_MESSAGES_PER_MINUTE": "1e9",
            "SHOUWANG_INGEST_DEVICE_BURST_MESSAGES": "1e9",
            "SHOUWANG_INGEST_GATEWAY_MESSAGES_PER_MINUTE": "1e9",
            "SHOUWANG_INGEST_GATEWAY_BURST_MESSAGES": "1e9",
        }
        args = ["ingest", "--client-id", "bench-gw-ingest"]
        self.procs.append(start_stage("ingest", args, self.env, self.work))
        return ref_uids, password

    def reference(self, conn: Conn, ref_uids: list[str]) -> float:
        """1. The platform's batched ingest rate, readings/s."""
        assert self.broker is not None
        n = self.plan.reference
        private = self.s.model_copy(
            update={"mqtt_host": "127.0.0.1", "mqtt_port": self.broker.port}
        )
        pub = Publisher(private)
        try:
            wait_ingest_ready(conn, pub, ref_uids[0])
            messages = batched_payloads(ref_uids, n, BATCH, int(time.time() * 1000) - 7_200_000)
            began = time.perf_counter()
            pub.publish_all(messages)
            rate = n / (wait_committed(conn, n) - began)
        finally:
            pub.close()
        conn.execute("TRUNCATE readings")
        self.console.print(f"  batched ingest ({BATCH}/msg): {rate:,.0f} readings/s")
        return rate

    def start_gateway(self, password: str) -> Proc:
        """The devices' Modbus servers (their own process) and the gateway polling them."""
        assert self.broker is not None
        p = self.plan
        ports = [free_port() for _ in range(-(-p.devices // p.per_port))]
        ctx = multiprocessing.get_context("spawn")
        self.pipe, theirs = ctx.Pipe()
        self.field = ctx.Process(
            target=_serve_field,
            args=(ports, self.classes, p.per_port, 5.0, theirs),
            name="bench-modbus",
        )
        self.field.start()
        if not self.pipe.poll(60) or self.pipe.recv() != "ready":
            raise SystemExit("the Modbus servers did not start within 60 s")
        self.site.mkdir()
        (self.site / "gateway.secret").write_text(password + "\n")
        by_class = profiles_by_class(shipped_profiles())
        places = assign_units(self.uids, p.per_port)
        listed = [
            SiteDevice(u, by_class[c].model, ports[places[u][0]], places[u][1], p.interval)
            for u, c in zip(self.uids, self.classes, strict=True)
        ]
        config = config_text(
            GATEWAY,
            Uplink("127.0.0.1", self.broker.port),
            listed,
            batch_interval_s=p.batch_interval,
            timeout_s=1.0,
            retries=0,
            # far above a site's rate: the drain is measured, not the limiter
            uplink_options={
                "max_kib_per_minute": 10_000_000,
                "batch_max_bytes": p.batch_bytes,
                "state_every_s": 5,
            },
        )
        (self.site / "site.yaml").write_text(config)
        gw = start_stage(
            "gateway", ["gateway", "run", str(self.site / "site.yaml")], self.env, self.work
        )
        self.procs.append(gw)
        warm = time.monotonic() + max(5.0, 3 * p.interval)
        while time.monotonic() < warm:
            if not gw.alive():
                raise SystemExit(f"the gateway stopped: {gw.death()}")
            time.sleep(0.2)
        return gw

    def live(self, conn: Conn, gw: Proc) -> Live:
        """2. Polling: devices and registers per second, CPU share."""
        assert self.field is not None and self.field.pid is not None
        servers = self.field.pid
        a_ms, wall0 = int(time.time() * 1000), time.monotonic()
        cpu0, srv0 = cpu_seconds(gw.pid), cpu_seconds(servers)
        psutil.cpu_percent(None)
        time.sleep(self.plan.seconds)
        b_ms, wall1 = int(time.time() * 1000), time.monotonic()
        cpu1, srv1 = cpu_seconds(gw.pid), cpu_seconds(servers)
        machine = psutil.cpu_percent(None) / 100.0
        cpu_share = (cpu1 - cpu0) / (wall1 - wall0)
        servers_share = (srv1 - srv0) / (wall1 - wall0)
        settled(conn, self.ids, a_ms, b_ms, quiet_s=2 * self.plan.batch_interval + 1.0)
        class_of = dict(zip(self.uids, self.classes, strict=True))
        samples, registers, requests = polled(conn, self.ids, class_of, a_ms, b_ms)
        span = (b_ms - a_ms) / 1000
        live = Live(
            samples / span, registers / span, requests / span, cpu_share, servers_share, machine
        )
        self.console.print(
            f"  polling: {live.devices_per_s:,.0f} devices/s, {live.registers_per_s:,.0f}"
            f" registers/s ({live.requests_per_s:,.0f} requests/s), gateway CPU"
            f" {cpu_share:.0%} of a core (Modbus servers {servers_share:.0%}, machine"
            f" {machine:.0%} of {os.cpu_count()} cores)"
        )
        return live

    def outage(self, gw: Proc) -> Drain:
        """3. The broker away for ``outage`` s, then the drain of what the gateway held."""
        assert self.broker is not None
        buffer = self.site / "buffer.db"
        self.broker.stop()
        time.sleep(self.plan.outage)
        top, entries, readings = backlog(buffer)
        connections = gw.log_count(CONNECTED)
        self.broker.start()
        back = time.monotonic()
        connected = drained = None
        deadline = back + max(120.0, self.plan.outage * 4)
        while time.monotonic() < deadline:
            left = held_up_to(buffer, top)
            now = time.monotonic()
            if connected is None and gw.log_count(CONNECTED) > connections:
                connected = now
            if left == 0:
                drained = now
                break
            if not gw.alive():
                raise SystemExit(f"the gateway stopped: {gw.death()}")
            time.sleep(0.05)
        if connected is None or drained is None:
            raise SystemExit(f"the backlog did not drain within {deadline - back:.0f} s")
        drain = Drain(entries, readings, connected - back, max(drained - connected, 0.05))
        self.console.print(
            f"  outage of {self.plan.outage:g} s: {entries:,} entries ({readings:,} readings)"
            f" held; drained in {drain.drain_s:.1f} s once the gateway was connected again"
            f" ({drain.reconnect_s:.1f} s after the broker was back)"
        )
        return drain

    def close(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        if self.pipe is not None:
            self.pipe.send("stop")
        if self.field is not None:
            self.field.join(30)
            if self.field.is_alive():
                self.field.kill()
        if self.broker is not None and self.broker.incarnations:
            self.broker.stop()
        drop_database(self.s.database_url, self.url)
        shutil.rmtree(self.work, ignore_errors=True)


def main(s: Settings, plan: Plan) -> Figures:
    plan.check()
    console = Console()
    run = Run(s, plan, console)
    try:
        with connect(run.url, autocommit=True) as conn:
            ref_uids, password = run.setup(conn)
            console.print(
                f"bench: ingest of {plan.reference:,} readings in messages of {BATCH}; then one"
                f" gateway polling {plan.devices} devices every {plan.interval:g} s for"
                f" {plan.seconds:g} s, and a {plan.outage:g} s broker outage (batches of at most"
                f" {plan.batch_bytes:,} bytes every {plan.batch_interval:g} s)"
            )
            ingest_rows = run.reference(conn, ref_uids)
            gw = run.start_gateway(password)
            live = run.live(conn, gw)
            drain = run.outage(gw)
            gw.sample()
            rss = max(gw.peak_mb, peak_rss_mb(gw.pid))
    finally:
        run.close()
    figures = Figures(
        devices=plan.devices,
        interval_s=plan.interval,
        ingest_batched_rows=ingest_rows,
        devices_per_s=live.devices_per_s,
        registers_per_s=live.registers_per_s,
        requests_per_s=live.requests_per_s,
        cpu_share=live.cpu_share,
        servers_cpu_share=live.servers_cpu_share,
        rss_mb=rss,
        machine_cpu=live.machine_cpu,
        backlog_entries=drain.entries,
        backlog_readings=drain.readings,
        reconnect_s=drain.reconnect_s,
        drain_s=drain.drain_s,
        drain_rows=drain.readings / drain.drain_s,
    )
    report(console, figures)
    return figures


def _state_dir(s: Settings) -> Path:
    s.state_dir.mkdir(parents=True, exist_ok=True)
    return s.state_dir


def report(console: Console, f: Figures) -> None:
    target = f.devices / f.interval_s
    t = Table(title=f"shouwang gateway benchmark ({os.cpu_count()} cores)")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("goal", justify="right")
    t.add_column("met", justify="center")

    def row(name: str, value: str, goal: str = "", ok: bool | None = None) -> None:
        t.add_row(name, value, goal, "" if ok is None else ("yes" if ok else "NO"))

    row("devices polled", f"{f.devices} every {f.interval_s:g} s")
    row(
        "devices polled per second",
        f"{f.devices_per_s:,.0f} ({f.devices_per_s / target:.0%} of the schedule)",
        "≥ 500",
        # every poll kept, up to the jitter of a window's edges
        f.devices_per_s >= 0.98 * target if target >= 500 else None,
    )
    row("registers polled per second", f"{f.registers_per_s:,.0f}")
    row("Modbus requests per second", f"{f.requests_per_s:,.0f}")
    row("gateway CPU", f"{f.cpu_share:.0%} of one core", "≤ 100 %", f.cpu_share <= 1.0)
    row(
        "gateway peak RSS", f"{f.rss_mb:,.0f} MB", f"< {GOAL_RSS_MB:.0f} MB", f.rss_mb < GOAL_RSS_MB
    )
    row("Modbus servers CPU (their own process)", f"{f.servers_cpu_share:.0%} of one core")
    row("machine CPU (all processes)", f"{f.machine_cpu:.0%} of {os.cpu_count()} cores")
    row("platform batched ingest", f"{f.ingest_batched_rows:,.0f} readings/s")
    row(
        "backlog after the outage",
        f"{f.backlog_entries:,} entries, {f.backlog_readings:,} readings",
    )
    row("reconnection after the broker is back", f"{f.reconnect_s:.1f} s")
    row("drain, once connected", f"{f.drain_rows:,.0f} readings/s in {f.drain_s:.1f} s")
    row(
        "  ratio to batched ingest",
        f"{f.drain_ratio:.0%}",
        f"≥ {GOAL_DRAIN_RATIO:.0%}",
        f.drain_ratio >= GOAL_DRAIN_RATIO,
    )
    console.print(t)
