"""Drills: one outage mid-stream, on the platform's real processes, and its figures.

Every drill starts a private Mosquitto (``bench.drills.stack.PrivateBroker``), ``shouwang
ingest`` (and for ``db-outage`` also ``shouwang analytics`` and ``shouwang notify``) as
subprocesses, and ``shouwang simulate --record`` streaming one or more of the registry's
communities; the stages' database URL goes through a TCP proxy (``bench.drills.proxy``) the drill
can cut. Then, once readings are being stored and after a warm-up:

- ``broker-restart``: the broker stops cleanly (SIGTERM) and starts again after ``outage_s``;
  nothing may be lost.
- ``broker-kill``: ingest stops (cleanly: its session stays on the broker) ``backlog_s`` before
  the broker is killed (SIGKILL), so the broker holds a backlog for it; the broker starts again
  after ``outage_s`` from its last autosave, and ingest after it. What the broker had
  acknowledged since its last save and not delivered is lost: every lost reading must lie in that
  window (``autosave_s`` + 1 s of Mosquitto's rounding, + 1 s of slack, before the kill).
- ``db-outage``: the database is cut behind the proxy for ``outage_s``; elevators raise faults in
  the middle of it; the stages must stay up and, once it returns, every reading be stored once
  and the faults alarmed.

The published readings are what the simulator recorded; stored ones are read from the
database (readings of the drill's devices that were not there before it started). The figures
say what was published, acknowledged, stored, duplicated and lost, each stage's peak RSS, and
the recovery time from the end of the outage to the first reading stored after it and to every
reading published before it stored.
"""

from __future__ import annotations

import bisect
import csv
import json
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console
from rich.table import Table

from bench.drills.proxy import Proxy
from bench.drills.stack import (
    Observer,
    PrivateBroker,
    Proc,
    stage_env,
    start_stage,
    wait_for_log,
)
from broker.files import AUTOSAVE_INTERVAL_S
from core.db import Conn, connect
from core.settings import Settings
from core.wire import Channel, device_topic, encode_event
from simulators.fleet import Fleet

KINDS = ("broker-restart", "broker-kill", "db-outage")
GATEWAY_FLUSH_S = 5.0  # data seconds a gateway's batch gathers (simulators.run)
POLL_S = 0.25
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01
FAULT_CODE, FAULT_EVENT = "90", "EL.ALARM_BUTTON"  # an elevator's alarm button (P1)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

Key = tuple[str, str, int]  # device uid, metric, data time (ms)


@dataclass(frozen=True)
class Options:
    kind: str
    communities: int = 1
    seconds: float | None = None  # wall seconds of streaming (default: long enough)
    outage_s: float | None = None  # default: 60 for the database, 5 for the broker
    speed: float = 1.0  # simulated seconds per wall second
    warmup_s: float = 10.0  # of storing, before the outage
    backlog_s: float = 15.0  # broker-kill: ingest stopped this long before the kill
    autosave_s: int = AUTOSAVE_INTERVAL_S  # the drill's broker
    stages: tuple[str, ...] = ("ingest", "analytics", "notify")  # db-outage
    faults: int = 3  # db-outage: elevators raising their alarm button mid-outage
    community_codes: tuple[str, ...] = ()  # instead of the first ``communities``
    settle_s: float = 60.0  # after the stream: how long to wait for the rest to be stored

    @property
    def outage(self) -> float:
        if self.outage_s is not None:
            return self.outage_s
        return 60.0 if self.kind == "db-outage" else 5.0

    @property
    def stream_s(self) -> float:
        if self.seconds is not None:
            return self.seconds
        lead = self.warmup_s + (self.backlog_s if self.kind == "broker-kill" else 0.0)
        return lead + self.outage + 30.0

    @property
    def window_s(self) -> float:
        """How far before the kill a lost reading may lie (wall seconds): Mosquitto saves every
        autosave_s + 1 s, plus a second of slack for the message's way through."""
        return self.autosave_s + 2.0 if self.kind == "broker-kill" else 0.0


