"""Bench: capacity (``shouwang bench capacity``). How many devices one machine carries with every
stage running, before a service objective breaks.

Everything runs on scratch services of its own: a scratch database beside the configured one
(dropped after) and a private Mosquitto on its own port (``bench.drills.stack.PrivateBroker``);
the shared stack's data is never touched. The demo county is grown community by community (the
demo county's communities, ~100 devices each; ten demo counties are ~20,000 devices), and
``shouwang ingest``, ``analytics``, ``notify`` and ``api serve`` run as real processes. notify
delivers to a webhook DOUBLE this process runs on loopback (``bench.drills.duty.Receiver``: it
checks signatures as a receiver must; it is not a real duty channel).

Each step streams the step's devices on their normal reporting interval (``shouwang simulate
--speed 1 --limit N``, a process of its own, restarted per step) and, after a warm-up, for
``step_seconds``:

- P0 faults (an elevator's trapped passenger) at a steady rate, each from a fresh elevator over
  a second connection of its own: publish → alarm row committed (analytics) and publish →
  notification received by the webhook double;
- ingest probes: a fire-water terminal's reading every second over a second connection,
  publish → row committed (polled);
- 10 API clients (``bench.api.phase``, in a process of their own), each one request every
  ``api_interval_s``, on the latest state of a community's devices and the firm's open alarms,
  with a firm-admin token;
- each process's CPU (psutil, children included) over the step, as a share of the machine;
  postgres: the scratch database's backends.

The count then grows by ``factor`` until an objective breaks (a step that misses one is run
again ``retries`` times first: the machine is shared; ``keep_going`` steps on regardless, for the
whole curve), ``max_devices`` is reached or the time budget (``max_seconds``) would be
exceeded. The simulator runs on the same machine and takes CPU the platform would have on its
own hardware: its share is printed separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from multiprocessing.pool import Pool
from pathlib import Path

import httpx
import psutil
import uvloop
from psycopg.conninfo import conninfo_to_dict
from rich.console import Console
from rich.table import Table

from api.tokens import issue
from bench.api import OPEN_ALARMS, Load, free_port, phase
from bench.capacity_figures import (
    HEADERS,
    Step,
    communities_for,
    device_steps,
    result_line,
    row,
    shares,
)
from bench.drills.duty import Receiver, news
from bench.drills.stack import PrivateBroker, Proc, stage_env, start_stage, wait_for_log
from bench.ingest import drop_database, scratch_database
from broker.sync import platform_services, sync
from core.db import Conn, connect, migrate
from core.mqtt import use_tls
from core.settings import Settings
from core.wire import Channel, device_topic, encode_event, encode_sample
from notify.webhook import new_secret
from simulators.behaviour import behaviour_for
from simulators.county import County, demo_county
from simulators.fleet import Fleet
from simulators.seed import seed

STAGES = ("ingest", "analytics", "notify", "api")
CPU_NAMES = (*STAGES, "broker", "simulator", "postgres", "bench")
FAULT_CODE, FAULT_EVENT = "11", "EL.TRAPPED"  # an elevator's trapped passenger: P0
LATEST = "/v1/telemetry/latest?community_id={id}&limit=500"
PERSON = "CAPACITY 值班 (webhook double)"
PROBES = 5  # fire-water terminals probing ingest, one reading a second in turn
GRACE_S = 6.0  # after a step: for the last faults' alarms and notifications, and probes
POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class Plan:
    start: int = 2_000
    factor: float = 1.5
    max_devices: int = 30_000
    step_seconds: float = 60.0
    warmup_seconds: float = 15.0  # after the simulator connected, before measuring
    max_seconds: float = 900.0
    fault_interval_s: float = 1.0
    api_clients: int = 10
    api_interval_s: float = 0.5
    retries: int = 1  # a step that misses an objective is run again (the machine is shared)
    keep_going: bool = False  # step on past a broken objective, for the whole curve

    def check(self) -> None:
        if self.step_seconds < 2 or self.warmup_seconds < 0:
            raise SystemExit("--step-seconds must be 2 or more and --warmup 0 or more")
        if self.fault_interval_s <= 0 or self.api_interval_s <= 0 or self.api_clients < 1:
            raise SystemExit("--fault-interval and the API pace must be above 0, clients ≥ 1")
        if self.max_seconds <= 0:
            raise SystemExit("--max-seconds must be above 0")


# --- processes and their CPU -----------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (0 once gone)."""
    try:
        p = psutil.Process(pid)
        total = sum(p.cpu_times()[:2])
        for c in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(c.cpu_times()[:2])
        return total
    except psutil.Error:
        return 0.0


