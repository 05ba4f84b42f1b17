"""Drills: one outage mid-stream, on the platform's real processes, and its figures.

Every drill starts a private Mosquitto (``bench.drills.stack.PrivateBroker``), the stages it
runs (``shouwang ingest``; for ``db-outage`` also ``shouwang analytics`` and ``shouwang notify``,
for ``ingest-stop`` and ``broker-restart`` also ``shouwang analytics``) as subprocesses, and
``shouwang simulate --record`` streaming one or more of the registry's communities; the stages'
database URL goes through a TCP proxy (``bench.drills.proxy``) the drill can cut. Analytics runs
on the wall clock at speed 1 and on the data clock otherwise. Then, once readings are being
stored and after a warm-up:

- ``broker-restart``: the broker stops cleanly (SIGTERM) and starts again after ``outage_s``;
  nothing may be lost.
- ``broker-kill``: ingest stops (cleanly: its session stays on the broker) ``backlog_s`` before
  the broker is killed (SIGKILL), so the broker holds a backlog for it; the broker starts again
  after ``outage_s`` from its last autosave, and ingest after it. What the broker had
  acknowledged since its last save and not delivered is lost: every lost reading must lie in that
  window (``autosave_s`` + 1 s of Mosquitto's rounding, + 1 s of slack, before the kill).
- ``db-outage``: the database is cut behind the proxy for ``outage_s``; elevators raise faults in
  the middle of it; the stages in ``kill`` are SIGKILLed at three quarters of it and started
  again once it is back. The stages must stay up and, once it returns, every reading be stored
  once and the faults alarmed.
- ``ingest-stop``: ingest stops (SIGTERM; its session stays on the broker) for ``outage_s`` and
  starts again; nothing may be lost.

While analytics watches a broker restart or an ingest stop (``Options.watch``), the platform's
outage must not be the devices' fault (``bench.drills.offline``): one device of the first
community goes silent a third into the outage (``shouwang simulate --silence``); no other device
may get an OFFLINE alarm or work order, a feed silence longer than analytics' threshold must be
one ``feed_silent`` platform alarm, and the silent device must be detected once data flows again
(the stream ends a few seconds after it is). Analytics' grace, feed-silence and mass-silence
times are shortened for the drill (``grace_s``, ``feed_silent_s``, ``mass_window_s``): the
offline rule's own silence (one minute for the demo county's 10 s devices) is not.

When notify runs, a person of the drill's own is on duty for its communities with a webhook to a
receiver the drill runs (``bench.drills.duty``): every notification the outbox holds for the
drill's communities must arrive once, signed. Notify's group wait and interval are shortened and
its quiet hours off for the drill, so that what it holds back is out before the drill ends.

The published readings are what the simulator recorded; stored ones are read from the
database (readings of the drill's devices that were not there before it started). The figures
(``bench.drills.figures``) say what was published, acknowledged, stored, duplicated and lost,
each stage's peak RSS, and the recovery time from the end of the outage to the first reading
stored after it and to every reading published before it stored.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from rich.console import Console

from bench.drills.duty import Duty, expected_rows, pending_rows, tally
from bench.drills.figures import Figures, report
from bench.drills.offline import Watch, expectation, filed, pick_victim, victim_alarm_at, watch
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

KINDS = ("broker-restart", "broker-kill", "db-outage", "ingest-stop")
STAGES = ("ingest", "analytics", "notify")
WATCHING = (
    "broker-restart",
    "ingest-stop",
)  # kinds whose outage analytics must not blame on devices
GATEWAY_FLUSH_S = 5.0  # data seconds a gateway's batch gathers (simulators.run)
POLL_S = 0.25
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01
FAULT_CODE, FAULT_EVENT = "90", "EL.ALARM_BUTTON"  # an elevator's alarm button (P1)
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
BACKDATED = "opened before their button was pressed"
LEAD_SLACK_S = 5.0  # with a victim: the first reading's time to be stored, planned for
PAHO_MAX_BACKOFF_S = 120.0  # the stages' reconnection backoff doubles up to this

Key = tuple[str, str, int]  # device uid, metric, data time (ms)


@dataclass(frozen=True)
class Options:
    kind: str
    communities: int = 1
    seconds: float | None = None  # wall seconds of streaming (default: long enough)
    outage_s: float | None = None  # default: 60 database, 65 ingest, 5 broker
    speed: float = 1.0  # simulated seconds per wall second
    warmup_s: float = 10.0  # of storing, before the outage
    backlog_s: float = 15.0  # broker-kill: ingest stopped this long before the kill
    autosave_s: int = AUTOSAVE_INTERVAL_S  # the drill's broker
    stages: tuple[str, ...] | None = None  # default: ``running``
    kill: tuple[str, ...] = ()  # db-outage: SIGKILLed at 3/4 of the outage, started after it
    faults: int = 3  # db-outage: elevators raising their alarm button mid-outage
    community_codes: tuple[str, ...] = ()  # instead of the first ``communities``
    settle_s: float = 60.0  # after the stream: how long to wait for the rest to be stored
    victim: bool = True  # watching: one device goes silent a third into the outage
    grace_s: float = 20.0  # watching: analytics_offline_grace_s for the drill
    feed_silent_s: float = 30.0  # watching: analytics_feed_silent_s (the offline silence floors it)
    mass_window_s: float = 10.0  # watching: analytics_mass_silence_window_s
    group_wait_s: float = 2.0  # notify: notify_group_wait_s for the drill
    group_interval_s: float = 5.0  # notify: notify_group_interval_s for the drill
    notify_settle_s: float = 60.0  # after the readings: how long to wait for the notifications

    @property
    def outage(self) -> float:
        if self.outage_s is not None:
            return self.outage_s
        return {"db-outage": 60.0, "ingest-stop": 65.0}.get(self.kind, 5.0)

    @property
    def running(self) -> tuple[str, ...]:
        """The stages the drill runs."""
        if self.stages is not None:
            return self.stages
        if self.kind == "db-outage":
            return STAGES
        return ("ingest",) if self.kind == "broker-kill" else ("ingest", "analytics")

    @property
    def watch(self) -> bool:
        """Whether analytics watches the outage for OFFLINE alarms it must not file."""
        return self.kind in WATCHING and "analytics" in self.running

    @property
    def notify(self) -> bool:
        return "notify" in self.running

    @property
    def with_victim(self) -> bool:
        return self.watch and self.victim

    @property
    def clock(self) -> str:
        return "wall" if self.speed == 1.0 else "data"

    @property
    def lead_s(self) -> float:
        """From the stream's start to the outage, at least (with a victim, planned to the
        second: the victim's silence is set before the stream starts)."""
        lead = self.warmup_s + (self.backlog_s if self.kind == "broker-kill" else 0.0)
        return lead + (LEAD_SLACK_S if self.with_victim else 0.0)

    def stream_for(self, silence_s: float | None) -> float:
        """Wall seconds of streaming: ``seconds``, or the lead, the outage and a tail long
        enough to store the rest and, with a victim of offline silence ``silence_s``, to
        detect it (the stream then ends early, once it is)."""
        if self.seconds is not None:
            return self.seconds
        tail = 30.0
        if self.with_victim:
            tail += (max(silence_s or 0.0, self.grace_s) + self.mass_window_s) / self.speed
            if self.kind == "broker-restart":  # the stages come back within their backoff
                tail += min(PAHO_MAX_BACKOFF_S, self.outage)
        return self.lead_s + self.outage + tail

    @property
    def stream_s(self) -> float:
        return self.stream_for(None)

    @property
    def window_s(self) -> float:
        """How far before the kill a lost reading may lie (wall seconds): Mosquitto saves every
        autosave_s + 1 s, plus a second of slack for the message's way through."""
        return self.autosave_s + 2.0 if self.kind == "broker-kill" else 0.0

    def check(self) -> None:
        """Refuse what the drill cannot do, saying what to change."""
        if self.kind not in KINDS:
            raise SystemExit(f"no drill {self.kind!r}; one of {', '.join(KINDS)}")
        if self.speed <= 0:
            raise SystemExit("--speed must be above 0 (the drill maps data time to wall time)")
        if self.outage <= 0 or self.warmup_s < 0:
            raise SystemExit("--outage-s must be above 0 and --warmup 0 or more")
        unknown = sorted(set(self.running) - set(STAGES))
        if unknown or "ingest" not in self.running:
            raise SystemExit(
                f"stages {', '.join(unknown) or '(none)'}: a drill runs ingest and any of"
                f" {', '.join(STAGES[1:])}"
            )
        if self.kind == "broker-kill" and self.running != ("ingest",):
            raise SystemExit("broker-kill runs ingest alone")
        if self.kill and self.kind != "db-outage":
            raise SystemExit("--kill is for db-outage: the stages SIGKILLed during the cut")
        if bad := sorted(set(self.kill) - set(self.running)):
            raise SystemExit(
                f"--kill {', '.join(bad)}: not running in this drill (it runs"
                f" {', '.join(self.running)})"
            )
        if self.with_victim and self.outage * self.speed < 3:
            raise SystemExit("the outage is too short for a device to go silent within it")


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
        opts.check()
        self.s, self.o, self.console = s, opts, console
        self.dir = Path()  # the drill's files: made once the registry has what it needs
        self.procs: list[Proc] = []
        self.events: dict[str, float] = {}  # monotonic
        self.wall: dict[str, float] = {}  # time.time() of the same events
        self.stream_s = opts.stream_s  # once the registry is read: ``Options.stream_for``
        self.f = Figures(
            opts.kind, [], 0, opts.speed, opts.stream_s, opts.outage, autosave_s=opts.autosave_s
        )
        self.f.window_s = opts.window_s
        self._map: tuple[float, int] | None = None  # (monotonic, data ms) when the fault began
        self.raised: tuple[list[str], int] = ([], 0)  # elevators that raised one, data time
        self.poller: Poller | None = None
        self.watch: Watch | None = None
        self.victim: tuple[int, str] | None = None  # device id, uid
        self.duty: Duty | None = None

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
        if not rows:
            raise SystemExit(f"{', '.join(codes)}: no active device to stream")
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
                " or without notify"
            )

    # --- the run -------------------------------------------------------------------------

    def run(self) -> Figures:
        o, f = self.o, self.f
        with connect(self.s.database_url, autocommit=True) as conn:
            codes, devices, secrets = self._registry(conn)
            if o.notify:
                self._check_notify_reaches_nobody_outside(conn)
            f.communities, f.devices = codes, len(devices)
            if o.watch:
                self.watch = watch(self.s, conn, list(devices))
                if o.with_victim:
                    self.victim = pick_victim(conn, codes[0], self.watch)
                    f.victim = self.victim[1]
            self.stream_s = f.stream_s = o.stream_for(self.watch.shortest_s if self.watch else None)
            lo = datetime.fromtimestamp(time.time() - self.start_ago - 60, UTC)
            baseline = conn.execute(
                "SELECT device_id, metric_id, (extract(epoch FROM ts) * 1000)::bigint"
                " FROM readings WHERE device_id = ANY(%s) AND ts >= %s",
                (list(devices), lo),
            ).fetchall()
            self.dir = Path(tempfile.mkdtemp(prefix=f"shouwang-drill-{o.kind}-"))
            f.directory = self.dir
            broker = PrivateBroker(self.dir / "broker", conn, self.s, o.autosave_s)
            if o.notify:
                self.duty = Duty.seed(conn, codes, hours=(self.stream_s + 600) / 3600)
        try:
            self._run(codes, devices, secrets, baseline, lo, broker)
        finally:
            if self.duty is not None:
                with connect(self.s.database_url, autocommit=True) as conn:
                    self.duty.remove(conn)
                self.duty.close()
        if f.ok:
            shutil.rmtree(self.dir, ignore_errors=True)
            f.directory = None
        return f

    def _run(
        self,
        codes: list[str],
        devices: dict[int, str],
        secrets: dict[str, str],
        baseline: list[tuple[int, int, int]],
        lo: datetime,
        broker: PrivateBroker,
    ) -> None:
        o, f = self.o, self.f
        base_keys = {(int(d), int(m), int(t)) for d, m, t in baseline}
        poller = self.poller = Poller(self.s.database_url, list(devices), lo, self.procs)
        poller.broker = broker
        proxy: Proxy | None = None
        observer: Observer | None = None
        published: set[Key] = set()
        try:
            broker.start()
            proxy, env, direct_env = self._environments(broker)
            for name in o.running:
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
                f" {o.speed:g} for at most {self.stream_s:.0f} s, outage {o.outage:.0f} s;"
                f" broker on 127.0.0.1:{broker.port}, files in {self.dir}"
            )
            self._wait_first_stored(poller, len(base_keys), sim)
            if o.with_victim:  # the outage starts when the victim's silence was planned for
                at = max(self.events["stream"] + o.lead_s, time.monotonic() + 1.0)
                time.sleep(at - time.monotonic())
            else:
                time.sleep(o.warmup_s)
            self._fault(broker, observer, proxy, poller, env, secrets, codes)
            if self.victim is not None:
                self._await_victim(sim)
            published = self._end_of_stream(sim)
            self._settle(poller, len(base_keys), len(published))
            if self.duty is not None:
                self._settle_notifications(codes)
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

    @property
    def start_ago(self) -> float:
        """How far back the data clock starts: a fast-forwarded stream ends at the present."""
        return self.o.speed * self.stream_s if self.o.speed != 1.0 else 0.0

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
        args = ["simulate", "--speed", f"{o.speed:g}", "--duration", f"{o.speed * self.stream_s:g}"]
        args += ["--start-ago", f"{self.start_ago:g}", "--record", str(self.dir / "published.csv")]
        for c in codes:
            args += ["--community", c]
        if self.victim is not None:  # silent a third into the outage, planned from the start
            after = (o.lead_s + o.outage / 3) * o.speed
            args += ["--silence", self.victim[1], "--silence-after", f"{after:g}"]
        sim = start_stage("simulate", args, env, self.dir)
        self.procs.append(sim)
        self._mark("stream")
        return sim

    def _end_of_stream(self, sim: Proc) -> set[Key]:
        f = self.f
        remaining = self.events["stream"] + self.stream_s - time.monotonic()
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
        """Peak RSS of every process, and what the logs say."""
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
        if self.o.watch:
            f.log_counts["analytics: feed silent (log lines)"] = sum(
                p.log_count("no reading from the feed")
                for p in self.procs
                if p.name.startswith("analytics")
            )
        if self.o.kind.startswith("broker"):
            f.log_counts["simulator: links that lost their connection"] = sum(
                p.log_count("lost its connection") for p in self.procs if p.name == "simulate"
            )

    def _start(self, name: str, env: dict[str, str]) -> Proc:
        o = self.o
        args = {
            "ingest": ["ingest", "--client-id", "drill-ingest"],
            "analytics": ["analytics", "--clock", o.clock],
            "notify": ["notify", "--name", "drill-notify"],
        }[name]
        extra: dict[str, str] = {}
        if name == "analytics" and o.watch:
            extra = {
                "SHOUWANG_ANALYTICS_OFFLINE_GRACE_S": f"{o.grace_s:g}",
                "SHOUWANG_ANALYTICS_FEED_SILENT_S": f"{o.feed_silent_s:g}",
                "SHOUWANG_ANALYTICS_MASS_SILENCE_WINDOW_S": f"{o.mass_window_s:g}",
            }
            self.f.analytics_settings = {
                "clock": o.clock,
                "offline grace": f"{o.grace_s:g} s",
                "feed_silent_s": f"{o.feed_silent_s:g} s",
                "mass-silence window": f"{o.mass_window_s:g} s",
            }
        if name == "notify":  # what notify holds back goes out before the drill ends
            extra = {
                "SHOUWANG_NOTIFY_GROUP_WAIT_S": f"{o.group_wait_s:g}",
                "SHOUWANG_NOTIFY_GROUP_INTERVAL_S": f"{o.group_interval_s:g}",
                "SHOUWANG_NOTIFY_QUIET_HOURS": "",
                # The drill's receiver is plain http on loopback.
                "SHOUWANG_NOTIFY_ALLOW_HTTP": "true",
                "SHOUWANG_NOTIFY_ALLOWED_NETWORKS": '["127.0.0.0/8"]',
            }
        log_name = f"{name}.{len(self.procs)}"
        p = start_stage(name, args, {**env, **extra}, self.dir, log_name=log_name)
        self.procs.insert(len([q for q in self.procs if q.name != "simulate"]), p)
        return p

    def _retire(self, name: str, sig: int, why: str) -> None:
        """Stop the running stage ``name`` (``sig``: SIGTERM, or SIGKILL as a crash would)."""
        p = next(q for q in self.procs if q.name == name and not q.retired)
        p.stop(sig)
        p.name, p.retired = f"{name} ({why})", True

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
        self._map = (time.monotonic(), observer.mark()[1])
        if o.kind == "db-outage":
            assert proxy is not None
            self._cut_database(proxy, broker, poller, env, secrets, codes)
        elif o.kind == "ingest-stop":
            self._mark("down")
            self._retire("ingest", signal.SIGTERM, "stopped for the outage")
            self.console.print(f"  ingest stopped (its session stays) for {o.outage:.0f} s")
            self._sleep_into_outage(1.0)
            self._restored(poller)
            self._start("ingest", env)
        elif o.kind == "broker-restart":
            self._mark("down")
            broker.stop(signal.SIGTERM)
            self.console.print(f"  broker stopped (SIGTERM) for {o.outage:.0f} s")
            self._sleep_into_outage(1.0)
            broker.start()
            self._restored(poller)
        else:
            self._kill_broker(broker, observer, poller, env)
        self.console.print("  back; waiting for the stream to end and everything to be stored")

    def _cut_database(
        self,
        proxy: Proxy,
        broker: PrivateBroker,
        poller: Poller,
        env: dict[str, str],
        secrets: dict[str, str],
        codes: list[str],
    ) -> None:
        o = self.o
        proxy.cut()
        self._mark("down")
        self.console.print(f"  database cut behind the proxy for {o.outage:.0f} s")
        self._sleep_into_outage(0.5)
        if o.faults:
            self._raise_faults(broker, secrets, codes)
        if o.kill:
            self._sleep_into_outage(0.75)
            for name in o.kill:
                self._retire(name, signal.SIGKILL, "SIGKILLed mid-outage")
            self.f.killed = list(o.kill)
            self.console.print(f"  {', '.join(o.kill)} SIGKILLed")
        self._sleep_into_outage(1.0)
        proxy.restore()
        self._restored(poller)
        for name in o.kill:
            self._start(name, env)

    def _kill_broker(
        self, broker: PrivateBroker, observer: Observer, poller: Poller, env: dict[str, str]
    ) -> None:
        o = self.o
        routed = 0
        if o.backlog_s > 0:
            self._retire("ingest", signal.SIGTERM, "stopped before the kill")
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
        self._sleep_into_outage(1.0)
        broker.start()
        self._restored(poller)
        if o.backlog_s > 0:
            self._start("ingest", env)

    def _sleep_into_outage(self, share: float) -> None:
        time.sleep(max(0.0, self.events["down"] + self.o.outage * share - time.monotonic()))

    def _restored(self, poller: Poller) -> None:
        """The outage ends now: from here on the poller also counts what was published before."""
        self._mark("restore")
        poller.t_end_ms = self.data_ms_at(self.events["restore"])

    def _await_victim(self, sim: Proc) -> None:
        """Until the victim's OFFLINE alarm is committed (then the stream ends a few seconds
        later) or the stream ends."""
        assert self.watch is not None and self.victim is not None
        since = datetime.fromtimestamp(self.wall["stream"], UTC)
        end = self.events["stream"] + self.stream_s
        with connect(self.s.database_url, autocommit=True) as conn:
            while time.monotonic() < end and sim.alive():
                if victim_alarm_at(conn, self.victim[0], self.watch, since) is not None:
                    self.console.print(f"  {self.victim[1]} detected offline; ending the stream")
                    time.sleep(3.0)
                    sim.stop(signal.SIGTERM)  # it drains what it published, then exits
                    return
                time.sleep(1.0)

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

    def _settle_notifications(self, codes: list[str]) -> None:
        """Wait until every notification the outbox holds for the drill's communities has been
        delivered and arrived, and nothing new for 2 s, within ``notify_settle_s``."""
        assert self.duty is not None
        since = datetime.fromtimestamp(self.wall["stream"], UTC)
        deadline = time.monotonic() + self.o.notify_settle_s
        steady = 0
        with connect(self.s.database_url, autocommit=True) as conn:
            while time.monotonic() < deadline:
                expected = expected_rows(conn, codes, since)
                t = tally(conn, self.duty, expected)
                done = not t.missing and not pending_rows(conn, list(expected))
                steady = steady + 1 if done else 0
                if steady >= 4:
                    return
                time.sleep(0.5)

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
            if "analytics" in o.running and "down" in self.events:
                self._alarms(conn, codes)
            if self.watch is not None and "restore" in self.events:
                self._offline(conn, list(devices), published, poller)
            if self.duty is not None:
                self._notifications(conn, codes)
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

    def _feed_gap(self, poller: Poller) -> float | None:
        """From the last reading stored before the outage to the first stored after it (wall
        seconds): how long nothing reached analytics."""
        restore = self.events["restore"]
        before = [s for s in poller.samples if s.at < restore]
        last = None
        for prev, s in itertools.pairwise(before):
            if s.total > prev.total:
                last = s.at
        at_restore = next((s.total for s in reversed(poller.samples) if s.at < restore), None)
        first = next(
            (s.at for s in poller.samples if s.at >= restore and s.total > (at_restore or 0)),
            None,
        )
        return None if last is None or first is None else first - last

    def _offline(
        self, conn: Conn, device_ids: list[int], published: set[Key], poller: Poller
    ) -> None:
        """The outage is not the devices' fault: OFFLINE alarms, the platform alarm, the
        victim."""
        f, o, w = self.f, self.o, self.watch
        assert w is not None
        since = datetime.fromtimestamp(self.wall["stream"], UTC)
        victim_id = self.victim[0] if self.victim else None
        got = filed(conn, device_ids, w, since, victim_id)
        f.offline_alarms_others, f.offline_work_orders_others = got.others, got.others_work_orders
        if got.others or got.others_work_orders:
            f.problems.append(
                f"{got.others} OFFLINE alarms and {got.others_work_orders} work orders filed for"
                " devices that kept reporting"
            )
        f.feed_gap_s = self._feed_gap(poller)
        threshold = max(o.feed_silent_s, w.shortest_s or 0.0)
        f.feed_silent_after_s = threshold
        words, fewest, most = expectation(f.feed_gap_s, threshold, wall_clock=o.clock == "wall")
        f.platform_expected = words
        # On the wall clock a platform alarm's time is the wall's; on the data clock the data's.
        opened_since = since if o.clock == "wall" else poller.lo
        kinds: dict[str, int] = dict(
            conn.execute(
                "SELECT kind, count(*) FROM platform_alarms WHERE opened_at >= %s GROUP BY kind",
                (opened_since,),
            ).fetchall()
        )
        silent = int(kinds.pop("feed_silent", 0))
        if not fewest <= silent <= most:
            f.problems.append(f"{silent} feed_silent platform alarms opened; expected {words}")
        if kinds:
            f.problems.append(f"other platform alarms opened: {kinds}")
        if self.victim is None:
            return
        uid = self.victim[1]
        ts = [t for u, _m, t in published if u == uid]
        down_ms = self.data_ms_at(self.events["down"])
        if ts:
            f.victim_silent_at_s = (max(ts) - down_ms) / 1000 / o.speed
        if f.victim_silent_at_s is None or not 0 < f.victim_silent_at_s < o.outage:
            f.problems.append(
                f"{uid} did not go silent during the outage (its last reading"
                f" {_s(f.victim_silent_at_s)} into it): the drill proves nothing about it"
            )
        if got.victim_at is None:
            f.problems.append(f"{uid}, silent since the outage, was not detected offline after it")
        else:
            f.victim_detected_after_s = got.victim_at.timestamp() - self.wall["restore"]
            f.victim_work_order = got.victim_work_order

    def _notifications(self, conn: Conn, codes: list[str]) -> None:
        f, o = self.f, self.o
        assert self.duty is not None
        since = datetime.fromtimestamp(self.wall["stream"], UTC)
        expected = expected_rows(conn, codes, since)
        t = tally(conn, self.duty, expected)
        n = f.notifications
        n["notifications expected (outbox rows for the drill's duty staff)"] = t.expected
        n["  arrived (once each, signature checked)"] = t.covered
        n["  missing"] = len(t.missing)
        n["  duplicates (an alarm's news in two deliveries)"] = len(t.duplicates)
        n["deliveries received"] = t.received
        n["  sent again with the same delivery id (dropped)"] = t.repeats
        n["  for other rows (e.g. pending from before the drill)"] = t.unexpected
        n["  bad signatures / unreadable"] = t.bad_signatures + t.malformed
        n["  accepted in the delivery log"] = t.logged_accepted
        uids, _ts = self.raised
        if uids:
            notified = sum(1 for u in uids if t.codes[(u, FAULT_EVENT)])
            n["faults raised mid-outage notified"] = notified
            if "analytics" in o.running and notified < len(uids):
                f.problems.append(
                    f"{len(uids) - notified} of {len(uids)} faults raised mid-outage were not"
                    " notified"
                )
        if t.missing:
            f.problems.append(
                f"{len(t.missing)} of {t.expected} notifications never arrived (outbox rows"
                f" {', '.join(map(str, t.missing[:10]))})"
            )
        if t.duplicates:
            f.problems.append(
                f"{len(t.duplicates)} notifications arrived twice: {'; '.join(t.duplicates[:5])}"
            )
        if t.bad_signatures or t.malformed:
            f.problems.append(
                f"{t.bad_signatures} webhooks with a bad signature, {t.malformed} unreadable"
            )

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
        cut = " (none can commit during the cut)" if self.o.kind == "db-outage" else ""
        f.alarms["alarms filed before the outage"] = int(row[0])
        f.alarms[f"alarms filed since it began{cut}"] = int(row[1])
        f.alarms["  of them for data of the outage"] = int(row[2])
        f.alarms["work orders filed since it began"] = int(row[3])
        uids, ts = self.raised
        if uids:
            press = datetime.fromtimestamp(ts / 1000, UTC)
            fault = conn.execute(
                "SELECT count(DISTINCT a.id), count(DISTINCT w.id), count(DISTINCT a.id) FILTER"
                " (WHERE a.opened_at < %s - interval '1 second'), extract(epoch FROM %s"
                " - min(a.opened_at)) FROM alarms a JOIN devices d ON d.id = a.device_id"
                " LEFT JOIN work_orders w ON w.alarm_id = a.id"
                " WHERE d.uid = ANY(%s) AND a.event_code = %s AND a.committed_at >= %s",
                (press, press, uids, FAULT_EVENT, down),
            ).fetchone() or (0, 0, 0, None)
            f.alarms["faults raised mid-outage"] = len(uids)
            f.alarms["  alarmed"] = int(fault[0])
            f.alarms["  with a work order"] = int(fault[1])
            f.alarms[f"  {BACKDATED}"] = int(fault[2])
            if int(fault[0]) < len(uids):
                f.problems.append(
                    f"{len(uids) - int(fault[0])} faults raised mid-outage were not alarmed"
                )
            elif int(fault[0]) > len(uids):
                f.problems.append(
                    f"{len(uids)} faults raised mid-outage became {fault[0]} alarms: one press,"
                    " one alarm"
                )
            if fault[2]:
                f.problems.append(
                    f"{fault[2]} fault alarms {BACKDATED}, by up to {float(fault[3]):.0f} s of"
                    " data time"
                )
        out = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE o.done_at IS NULL) FROM outbox o"
            " JOIN communities c ON c.id = o.community_id"
            " WHERE c.code = ANY(%s) AND o.created_at >= %s",
            (codes, start),
        ).fetchone() or (0, 0)
        f.alarms["outbox rows written"] = int(out[0])
        f.alarms["outbox rows still pending"] = int(out[1])
        since = (
            start
            if self.o.clock == "wall"
            else datetime.fromtimestamp(self.wall["stream"] - self.start_ago, UTC)
        )
        f.platform_alarms = [
            f"{k}{'/' + s if s else ''} ({state})"
            for k, s, state in conn.execute(
                "SELECT kind, subject, state FROM platform_alarms WHERE opened_at >= %s"
                " OR (last_triggered_at >= %s AND state <> 'cleared') ORDER BY id",
                (since, since),
            ).fetchall()
        ]


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


def run(s: Settings, opts: Options, console: Console | None = None) -> Figures:
    console = console or Console()
    f = Drill(s, opts, console).run()
    report(console, f)
    return f