@dataclass
class Figures:
    kind: str
    communities: list[str]
    devices: int
    speed: float
    stream_s: float
    outage_s: float
    messages_published: int = 0
    readings_published: int = 0
    messages_acknowledged: int | None = None
    messages_routed: int = 0  # seen by the drill's observer
    ingest_messages: int = 0  # committed and acknowledged by ingest (all its runs)
    readings_stored: int = 0  # published readings found stored
    readings_extra: int = 0  # new readings of the drill's devices nobody published
    duplicates: int = 0
    lost: int = 0
    lost_outside_window: int = 0
    lost_span_s: float | None = None  # data span of the lost readings, in wall seconds
    window_s: float = 0.0
    autosave_s: int = AUTOSAVE_INTERVAL_S
    held_at_kill: int | None = None  # messages routed while ingest was away, at the kill
    readings_in_window: int = 0  # published within the window before the kill (may be lost)
    backlog_saved: int = 0  # published while ingest was away, before the window (saved)
    backlog_saved_stored: int = 0  # of them, stored
    first_stored_after_s: float | None = None
    all_stored_after_s: float | None = None
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    alive_after: dict[str, bool] = field(default_factory=dict)
    log_counts: dict[str, int] = field(default_factory=dict)
    alarms: dict[str, int] = field(default_factory=dict)
    platform_alarms: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    directory: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class Sample:
    at: float  # monotonic
    total: int  # readings of the drill's devices in its data range
    up_to_end: int  # of them, with data time up to end_ms (the end of the outage, once known)
    end_ms: int


class Poller:
    """Counts the drill's readings in the database every POLL_S (its own connection, not through
    the proxy) and samples the processes' peak RSS."""

    def __init__(self, url: str, device_ids: list[int], lo: datetime, procs: list[Proc]) -> None:
        self.url, self.device_ids, self.lo, self.procs = url, device_ids, lo, procs
        self.samples: list[Sample] = []
        self.t_end_ms: int | None = None
        self.broker: PrivateBroker | None = None
        self.error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with connect(self.url, autocommit=True) as conn:
                    while not self._stop.is_set():
                        self._poll(conn)
                        self._stop.wait(POLL_S)
            except psycopg.Error as e:  # the drill's own connection: say so, try again
                self.error = str(e)
                self._stop.wait(1.0)

    def _poll(self, conn: Conn) -> None:
        end = self.t_end_ms if self.t_end_ms is not None else FAR_FUTURE_MS
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE ts <= to_timestamp(%s / 1000.0))"
            " FROM readings WHERE device_id = ANY(%s) AND ts >= %s",
            (end, self.device_ids, self.lo),
        ).fetchone()
        total, le = (int(row[0]), int(row[1])) if row else (0, 0)
        self.samples.append(Sample(time.monotonic(), total, le, end))
        for p in list(self.procs):
            p.sample()
        if self.broker is not None and self.broker.incarnations:
            self.broker.sample()