def postgres_seconds(database: str) -> dict[int, float]:
    """CPU so far of the backends serving ``database`` (their process title names it), by pid:
    the server's shared processes (WAL writer, checkpointer, background workers) serve every
    database on the machine and are not counted."""
    out: dict[int, float] = {}
    for p in psutil.process_iter(["name", "cmdline"]):
        title = " ".join(p.info["cmdline"] or ())
        if p.info["name"] in ("postgres", "postmaster") and f" {database} " in title:
            with contextlib.suppress(psutil.Error):
                out[p.pid] = sum(p.cpu_times()[:2])
    return out


def postgres_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds postgres used between two readings: per process, so that backends starting
    and ending meanwhile do not count negative (one that ended is missed: a lower bound of
    the upper bound)."""
    return sum(max(0.0, s - before.get(pid, 0.0)) for pid, s in after.items())


def cpu_now(procs: dict[str, Proc]) -> dict[str, float]:
    out = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    # this process and its API clients' process (the stages are its children too: not counted)
    me = psutil.Process()
    ours = {p.pid for p in procs.values()}
    out["bench"] = sum(me.cpu_times()[:2]) + sum(
        cpu_seconds(c.pid) for c in me.children() if c.pid not in ours
    )
    return out


def machine_busy() -> float:
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0))


# --- the registry, grown step by step ----------------------------------------------------------


class Registry:
    """The scratch database's county, seeded up to a number of communities as steps need, and
    the device credentials in the benchmark's own state directory."""

    def __init__(self, conn: Conn, county: County, state_dir: Path) -> None:
        self.conn, self.county, self.state_dir = conn, county, state_dir
        self.seeded = 0
        self.secrets: dict[str, str] = {}

    def grow(self, communities: int) -> None:
        if communities <= self.seeded:
            return
        c = self.county
        part = County(c.regions, c.firms, c.units, c.communities[self.seeded : communities])
        self.secrets.update(seed(self.conn, part, self.state_dir / f"part-{communities}.json"))
        (self.state_dir / f"part-{communities}.json").unlink()
        secrets_file = self.state_dir / "device-secrets.json"
        tmp = secrets_file.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(json.dumps(self.secrets))
        os.replace(tmp, secrets_file)
        self.seeded = communities

    def devices(self, limit: int) -> list[tuple[int, str, str, str | None]]:
        """The first ``limit`` active devices, as the simulator takes them (by id): id, uid,
        class, gateway uid."""
        return [
            (int(i), str(u), str(c), g)
            for i, u, c, g in self.conn.execute(
                "SELECT d.id, d.uid, d.device_class, g.uid FROM devices d"
                " LEFT JOIN gateways g ON g.id = d.gateway_id WHERE d.active ORDER BY d.id LIMIT %s",
                (limit,),
            ).fetchall()
        ]


def put_on_duty(conn: Conn, receiver: Receiver) -> tuple[int, int]:
    """The webhook double's person and channel (duty staff); shifts are added per step."""
    (person,) = conn.execute(
        "INSERT INTO people (name, role) VALUES (%s, 'duty_staff') RETURNING id", (PERSON,)
    ).fetchone() or (0,)
    (channel,) = conn.execute(
        "INSERT INTO contact_channels (person_id, kind, address, secret)"
        " VALUES (%s, 'webhook', %s, %s) RETURNING id",
        (person, f"http://127.0.0.1:{receiver.port}/capacity-double", receiver.secret),
    ).fetchone() or (0,)
    return int(person), int(channel)


