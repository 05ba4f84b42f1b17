"""Issue 17, done when: a real Prometheus scrapes the stages and the alert rules judge them.

Ingest, analytics, notify, the API and a site gateway run as the processes they are in
production (the gateway, C01-GW, polls five devices on a real Modbus TCP server and forwards
through the test's broker to ingest), the simulator streams the test county's devices, a lift
raises a trapped-passenger alarm that reaches the duty staff's webhook, and one device sends a
message ingest rejects. A Prometheus on loopback (scraping every second, the shipped alerts.yml
with short ``for:`` durations and the stuck threshold at a few seconds) then sees every stage up
and moving (the gateway's polls answered, its entries acknowledged), no alert firing, and data
for every query of the platform-health dashboard. Then ingest is made stuck while alive (a
transaction holds ``LOCK TABLE readings IN ACCESS EXCLUSIVE MODE``, so it cannot commit while
messages keep arriving): ShouwangStageStuck fires and ``shouwang health --stage ingest`` fails;
released, both recover. Then notify and the gateway are frozen (SIGSTOP): their scrapes fail,
ShouwangStageDown fires for each and ``shouwang health --stage notify --stage gateway`` says both
are down; continued, they recover, and the gateway forwards again. Last, the gateway's devices
fall silent, its buffer drains and it exits cleanly."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from core.db import Conn
from core.settings import Settings
from core.wire import Channel, device_topic
from dashboards.folders import platform_dashboards
from dashboards.model import Panel
from ingest.__main__ import config_from as ingest_config
from ingest.consumer import retire_session
from simulators.county import County
from sites.converter import Function
from tests.analytics.test_db_outage import retire_analytics_session
from tests.conftest import ROOT, Broker, free_port, settings_env, shouwang
from tests.gateway.conftest import ModbusSite, modbus_site, site_config  # noqa: F401  (fixture)
from tests.gateway.site_run import DEVICES, MODELS, held, units
from tests.mqtt_helpers import peer
from tests.notify.test_db_outage import SlowReceiver
from tests.notify.test_dispatch import LOCAL_ENV
from tests.test_correlation_logs import (  # noqa: F401  (fixtures)
    TRAPPED,
    Lift,
    keep_feed_for_analytics,
    lift,
    receiver,
)

RULES = ROOT / "dashboards" / "prometheus" / "alerts.yml"
SHIPPED = ROOT / "dashboards" / "prometheus" / "prometheus.yml"
STAGES = ("ingest", "analytics", "notify", "api", "gateway")
GATEWAY_POLL_S = 0.5  # five devices: ten polls a second, light beside the simulator
STUCK_S = 6.0  # SHOUWANG_HEALTH_STUCK_AFTER_S and the stuck rule's threshold, for the test
RATE = "5s"  # $__rate_interval: a few scrapes of 1 s
INGEST_ID = "prom-ingest"
ANALYTICS_ID = "prom-analytics"
# The disk rules judge this machine's disks over hours, not the stages: they keep their `for:`.
MACHINE_RULES = ("ShouwangDiskFillingUp", "ShouwangDiskLow")


def rules_for_the_test(directory: Path) -> Path:
    """alerts.yml as the test runs it: every stage rule's ``for:`` at 1 s, stuck after
    :data:`STUCK_S` rather than 60 s."""
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for r in group["rules"]:
            if r["alert"] == "ShouwangStageStuck":
                r["expr"], n = re.subn(r"\) > 60\b", f") > {STUCK_S:g}", r["expr"])
                assert n == 2, r["expr"]
            if r["alert"] not in MACHINE_RULES:
                r["for"] = "1s"
    path = directory / "alerts.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


class Prometheus:
    """A real Prometheus on loopback, scraping ``targets`` (job: port) every second."""

    def __init__(self, directory: Path, targets: dict[str, int]) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            pytest.fail("prometheus is not installed (apt-get install prometheus)")
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(rules_for_the_test(directory))],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as f:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=f,
                stderr=f,
            )

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"prometheus exited: {self.log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The one value of ``expr`` now (None: no series)."""
        found = self.query(expr)
        assert len(found) <= 1, (expr, found)
        return float(found[0]["value"][1]) if found else None

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        return [a for a in self.get("/api/v1/alerts")["alerts"] if a["state"] == state]

    def firing(self, name: str, **labels: str) -> bool:
        return any(
            a["labels"]["alertname"] == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
            for a in self.alerts()
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start(name: str, args: list[str], env: dict[str, str], directory: Path) -> Running:
    log = directory / f"{name}.log"
    with log.open("wb") as f:
        return Running(name, subprocess.Popen(shouwang(*args), env=env, stdout=f, stderr=f), log)


def until(check: Callable[[], object], timeout_s: float, what: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout_s} s: {what() if callable(what) else what}")


def health(*stages: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shouwang("health", *(a for s in stages for a in ("--stage", s))),
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def panel_queries() -> list[tuple[str, str]]:
    (placed,) = platform_dashboards(stuck_after_s=STUCK_S)
    return [
        (f"{p.title} / {q.ref_id}", q.sql.replace("$__rate_interval", RATE))
        for p in placed.dashboard.panels
        if isinstance(p, Panel)
        for q in p.queries
    ]


# What each stage's endpoint must carry, and the sign that it moves.
KEY_SERIES = {
    "ingest": (
        "shouwang_ingest_messages_total",
        "shouwang_ingest_readings_total",
        "shouwang_ingest_flush_seconds_count",
        "shouwang_ingest_flush_rows_count",
        "shouwang_ingest_broker_connected",
        "shouwang_database_size_bytes",
    ),
    "analytics": (
        "shouwang_analytics_feed_lag_seconds",
        "shouwang_analytics_tick_seconds_count",
        "shouwang_analytics_open_alarms",
        "shouwang_analytics_alarms_opened_total",
    ),
    "notify": (
        "shouwang_notify_outbox_backlog",
        "shouwang_notify_outbox_oldest_seconds",
        "shouwang_notify_deliveries_total",
        "shouwang_notify_delivery_seconds_count",
    ),
    "api": (
        "shouwang_api_requests_total",
        "shouwang_api_request_seconds_count",
        "shouwang_db_pool_connections",
    ),
    "gateway": (
        "shouwang_gateway_polls_total",
        "shouwang_gateway_buffer_entries",
        "shouwang_gateway_buffer_bytes",
        "shouwang_gateway_published_total",
        "shouwang_gateway_acknowledged_total",
        "shouwang_gateway_dropped_total",
        "shouwang_gateway_broker_connected",
    ),
}
COMMON = (
    "shouwang_stage_info",
    "shouwang_stage_heartbeat_timestamp_seconds",
    "shouwang_stage_progress_total",
    "shouwang_stage_last_progress_timestamp_seconds",
    "shouwang_stage_pending",
    "shouwang_disk_free_bytes",
    "shouwang_disk_total_bytes",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
)
MOVING = {
    "ingest readings": f"sum(rate(shouwang_ingest_readings_total[{RATE}]))",
    "ingest progress": f'sum(rate(shouwang_stage_progress_total{{stage="ingest"}}[{RATE}]))',
    "analytics progress": f'sum(rate(shouwang_stage_progress_total{{stage="analytics"}}[{RATE}]))',
    "analytics ticks": f"sum(rate(shouwang_analytics_tick_seconds_count[{RATE}]))",
    "notify deliveries": 'sum(shouwang_notify_deliveries_total{outcome="accepted"})',
    "api requests": 'sum(shouwang_api_requests_total{route="/v1/devices",status="401"})',
    "gateway polls answered": f'sum(rate(shouwang_gateway_polls_total{{outcome="ok"}}[{RATE}]))',
    "gateway entries acknowledged": f"sum(rate(shouwang_gateway_acknowledged_total[{RATE}]))",
    "gateway progress": f'sum(rate(shouwang_stage_progress_total{{stage="gateway"}}[{RATE}]))',
    "gateway connected": "sum(shouwang_gateway_broker_connected)",
}


def missing_now(prom: Prometheus) -> list[str]:
    """What the healthy platform must show and does not yet."""
    out = []
    for stage, names in KEY_SERIES.items():
        for name in (*COMMON, *names):
            if not prom.query(f'{name}{{job="shouwang-{stage}"}}'):
                out.append(f"{stage}: {name}")
    for what, expr in MOVING.items():
        if not (prom.value(expr) or 0) > 0:
            out.append(f"{what} ({expr}) not above 0")
    out.extend(
        f"panel {title}: no data ({expr})"
        for title, expr in panel_queries()
        if not prom.query(expr)
    )
    return out


def test_prometheus_sees_the_stages_and_the_alert_rules_judge_them(
    settings: Settings,
    db: Conn,
    lift: Lift,  # noqa: F811
    receiver: SlowReceiver,  # noqa: F811
    broker: Broker,
    county: tuple[County, dict[str, str]],
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],  # noqa: F811
    tmp_path: Path,
) -> None:
    t0 = time.monotonic()
    shipped = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    jobs = {c["job_name"] for c in shipped["scrape_configs"]}
    assert jobs == {f"shouwang-{stage}" for stage in STAGES}, "the jobs the test scrapes"
    s = settings.model_copy(update={"analytics_client_id": ANALYTICS_ID})
    ports = {stage: free_port() for stage in STAGES}
    api_port = free_port()
    env = (
        settings_env(s)
        | LOCAL_ENV
        | {f"SHOUWANG_METRICS_PORT_{stage.upper()}": str(p) for stage, p in ports.items()}
        | {
            "SHOUWANG_HEALTH_STUCK_AFTER_S": f"{STUCK_S:g}",
            "SHOUWANG_ANALYTICS_CLIENT_ID": ANALYTICS_ID,
            "SHOUWANG_LOG_FORMAT": "json",
            "COLUMNS": "300",
        }
    )
    keep_feed_for_analytics(s)
    # The site: C01-GW's five Modbus devices on one server, the gateway's config and buffer.
    site = modbus_site(units())
    (tmp_path / "gateway").mkdir()
    site_yaml = site_config(
        tmp_path / "gateway",
        broker,
        county,
        [
            (uid, m, site.port, i + 1)
            for i, (uid, m) in enumerate(zip(DEVICES, MODELS, strict=True))
        ],
        poll_s=GATEWAY_POLL_S,
    )
    procs: dict[str, Running] = {}
    prom: Prometheus | None = None
    lock: psycopg.Connection[Any] | None = None
    device = None
    try:
        procs["ingest"] = start("ingest", ["ingest", "--client-id", INGEST_ID], env, tmp_path)
        procs["analytics"] = start("analytics", ["analytics"], env, tmp_path)
        procs["notify"] = start("notify", ["notify", "--name", "prom-notify"], env, tmp_path)
        procs["api"] = start(
            "api", ["api", "serve", "--host", "127.0.0.1", "--port", str(api_port)], env, tmp_path
        )
        procs["gateway"] = start("gateway", ["gateway", "run", str(site_yaml)], env, tmp_path)
        prom = Prometheus(tmp_path / "prometheus", {f"shouwang-{n}": p for n, p in ports.items()})
        until(prom.ready, 20, "prometheus ready")

        def all_up() -> bool:
            for name, r in procs.items():
                assert r.proc.poll() is None, f"{name} exited: {r.tail()}"
            targets = prom.get("/api/v1/targets")["activeTargets"]
            return len(targets) == len(STAGES) and all(t["health"] == "up" for t in targets)

        until(all_up, 30, lambda: f"targets up: {prom.get('/api/v1/targets')}")
        print(f"\nstages and prometheus up after {time.monotonic() - t0:.1f} s")
        procs["simulator"] = start(
            "simulator",
            ["simulate", "--speed", "1", "--duration", "600"],
            env,
            tmp_path,
        )

        # Traffic: the API's routes, a lift trapping a passenger, one message ingest rejects.
        urllib.request.urlopen(f"http://127.0.0.1:{api_port}/openapi.json", timeout=10).close()
        for path, status in (("/v1/devices", "401"), ("/no/such/route", "404")):
            with pytest.raises(urllib.error.HTTPError, match=status):
                urllib.request.urlopen(f"http://127.0.0.1:{api_port}{path}", timeout=10)
        # (once readings flow: one reject among them is a small share, below the rule's 5 %)
        until(
            lambda: (prom.value(MOVING["ingest readings"]) or 0) > 0,
            30,
            lambda: f"readings stored; simulator: {procs['simulator'].tail()}",
        )
        device = peer(s.mqtt_host, s.mqtt_port, lift.uid, lift.secret)
        event = {"ts": int(time.time() * 1000), "code": TRAPPED, "active": True}
        device.wait_acks(
            [
                device.publish(device_topic(lift.uid, Channel.EVENT), json.dumps(event).encode()),
                device.publish(device_topic(lift.uid, Channel.TELEMETRY), b"{not json"),
            ]
        )

        # Healthy: every stage's series there and moving, every panel has data, nothing fires.
        until(lambda: not missing_now(prom), 45, lambda: "\n".join(missing_now(prom)))
        assert receiver.accepted, "the alarm reached the duty staff's webhook"
        assert (prom.value("sum(shouwang_ingest_rejects_total)") or 0) >= 1
        share = prom.value(
            "sum(rate(shouwang_ingest_rejects_total[5m])) / sum(rate(shouwang_ingest_messages_total[5m]))"
        )
        print(f"rejects: {share:.3%} of the messages")

        # (the alerts the first seconds raised, before the simulator's readings flowed, clear)
        def alerting() -> list[dict[str, str]]:
            return [
                a["labels"]
                for a in prom.get("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] not in MACHINE_RULES or a["state"] == "firing"
            ]

        until(
            lambda: not alerting(),
            10,
            lambda: f"alerts firing or pending while every stage is healthy: {alerting()}",
        )
        time.sleep(3)
        assert alerting() == [], "and they stay quiet"
        judged = health("ingest", "gateway", env=env)
        assert judged.returncode == 0, judged
        assert "gateway running" in judged.stdout + judged.stderr, judged
        # The gateway polled each of its devices, got answers, lost nothing.
        answered = prom.query('shouwang_gateway_polls_total{job="shouwang-gateway",outcome="ok"}')
        assert {r["metric"]["device"] for r in answered} == set(DEVICES)
        assert all(float(r["value"][1]) > 0 for r in answered), answered
        assert prom.value('sum(shouwang_gateway_dropped_total{job="shouwang-gateway"})') == 0
        print(f"healthy and judged so after {time.monotonic() - t0:.1f} s")

        # Stuck while alive: ingest cannot commit, messages keep arriving.
        lock = psycopg.connect(s.database_url)
        lock.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
        locked = time.monotonic()
        until(
            lambda: prom.firing("ShouwangStageStuck", stage="ingest"),
            STUCK_S + 15,
            lambda: f"ShouwangStageStuck for ingest; alerts: {prom.get('/api/v1/alerts')}",
        )
        print(f"ingest judged stuck {time.monotonic() - locked:.1f} s after the lock")
        assert procs["ingest"].proc.poll() is None, "ingest is alive"
        judged = health("ingest", env=env)
        assert judged.returncode == 1 and "ingest stuck" in judged.stdout + judged.stderr, judged
        assert prom.value('up{job="shouwang-ingest"}') == 1, "it answers its scrapes meanwhile"
        lock.rollback()
        lock.close()
        lock = None
        until(
            lambda: (
                not prom.firing("ShouwangStageStuck", stage="ingest")
                and health("ingest", env=env).returncode == 0
            ),
            STUCK_S + 15,
            "ingest recovered after the lock was released",
        )

        # Down: notify and the gateway frozen, their scrapes fail; the others stay up.
        frozen = ("notify", "gateway")

        def judged_down() -> set[str]:
            return {
                a["labels"]["job"].removeprefix("shouwang-")
                for a in prom.alerts()
                if a["labels"]["alertname"] == "ShouwangStageDown"
            }

        for name in frozen:
            procs[name].proc.send_signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            until(
                lambda: judged_down() == set(frozen),
                15,
                lambda: f"ShouwangStageDown for {frozen}; alerts: {prom.get('/api/v1/alerts')}",
            )
            print(
                f"notify and gateway judged down {time.monotonic() - stopped:.1f} s after SIGSTOP"
            )
            assert prom.value('up{job="shouwang-gateway"}') == 0
            judged = health(*frozen, env=env)
            said = judged.stdout + judged.stderr
            assert judged.returncode == 1 and "notify down" in said and "gateway down" in said, (
                judged
            )
        finally:
            for name in frozen:
                procs[name].proc.send_signal(signal.SIGCONT)
        until(
            lambda: not judged_down() and health(*frozen, env=env).returncode == 0,
            15,
            lambda: f"notify and gateway recovered after SIGCONT: {health(*frozen, env=env)}",
        )
        until(
            lambda: (prom.value(MOVING["gateway entries acknowledged"]) or 0) > 0,
            10,
            "the gateway forwards again",
        )
        for name, r in procs.items():
            assert r.proc.poll() is None, f"{name} exited: {r.tail()}"

        # The gateway stops as the gateway tests leave theirs: its devices fall silent, its buffer
        # drains while ingest still runs (no acknowledgement is left queued in C01-GW's session
        # for the next gateway on this broker), and it exits cleanly.
        site.stop()
        until(lambda: held(tmp_path / "gateway" / "buffer.db") == 0, 15, "the buffer drained")
        procs["gateway"].proc.send_signal(signal.SIGTERM)
        assert procs["gateway"].proc.wait(30) == 0, procs["gateway"].tail()
        print(f"done after {time.monotonic() - t0:.1f} s")
    finally:
        if lock is not None:
            lock.rollback()
            lock.close()
        if device is not None:
            device.close()
        for r in procs.values():
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGCONT)
                r.proc.terminate()
        for r in procs.values():
            try:
                r.proc.wait(30)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait(5)
        if prom is not None:
            prom.stop()
        retire_session(ingest_config(s, INGEST_ID))
        retire_analytics_session(s)