class Drill:
    def __init__(self, s: Settings, opts: Options, console: Console) -> None:
        if opts.kind not in KINDS:
            raise SystemExit(f"no drill {opts.kind!r}; one of {', '.join(KINDS)}")
        if opts.speed <= 0:
            raise SystemExit("--speed must be above 0 (the drill maps data time to wall time)")
        self.s, self.o, self.console = s, opts, console
        self.dir = Path()  # the drill's files: made once the registry has what it needs
        self.procs: list[Proc] = []
        self.events: dict[str, float] = {}  # monotonic
        self.wall: dict[str, float] = {}  # time.time() of the same events
        self.f = Figures(
            opts.kind, [], 0, opts.speed, opts.stream_s, opts.outage, autosave_s=opts.autosave_s
        )
        self.f.window_s = opts.window_s
        self._map: tuple[float, int] | None = None  # (monotonic, data ms) when the fault began
        self.raised: tuple[list[str], int] = ([], 0)  # elevators that raised one, data time
        self.poller: Poller | None = None

    # --- set-up --------------------------------------------------------------------------

    def _registry(self, conn: Conn) -> tuple[list[str], dict[int, str], dict[str, str]]:
        secrets_file = self.s.state_dir / "device-secrets.json"
        if not secrets_file.exists():
            raise SystemExit(
                f"no device credentials at {secrets_file}: run 'shouwang seed' first (it loads"
                " the demo county into the registry and writes them)"
            )
        secrets: dict[str, str] = json.loads(secrets_file.read_text())
        codes = list(self.o.community_codes) or [
            r[0]
            for r in conn.execute(
                "SELECT c.code FROM communities c WHERE EXISTS (SELECT 1 FROM devices d"
                " WHERE d.community_id = c.id AND d.active) ORDER BY c.code LIMIT %s",
                (self.o.communities,),
            ).fetchall()
        ]
        if len(codes) < max(1, len(self.o.community_codes) or self.o.communities):
            raise SystemExit(
                f"the registry has {len(codes)} communities with devices, the drill needs"
                f" {self.o.communities}: run 'shouwang seed' first"
            )
        rows = conn.execute(
            "SELECT d.id, d.uid, coalesce(g.uid, d.uid) FROM devices d"
            " JOIN communities c ON c.id = d.community_id LEFT JOIN gateways g ON g.id = d.gateway_id"
            " WHERE d.active AND c.code = ANY(%s)",
            (codes,),
        ).fetchall()
        missing = sorted({link for _i, _u, link in rows if link not in secrets})
        if missing:
            raise SystemExit(
                f"{len(missing)} devices or gateways of {', '.join(codes)} have no credential in"
                f" {secrets_file} (e.g. {missing[0]}): run 'shouwang seed' first"
            )
        return codes, {int(i): str(u) for i, u, _ in rows}, secrets

    def _check_notify_reaches_nobody_outside(self, conn: Conn) -> None:
        """The drill's alarms go to whoever is on duty: refuse when that could be someone on a
        channel outside this machine (a real roster)."""
        rows = conn.execute(
            "SELECT ch.kind, ch.address FROM contact_channels ch JOIN people p ON p.id = ch.person_id"
            " WHERE p.active AND ch.kind IN ('webhook', 'wecom', 'dingtalk', 'email')"
        ).fetchall()
        smtp_local = self.s.notify_smtp_host in ("", *LOOPBACK)
        outside = [
            a
            for k, a in rows
            if (k == "email" and not smtp_local)
            or (k != "email" and (urlparse(str(a)).hostname or "") not in LOOPBACK)
        ]
        if outside:
            raise SystemExit(
                f"{len(outside)} contact channels of active people lead off this machine; the"
                " drill's alarms would reach them. Run it on a registry without a real roster,"
                " or with --no-notify"
            )

    # --- the run -------------------------------------------------------------------------

    def run(self) -> Figures:
        o, f = self.o, self.f
        with connect(self.s.database_url, autocommit=True) as conn:
            codes, devices, secrets = self._registry(conn)
            if o.kind == "db-outage" and "notify" in o.stages:
                self._check_notify_reaches_nobody_outside(conn)
            f.communities, f.devices = codes, len(devices)
            lo = datetime.fromtimestamp(time.time() - self.start_ago - 60, UTC)
            baseline = conn.execute(
                "SELECT device_id, metric_id, (extract(epoch FROM ts) * 1000)::bigint"
                " FROM readings WHERE device_id = ANY(%s) AND ts >= %s",
                (list(devices), lo),
            ).fetchall()
            self.dir = Path(tempfile.mkdtemp(prefix=f"shouwang-drill-{o.kind}-"))
            f.directory = self.dir
            broker = PrivateBroker(self.dir / "broker", conn, self.s, o.autosave_s)
        base_keys = {(int(d), int(m), int(t)) for d, m, t in baseline}
        poller = self.poller = Poller(self.s.database_url, list(devices), lo, self.procs)
        poller.broker = broker
        proxy: Proxy | None = None
        observer: Observer | None = None
        published: set[Key] = set()
        try:
            broker.start()
            proxy, env, direct_env = self._environments(broker)
            for name in o.stages if o.kind == "db-outage" else ("ingest",):
                self._start(name, env)
            if not wait_for_log(self.procs[0], "connected as", 60):
                raise SystemExit(
                    f"ingest did not connect to the drill's broker:\n{self.procs[0].tail()}"
                )
            observer = Observer(
                "127.0.0.1",
                broker.port,
                self.s.mqtt_admin_username,
                self.s.mqtt_admin_password.get_secret_value(),
            )
            observer.start()
            poller.start()
            sim = self._simulate(codes, direct_env)
            self.console.print(
                f"drill {o.kind}: {len(devices)} devices of {', '.join(codes)} at speed"
                f" {o.speed:g} for {o.stream_s:.0f} s, outage {o.outage:.0f} s; broker on"
                f" 127.0.0.1:{broker.port}, files in {self.dir}"
            )
            self._wait_first_stored(poller, len(base_keys), sim)
            time.sleep(o.warmup_s)
            self._fault(broker, observer, proxy, poller, env, secrets, codes)
            published = self._end_of_stream(sim)
            self._settle(poller, len(base_keys), len(published))
            f.messages_routed = observer.mark()[0]
            self._check_alive()
        finally:
            poller.stop()
            if observer is not None:
                observer.close()
            for p in reversed(self.procs):
                p.stop()
            if broker.incarnations:
                broker.stop()
            if proxy is not None:
                proxy.close()
        self._figures(published, devices, base_keys, poller, codes)
        self._from_processes(broker)
        if f.ok:
            shutil.rmtree(self.dir, ignore_errors=True)
            f.directory = None
        return f

    @property
    def start_ago(self) -> float:
        """How far back the data clock starts: a fast-forwarded stream ends at the present."""
        return self.o.speed * self.o.stream_s if self.o.speed != 1.0 else 0.0

    def _environments(
        self, broker: PrivateBroker
    ) -> tuple[Proxy | None, dict[str, str], dict[str, str]]:
        """The proxy (db-outage), the stages' environment (through it) and the simulator's."""
        proxy, stage_url = None, self.s.database_url
        if self.o.kind == "db-outage":
            params = conninfo_to_dict(self.s.database_url)
            host = str(params.get("host") or "")
            if not host or host.startswith("/"):
                raise SystemExit("db-outage needs a TCP database URL (host and port)")
            proxy = Proxy(host, int(params.get("port") or 5432))
            params.update(host="127.0.0.1", port=str(proxy.port))
            stage_url = make_conninfo(**params)  # type: ignore[arg-type]
        env = stage_env(
            self.s, database_url=stage_url, mqtt_port=broker.port, broker_dir=broker.directory
        )
        direct = stage_env(
            self.s,
            database_url=self.s.database_url,
            mqtt_port=broker.port,
            broker_dir=broker.directory,
        )
        return proxy, env, direct

    def _simulate(self, codes: list[str], env: dict[str, str]) -> Proc:
        o = self.o
        args = ["simulate", "--speed", f"{o.speed:g}", "--duration", f"{o.speed * o.stream_s:g}"]
        args += ["--start-ago", f"{self.start_ago:g}", "--record", str(self.dir / "published.csv")]
        for c in codes:
            args += ["--community", c]
        sim = start_stage("simulate", args, env, self.dir)
        self.procs.append(sim)
        self._mark("stream")
        return sim

    def _end_of_stream(self, sim: Proc) -> set[Key]:
        f = self.f
        remaining = self.events["stream"] + self.o.stream_s - time.monotonic()
        try:
            sim.popen.wait(max(0.0, remaining) + 120)
        except subprocess.TimeoutExpired:
            f.problems.append("the simulator did not finish in time")
        sim.sample()
        published, f.messages_published, f.readings_published = self._published(sim)
        if sim.popen.returncode == 0:
            f.messages_acknowledged = f.messages_published  # it drains until acknowledged
        else:
            f.problems.append(f"the simulator exited {sim.popen.returncode}:\n{sim.tail()}")
        return published

    def _check_alive(self) -> None:
        for p in self.procs:
            if p.name != "simulate" and not p.retired:
                self.f.alive_after[p.name] = p.alive()
                if not self.f.alive_after[p.name]:
                    self.f.problems.append(
                        f"{p.name} died (exit {p.popen.returncode}) during the drill: {p.death()}"
                    )

    def _from_processes(self, broker: PrivateBroker) -> None:
        """Peak RSS of every process, and what ingest's logs say."""
        f = self.f
        for p in self.procs:
            f.peak_rss_mb[p.name] = p.peak_mb
        f.peak_rss_mb["mosquitto"] = broker.peak_mb()
        ingest_logs = [p for p in self.procs if p.name.startswith("ingest")]
        for p in ingest_logs:
            text = p.log.read_text(errors="replace") if p.log else ""
            f.ingest_messages += sum(
                int(n) for n in re.findall(r"stopped: (\d+) messages, \d+ readings", text)
            )
        f.log_counts["ingest: DATABASE UNAVAILABLE"] = sum(
            p.log_count("DATABASE UNAVAILABLE") for p in ingest_logs
        )
        f.log_counts["ingest: paused reading at its byte limit"] = sum(
            p.log_count("not reading from the broker") for p in ingest_logs
        )

    def _start(self, name: str, env: dict[str, str]) -> Proc:
        clock = "wall" if self.o.speed == 1.0 else "data"
        args = {
            "ingest": ["ingest", "--client-id", "drill-ingest"],
            "analytics": ["analytics", "--clock", clock],
            "notify": ["notify", "--name", "drill-notify"],
        }[name]
        p = start_stage(name, args, env, self.dir, log_name=f"{name}.{len(self.procs)}")
        self.procs.insert(len([q for q in self.procs if q.name != "simulate"]), p)
        return p

    def _mark(self, name: str) -> None:
        self.events[name] = time.monotonic()
        self.wall[name] = time.time()

    def _wait_first_stored(self, poller: Poller, baseline: int, sim: Proc) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            last = poller.latest()
            if last is not None and last.total > baseline:
                return
            if not sim.alive() and sim.popen.returncode:
                raise SystemExit(f"the simulator exited {sim.popen.returncode}:\n{sim.tail()}")
            time.sleep(0.2)
        raise SystemExit(
            f"nothing was stored within 90 s of the stream's start ({poller.error}):\n"
            + "\n".join(p.tail(5) for p in self.procs)
        )

    def data_ms_at(self, mono: float) -> int:
        """The simulator's data time at a moment (from what the observer saw when the fault
        began, advancing at the drill's speed)."""
        assert self._map is not None
        at, ms = self._map
        return ms + int((mono - at) * self.o.speed * 1000)

    def _fault(
        self,
        broker: PrivateBroker,
        observer: Observer,
        proxy: Proxy | None,
        poller: Poller,
        env: dict[str, str],
        secrets: dict[str, str],
        codes: list[str],
    ) -> None:
        o = self.o
        routed, latest = observer.mark()
        self._map = (time.monotonic(), latest)
        if o.kind == "db-outage":
            assert proxy is not None
            proxy.cut()
            self._mark("down")
            self.console.print(f"  database cut behind the proxy for {o.outage:.0f} s")
            half = self.events["down"] + o.outage / 2
            time.sleep(max(0.0, half - time.monotonic()))
            if o.faults:
                self._raise_faults(broker, secrets, codes)
            time.sleep(max(0.0, self.events["down"] + o.outage - time.monotonic()))
            proxy.restore()
            self._restored(poller)
        elif o.kind == "broker-restart":
            self._mark("down")
            broker.stop(signal.SIGTERM)
            self.console.print(f"  broker stopped (SIGTERM) for {o.outage:.0f} s")
            time.sleep(max(0.0, self.events["down"] + o.outage - time.monotonic()))
            broker.start()
            self._restored(poller)
        else:  # broker-kill
            ingest = self.procs[0]
            if o.backlog_s > 0:
                ingest.stop(signal.SIGTERM)  # its session stays: the broker holds a backlog
                ingest.name, ingest.retired = "ingest (stopped before the kill)", True
                self._mark("ingest_stopped")
                routed = observer.mark()[0]
                self.console.print(
                    f"  ingest stopped; the broker holds its messages for {o.backlog_s:.0f} s"
                )
                time.sleep(o.backlog_s)
            at_kill, latest = observer.mark()
            self._map = (time.monotonic(), latest)
            broker.stop(signal.SIGKILL)
            self._mark("down")
            self.f.held_at_kill = at_kill - routed if o.backlog_s > 0 else None
            self.console.print(f"  broker killed (SIGKILL) for {o.outage:.0f} s")
            time.sleep(max(0.0, self.events["down"] + o.outage - time.monotonic()))
            broker.start()
            self._restored(poller)
            if o.backlog_s > 0:
                self._start("ingest", env)
        self.console.print("  back; waiting for the stream to end and everything to be stored")

    def _restored(self, poller: Poller) -> None:
        """The outage ends now: from here on the poller also counts what was published before."""
        self._mark("restore")
        poller.t_end_ms = self.data_ms_at(self.events["restore"])

    def _raise_faults(
        self, broker: PrivateBroker, secrets: dict[str, str], codes: list[str]
    ) -> None:
        with connect(self.s.database_url, autocommit=True) as conn:
            uids = [
                r[0]
                for r in conn.execute(
                    "SELECT d.uid FROM devices d JOIN communities c ON c.id = d.community_id"
                    " WHERE d.device_class = 'elevator' AND d.active AND d.gateway_id IS NULL"
                    " AND c.code = ANY(%s) AND NOT EXISTS (SELECT 1 FROM alarms a"
                    " WHERE a.device_id = d.id AND a.state <> 'cleared' AND a.event_code = %s)"
                    " ORDER BY d.id LIMIT %s",
                    (codes, FAULT_EVENT, self.o.faults),
                ).fetchall()
            ]
        fleet = Fleet("127.0.0.1", broker.port, client_prefix="drill")
        try:
            for uid in uids:
                fleet.add(uid, secrets[uid])
            fleet.wait_connected(10)
            ts = self.data_ms_at(time.monotonic())
            for uid in uids:
                fleet.publish(uid, device_topic(uid, Channel.EVENT), encode_event(ts, FAULT_CODE))
            fleet.drain(10)
        finally:
            fleet.close()
        self.raised = (uids, ts)
        self.console.print(f"  {len(uids)} elevators pressed their alarm button mid-outage")

    def _published(self, sim: Proc) -> tuple[set[Key], int, int]:
        record = self.dir / "published.csv"
        published: set[Key] = set()
        if record.exists():
            with record.open() as fh:
                published = {(u, m, int(t)) for u, m, t, _v in csv.reader(fh)}
        m = re.search(
            r"published (\d+) readings in (\d+) messages", sim.log.read_text() if sim.log else ""
        )
        if m:
            return published, int(m.group(2)), int(m.group(1))
        return published, 0, len(published)

    def _settle(self, poller: Poller, baseline: int, expected: int) -> None:
        """Wait until every published reading is stored, or nothing more arrives for 10 s (what
        a kill lost never comes), within ``settle_s``."""
        deadline = time.monotonic() + self.o.settle_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            s = poller.latest()
            n = s.total - baseline if s else 0
            if n >= expected:
                return
            if n != last:
                last, since = n, time.monotonic()
            elif time.monotonic() - since > 10 and self.o.kind == "broker-kill":
                return
            time.sleep(POLL_S)

    # --- figures -------------------------------------------------------------------------

    def _figures(
        self,
        published: set[Key],
        devices: dict[int, str],
        base_keys: set[tuple[int, int, int]],
        poller: Poller,
        codes: list[str],
    ) -> None:
        f, o = self.f, self.o
        with connect(self.s.database_url, autocommit=True) as conn:
            metrics: dict[int, str] = {
                int(i): str(n) for i, n in conn.execute("SELECT id, name FROM metrics").fetchall()
            }
            rows = conn.execute(
                "SELECT device_id, metric_id, (extract(epoch FROM ts) * 1000)::bigint"
                " FROM readings WHERE device_id = ANY(%s) AND ts >= %s",
                (list(devices), poller.lo),
            ).fetchall()
            dup = conn.execute(
                "SELECT count(*) - count(DISTINCT (device_id, metric_id, ts)) FROM readings"
                " WHERE device_id = ANY(%s) AND ts >= %s",
                (list(devices), poller.lo),
            ).fetchone()
            if o.kind == "db-outage":
                self._alarms(conn, codes)
        new = {(int(d), int(m), int(t)) for d, m, t in rows} - base_keys
        stored = {(devices[d], str(metrics[m]), t) for d, m, t in new}
        f.readings_stored = len(published & stored)
        f.readings_extra = len(stored - published)
        f.duplicates = int(dup[0]) if dup else 0
        lost = published - stored
        f.lost = len(lost)
        if f.duplicates:
            f.problems.append(f"{f.duplicates} readings stored twice")
        if lost:
            ts = sorted(t for _u, _m, t in lost)
            f.lost_span_s = (ts[-1] - ts[0]) / 1000 / o.speed
            if o.kind == "broker-kill":
                lo, hi = self.window_ms()
                f.lost_outside_window = sum(1 for t in ts if not lo <= t <= hi)
            else:
                f.lost_outside_window = len(lost)
            if f.lost_outside_window:
                f.problems.append(
                    f"{f.lost_outside_window} of {len(published)} readings lost outside the"
                    f" documented window ({o.window_s:g} s before the kill)"
                    if o.kind == "broker-kill"
                    else f"{f.lost} of {len(published)} readings lost"
                )
        if o.kind == "broker-kill" and "down" in self.events:
            lo, hi = self.window_ms()
            f.readings_in_window = sum(1 for k in published if lo <= k[2] <= hi)
            if "ingest_stopped" in self.events:
                away = self.data_ms_at(self.events["ingest_stopped"])
                saved = {k for k in published if away <= k[2] < lo}
                f.backlog_saved, f.backlog_saved_stored = len(saved), len(saved & stored)
        if "restore" in self.events and poller.t_end_ms is not None:
            restore = self.events["restore"]
            after = [s for s in poller.samples if s.at >= restore]
            at_restore = next((s.total for s in reversed(poller.samples) if s.at < restore), 0)
            first = next((s for s in after if s.total > at_restore), None)
            f.first_stored_after_s = first.at - restore if first else None
            target = sum(1 for k in published & stored if k[2] <= poller.t_end_ms)
            base_ts = sorted(t for _d, _m, t in base_keys)
            base_le = bisect.bisect_right(base_ts, poller.t_end_ms)
            done = next(
                (
                    s
                    for s in after
                    if s.end_ms == poller.t_end_ms and s.up_to_end - base_le >= target
                ),
                None,
            )
            f.all_stored_after_s = done.at - restore if done else None
            if done is None:
                f.problems.append(
                    "what was published before the end of the outage was not all stored"
                )

    def window_ms(self) -> tuple[float, float]:
        """The data times a reading lost by the kill may have: from the window before the kill
        (and a gateway batch's gathering time before that) to two seconds after it."""
        kill = self.data_ms_at(self.events["down"])
        lo = kill - (self.o.window_s * self.o.speed + GATEWAY_FLUSH_S) * 1000
        return lo, kill + 2 * self.o.speed * 1000

    def _alarms(self, conn: Conn, codes: list[str]) -> None:
        f = self.f
        start = datetime.fromtimestamp(self.wall["stream"], UTC)
        down = datetime.fromtimestamp(self.wall["down"], UTC)
        d_down = datetime.fromtimestamp(self.data_ms_at(self.events["down"]) / 1000, UTC)
        d_restore = datetime.fromtimestamp(self.data_ms_at(self.events["restore"]) / 1000, UTC)
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE a.committed_at < %(down)s),"
            " count(*) FILTER (WHERE a.committed_at >= %(down)s),"
            " count(*) FILTER (WHERE a.opened_at >= %(d_down)s AND a.opened_at < %(d_restore)s),"
            " count(w.id) FILTER (WHERE w.committed_at >= %(down)s)"
            " FROM alarms a JOIN devices d ON d.id = a.device_id"
            " JOIN communities c ON c.id = d.community_id"
            " LEFT JOIN work_orders w ON w.alarm_id = a.id"
            " WHERE c.code = ANY(%(codes)s) AND a.committed_at >= %(start)s",
            {
                "down": down,
                "d_down": d_down,
                "d_restore": d_restore,
                "codes": codes,
                "start": start,
            },
        ).fetchone() or (0, 0, 0, 0)
        f.alarms["alarms filed before the cut"] = int(row[0])
        f.alarms["alarms filed after the cut (none can commit during it)"] = int(row[1])
        f.alarms["  of them for data of the outage"] = int(row[2])
        f.alarms["work orders filed after the cut"] = int(row[3])
        uids, ts = self.raised
        if uids:
            fault = conn.execute(
                "SELECT count(DISTINCT a.id), count(DISTINCT w.id) FROM alarms a"
                " JOIN devices d ON d.id = a.device_id LEFT JOIN work_orders w ON w.alarm_id = a.id"
                " WHERE d.uid = ANY(%s) AND a.event_code = %s AND a.opened_at >= %s",
                (uids, FAULT_EVENT, datetime.fromtimestamp(ts / 1000 - 1, UTC)),
            ).fetchone() or (0, 0)
            f.alarms["faults raised mid-outage"] = len(uids)
            f.alarms["  alarmed"] = int(fault[0])
            f.alarms["  with a work order"] = int(fault[1])
            if "analytics" in self.o.stages and int(fault[0]) < len(uids):
                f.problems.append(
                    f"{len(uids) - int(fault[0])} faults raised mid-outage were not alarmed"
                )
        out = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE o.done_at IS NULL) FROM outbox o"
            " JOIN communities c ON c.id = o.community_id"
            " WHERE c.code = ANY(%s) AND o.created_at >= %s",
            (codes, start),
        ).fetchone() or (0, 0)
        f.alarms["outbox rows written"] = int(out[0])
        f.alarms["outbox rows still pending"] = int(out[1])
        f.platform_alarms = [
            f"{k}{'/' + s if s else ''} ({state})"
            for k, s, state in conn.execute(
                "SELECT kind, subject, state FROM platform_alarms WHERE opened_at >= %s"
                " OR (last_triggered_at >= %s AND state <> 'cleared') ORDER BY id",
                (start, start),
            ).fetchall()
        ]