def cover_shifts(conn: Conn, person: int) -> None:
    conn.execute(
        "INSERT INTO duty_shifts (community_id, role, person_id, starts_at, ends_at)"
        " SELECT c.id, 'duty_staff', %s, now() - interval '5 minutes', now() + interval '1 day'"
        " FROM communities c WHERE NOT EXISTS"
        " (SELECT 1 FROM duty_shifts s WHERE s.community_id = c.id AND s.person_id = %s)",
        (person, person),
    )


# --- one step ----------------------------------------------------------------------------------


class Probes:
    """Fire-water terminals publishing a reading over a second connection; the time from
    publishing to the row being committed."""

    def __init__(self, devices: list[tuple[int, str]]) -> None:
        self.devices = devices
        self.behaviour = behaviour_for("fire_water", {}, random.Random(1))
        self.pending: dict[tuple[int, int], float] = {}  # (device id, ts ms) -> sent
        self.lags_ms: list[float] = []
        self.k = 0

    def publish(self, fleet: Fleet) -> None:
        dev_id, uid = self.devices[self.k % len(self.devices)]
        self.k += 1
        now = time.time()
        ts_ms = int(now * 1000)
        values = self.behaviour.sample(now)
        fleet.publish(uid, device_topic(uid, Channel.TELEMETRY), encode_sample(ts_ms, values))
        self.pending[(dev_id, ts_ms)] = now

    def poll(self, conn: Conn) -> None:
        if not self.pending:
            return
        since = min(ts for _, ts in self.pending) / 1000.0
        rows = conn.execute(
            "SELECT DISTINCT device_id, (extract(epoch FROM ts) * 1000)::bigint FROM readings"
            " WHERE device_id = ANY(%s) AND ts >= to_timestamp(%s)",
            ([d for d, _ in self.devices], since),
        ).fetchall()
        seen = time.time()
        for d, ts in rows:
            sent = self.pending.pop((int(d), int(ts)), None)
            if sent is not None:
                self.lags_ms.append((seen - sent) * 1000)


def api_load(
    url: str, token: str, community_ids: list[int], plan: Plan, seconds: float
) -> tuple[float, float, int, int]:
    """p50 and p99 (ms), requests and errors of 10 paced clients over the two routes. Runs in a
    process of its own (``Capacity.api_pool``), so that the clients' timing does not wait on this
    process's other threads."""
    paths: list[str] = []
    for c in community_ids:
        paths += [LATEST.format(id=c), OPEN_ALARMS]
    load = Load(clients=plan.api_clients, seconds=seconds, interval=plan.api_interval_s, warmup=1.0)
    headers = {"Authorization": f"Bearer {token}"}
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        f = runner.run(phase(url, headers, "capacity", paths, load))
    return f.p50_ms, f.p99_ms, f.requests, f.errors


def warm() -> None:
    """Nothing: run in the API clients' process, it has imported this module."""


def notified(receiver: Receiver, sent: dict[str, float]) -> dict[str, float]:
    """Device -> when the webhook double first held its P0 alarm's notification."""
    got: dict[str, float] = {}
    for rec in receiver.snapshot():
        for item in news(rec.body):
            dev = str(item.get("device"))
            if (
                item.get("kind") == "alarm_opened"
                and item.get("code") == FAULT_EVENT
                and dev in sent
            ):
                got[dev] = min(got.get(dev, math.inf), rec.at)
    return got


def alarmed(conn: Conn, sent: dict[str, float]) -> dict[str, float]:
    """Device -> when its P0 alarm row was committed."""
    rows = conn.execute(
        "SELECT d.uid, min(extract(epoch FROM a.committed_at)) FROM alarms a"
        " JOIN devices d ON d.id = a.device_id WHERE a.event_code = %s AND d.uid = ANY(%s)"
        " GROUP BY d.uid",
        (FAULT_EVENT, list(sent)),
    ).fetchall()
    return {str(u): float(t) for u, t in rows}


def answered(conn: Conn, receiver: Receiver, sent: dict[str, float]) -> bool:
    return len(notified(receiver, sent)) >= len(sent) and len(alarmed(conn, sent)) >= len(sent)


class Capacity:
    def __init__(self, s: Settings, plan: Plan, console: Console) -> None:
        plan.check()
        self.s, self.plan, self.console = s, plan, console
        self.began = time.monotonic()
        self.procs: dict[str, Proc] = {}
        self.steps: list[Step] = []
        self.used_elevators: set[str] = set()
        self.why_stopped = "reached --max-devices"
        self.broker_port = 0
        self.dir = Path()
        self.database = ""  # the scratch database's name
        self.api_pool: Pool | None = None  # the API clients' process, while running

    def run(self) -> list[Step]:  # noqa: PLR0915 (set-up, steps, clean-up in one view)
        plan = self.plan
        counts = device_steps(plan.start, plan.factor, plan.max_devices)
        county = demo_county(communities=plan.max_devices // 80 + 2)
        sizes = [len(c.devices) for c in county.communities]
        url = scratch_database(self.s.database_url, "_capacity")
        self.database = str(conninfo_to_dict(url)["dbname"])
        receiver = Receiver(new_secret())
        broker: PrivateBroker | None = None
        try:
            self.dir = Path(tempfile.mkdtemp(prefix="shouwang-capacity-"))
            state = self.dir / "state"
            state.mkdir()
            self.api_pool = multiprocessing.get_context("spawn").Pool(1)
            self.api_pool.apply(warm)  # its imports, before any step measures its CPU
            receiver.start()
            with connect(url, autocommit=True) as conn:
                migrate(conn)
                reg = Registry(conn, county, state)
                reg.grow(communities_for(sizes, counts[0]))
                broker = PrivateBroker(self.dir / "broker", conn, self.s)
                broker.start()
                self.broker_port = broker.port
                self.procs["broker"] = broker.proc
                person, _channel = put_on_duty(conn, receiver)
                cover_shifts(conn, person)
                env = self._env(url, broker, state)
                api_port = free_port()
                self._start_stages(env, api_port)
                token = issue(conn, "firm_admin", "shouwang bench capacity", {"firm": "F01"}).token
                api_url = f"http://127.0.0.1:{api_port}"
                self._wait_api(api_url)
                self.console.print(
                    f"capacity: scratch database, private broker on :{broker.port}, stages"
                    f" {', '.join(STAGES)}; webhook double on :{receiver.port};"
                    f" steps {', '.join(f'{n:,}' for n in counts)} devices,"
                    f" {plan.step_seconds:g} s each after {plan.warmup_seconds:g} s of warm-up"
                )
                for n in counts:
                    left = plan.max_seconds - (time.monotonic() - self.began)
                    if left < plan.step_seconds + plan.warmup_seconds + GRACE_S + 10:
                        self.why_stopped = "time budget (--max-seconds) spent"
                        break
                    reg.grow(communities_for(sizes, n))
                    self._sync_broker(conn, broker)
                    cover_shifts(conn, person)
                    for attempt in range(plan.retries + 1):
                        step = self._step(conn, reg, n, env, receiver, api_url, token)
                        step.attempt = attempt
                        self.steps.append(step)
                        self._print(step)
                        if step.passed:
                            break
                    if not step.passed and not plan.keep_going:
                        self.why_stopped = "an objective broke"
                        break
        finally:
            for p in reversed(list(self.procs.values())):
                p.stop()
            if broker is not None and broker.incarnations:
                broker.stop()
            if self.api_pool is not None:
                self.api_pool.terminate()
                self.api_pool.join()
            receiver.close()
            drop_database(self.s.database_url, url)
            if self.dir.name.startswith("shouwang-capacity-"):
                shutil.rmtree(self.dir, ignore_errors=True)
        if self.steps:
            self.console.print(self._table("capacity curve", self.steps))
        self.console.print(result_line(self.steps, CPU_NAMES, self.why_stopped))
        self.console.print(
            "(simulator: the devices' side, on this same machine, not part of the platform;"
            " postgres: the scratch database's backends, not the server's shared processes;"
            " shares are of all the machine's cores)"
        )
        return self.steps

    def _env(self, url: str, broker: PrivateBroker, state: Path) -> dict[str, str]:
        env = stage_env(
            self.s, database_url=url, mqtt_port=broker.port, broker_dir=broker.directory
        )
        env.update(
            {
                "SHOUWANG_STATE_DIR": str(state),
                "SHOUWANG_MQTT_TLS": "false",
                "SHOUWANG_NOTIFY_ALLOW_HTTP": "true",  # the webhook double is plain http
                "SHOUWANG_NOTIFY_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
                **{f"SHOUWANG_METRICS_PORT_{st.upper()}": "0" for st in (*STAGES, "gateway")},
            }
        )
        return env

    def _start_stages(self, env: dict[str, str], api_port: int) -> None:
        args = {
            "ingest": ["ingest", "--client-id", "capacity-ingest"],
            "analytics": ["analytics"],
            "notify": ["notify", "--name", "capacity-notify"],
            "api": ["api", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
        }
        for name in STAGES:
            self.procs[name] = start_stage(name, args[name], env, self.dir)

    def _wait_api(self, url: str) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(base_url=url, timeout=2) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/v1/public/communities?limit=1").status_code == 200:
                        return
                time.sleep(0.2)
        raise SystemExit(
            f"the API did not answer at {url} within 60 s:\n{self.procs['api'].tail()}"
        )

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if not p.alive():
                raise SystemExit(f"{name} exited: {p.death()}")

    def _sync_broker(self, conn: Conn, broker: PrivateBroker) -> None:
        sync(
            conn,
            platform_services(self.s),
            passwd=broker.directory / "passwd",
            acl=broker.directory / "acl",
            pid_file=broker.directory / "mosquitto.pid",
            share_group=self.s.ingest_share_group,
        )
        time.sleep(0.5)  # Mosquitto re-reads its files on SIGHUP, asynchronously

    def _step(
        self,
        conn: Conn,
        reg: Registry,
        n: int,
        env: dict[str, str],
        receiver: Receiver,
        api_url: str,
        token: str,
    ) -> Step:
        plan = self.plan
        devices = reg.devices(n)
        step = Step(len(devices))
        step.connections = len({g or u for _i, u, _c, g in devices})
        sim = start_stage(
            "simulator",
            ["simulate", "--speed", "1", "--limit", str(len(devices))],
            env,
            self.dir,
            log_name=f"simulator-{n}",
        )
        self.procs["simulator"] = sim
        try:
            if not wait_for_log(sim, "simulating", 180):
                raise SystemExit(
                    f"the simulator did not start streaming {n} devices:\n{sim.tail()}"
                )
            time.sleep(plan.warmup_seconds)
            self._check_alive()
            self._measure(conn, reg, step, devices, receiver, api_url, token)
        finally:
            sim.stop()
            del self.procs["simulator"]
        return step

    def _measure(  # noqa: PLR0915 (one measured window, read top to bottom)
        self,
        conn: Conn,
        reg: Registry,
        step: Step,
        devices: list[tuple[int, str, str, str | None]],
        receiver: Receiver,
        api_url: str,
        token: str,
    ) -> None:
        plan = self.plan
        n_faults = max(1, int(plan.step_seconds / plan.fault_interval_s))
        elevators = [
            u
            for _i, u, c, g in devices
            if c == "elevator" and g is None and u not in self.used_elevators
        ][:n_faults]
        probes = Probes(
            [(i, u) for i, u, c, g in devices if c == "fire_water" and g is None][:PROBES]
        )
        fleet = Fleet("127.0.0.1", self.broker_port, client_prefix="capacity")
        for uid in elevators + [u for _, u in probes.devices]:
            fleet.add(uid, reg.secrets[uid])
        refused = fleet.wait_connected()
        if refused:
            raise SystemExit(
                f"the private broker refused the benchmark's connections: {refused[:3]}"
            )
        firm_communities = [
            int(r[0])
            for r in conn.execute(
                "SELECT c.id FROM communities c JOIN firms f ON f.id = c.firm_id"
                " WHERE f.code = 'F01' AND EXISTS (SELECT 1 FROM devices d WHERE d.community_id = c.id"
                " AND d.id <= %s) ORDER BY c.id",
                (max(i for i, *_ in devices),),
            ).fetchall()
        ]
        sent: dict[str, float] = {}
        cpu0, pg0 = cpu_now(self.procs), postgres_seconds(self.database)
        t0, busy0 = time.monotonic(), machine_busy()
        (readings0,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
        assert self.api_pool is not None
        api = self.api_pool.apply_async(
            api_load, (api_url, token, firm_communities, plan, plan.step_seconds - 1.0)
        )
        next_fault = next_probe = next_poll = t0
        try:
            while (now := time.monotonic()) < t0 + plan.step_seconds:
                if now >= next_fault and len(sent) < len(elevators):
                    uid = elevators[len(sent)]
                    sent[uid] = time.time()
                    fleet.publish(
                        uid,
                        device_topic(uid, Channel.EVENT),
                        encode_event(int(sent[uid] * 1000), FAULT_CODE),
                    )
                    self.used_elevators.add(uid)
                    next_fault += plan.fault_interval_s
                if now >= next_probe and probes.devices:
                    probes.publish(fleet)
                    next_probe += 1.0
                if now >= next_poll:
                    probes.poll(conn)
                    next_poll += POLL_S
                fleet.pump(0.02)
            busy1, wall = machine_busy(), time.monotonic() - t0
            cpu1, pg1 = cpu_now(self.procs), postgres_seconds(self.database)
            (readings1,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
            try:
                api_result = [api.get(30)]
            except multiprocessing.TimeoutError:
                api_result = []
            grace_end = time.monotonic() + GRACE_S
            while time.monotonic() < grace_end and probes.pending:
                fleet.pump(POLL_S)
                probes.poll(conn)
            fleet.drain(5)
            # the last faults' alarms and notifications: at most GRACE_S more
            while time.monotonic() < grace_end and not answered(conn, receiver, sent):
                fleet.pump(POLL_S)
        finally:
            fleet.close()
        self._check_alive()
        step.seconds = wall
        step.readings_per_s = (int(readings1) - int(readings0)) / wall
        step.cpu = shares(cpu0, cpu1, wall, os.cpu_count() or 1)
        step.cpu["postgres"] = postgres_used(pg0, pg1) / (wall * (os.cpu_count() or 1))
        step.cpu["machine"] = (busy1 - busy0) / (wall * (os.cpu_count() or 1))
        step.ingest_lag_ms = probes.lags_ms
        step.ingest_probes_lost = len(probes.pending)
        step.faults = len(sent)
        if sent:
            step.alarm_ms = [(t - sent[u]) * 1000 for u, t in alarmed(conn, sent).items()]
            step.notify_ms = [(t - sent[u]) * 1000 for u, t in notified(receiver, sent).items()]
        if api_result:
            step.api_p50_ms, step.api_p99_ms, step.api_requests, step.api_errors = api_result[0]
        else:
            step.note = "the API load did not finish"

    def _print(self, step: Step) -> None:
        title = (
            f"step {len(self.steps)}: {step.devices:,} devices over {step.connections:,}"
            f" connections, {step.seconds:.0f} s measured"
        )
        self.console.print(self._table(title, [step]))

    @staticmethod
    def _table(title: str, steps: list[Step]) -> Table:
        t = Table(title=title)
        for h in (*HEADERS, *(f"CPU {n}" for n in (*CPU_NAMES, "machine")), "objectives"):
            t.add_column(h, justify="right")
        for step in steps:
            t.add_row(*row(step, (*CPU_NAMES, "machine")))
        return t


def main(s: Settings, plan: Plan) -> list[Step]:
    use_tls(None)  # the private broker listens in plain MQTT on loopback
    if threading.current_thread() is threading.main_thread():
        # stopped with SIGTERM: the clean-up (processes, scratch database) still runs
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return Capacity(s, plan, Console(width=250)).run()