def run(s: Settings, opts: Options, console: Console | None = None) -> Figures:
    console = console or Console()
    f = Drill(s, opts, console).run()
    report(console, f)
    return f


def _fmt(x: float | None, unit: str = " s") -> str:
    return "—" if x is None else f"{x:,.1f}{unit}"


def report(console: Console, f: Figures) -> None:
    t = Table(title=f"shouwang drill {f.kind}: {', '.join(f.communities)}, {f.devices} devices")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("stream", f"{f.stream_s:.0f} s at speed {f.speed:g}; outage {f.outage_s:.0f} s")
    t.add_row("messages published", f"{f.messages_published:,}")
    t.add_row(
        "  acknowledged by the broker",
        "—" if f.messages_acknowledged is None else f"{f.messages_acknowledged:,}",
    )
    t.add_row("  routed (seen by the drill's observer)", f"{f.messages_routed:,}")
    t.add_row("  committed by ingest (with redeliveries, statuses)", f"{f.ingest_messages:,}")
    t.add_row("readings published", f"{f.readings_published:,}")
    t.add_row("  stored", f"{f.readings_stored:,}")
    t.add_row("  duplicates", f"{f.duplicates:,}")
    t.add_row("  lost (published − stored)", f"{f.lost:,}")
    if f.kind == "broker-kill":
        t.add_row(
            "  autosave / documented window",
            f"autosave_interval {f.autosave_s} s / {f.window_s:g} s before the kill",
        )
        t.add_row("  lost outside the window", f"{f.lost_outside_window:,}")
        t.add_row("  span of the lost readings", _fmt(f.lost_span_s))
        t.add_row("  readings published in the window", f"{f.readings_in_window:,}")
        if f.held_at_kill is not None:
            t.add_row("  messages held for ingest at the kill", f"{f.held_at_kill:,}")
            t.add_row(
                "  backlog before the window (saved): stored",
                f"{f.backlog_saved_stored:,} of {f.backlog_saved:,}",
            )
    if f.readings_extra:
        t.add_row("  stored, not published by the drill", f"{f.readings_extra:,}")
    t.add_row("first reading stored after the outage", _fmt(f.first_stored_after_s))
    t.add_row("everything before the outage's end stored", _fmt(f.all_stored_after_s))
    for name, mb in f.peak_rss_mb.items():
        t.add_row(f"peak RSS {name}", f"{mb:,.0f} MB")
    for name, alive in f.alive_after.items():
        t.add_row(f"{name} running after", "yes" if alive else "[red]NO[/]")
    for k, v in {**f.log_counts, **f.alarms}.items():
        t.add_row(k, f"{v:,}")
    if f.kind == "db-outage":
        t.add_row("platform alarms opened", ", ".join(f.platform_alarms) or "none")
    console.print(t)
    for p in f.problems:
        console.print(f"[bold red]FAILED:[/] {p}")
    if f.directory is not None:
        console.print(f"logs kept in {f.directory}")
    if f.ok:
        console.print("[green]drill passed[/]")
