"""Drills: the processes a drill runs, all on loopback. A private Mosquitto of the platform's
configuration (its own directory and port, persistence on, accounts written from the registry),
``shouwang`` stages and the simulator as subprocesses with their logs in the drill's directory,
and an observer that watches what the broker routes (to tie the simulator's data clock to the
wall clock)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import psutil

from broker.files import AUTOSAVE_INTERVAL_S, broker_config
from broker.sync import platform_services, sync
from core.db import Conn
from core.mqtt import new_client
from core.settings import Settings
from core.wire import PREFIX
from shouwang.launch import command

STOP_TIMEOUT_S = 30.0
PLATFORM = "core|ingest|analytics|notify|api|lifecycle|responsibility|broker|simulators"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM), while it runs; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:  # not Linux: the current RSS, sampled
        return float(psutil.Process(pid).memory_info().rss) / 2**20
    except psutil.Error:
        return None


@dataclass
class Proc:
    """A process the drill started: its peak RSS is sampled while it runs (``sample``)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None = None
    peak_mb: float = 0.0
    retired: bool = False  # stopped by the drill on purpose (not expected to run to the end)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        if self.popen.poll() is not None:
            return False
        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def sample(self) -> None:
        rss = peak_rss_mb(self.pid) if self.popen.poll() is None else None
        if rss is not None:
            self.peak_mb = max(self.peak_mb, rss)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Signal this process (only it, by its pid) and wait; SIGKILL it if it does not end."""
        self.sample()
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return int(self.popen.returncode)

    def tail(self, lines: int = 15) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def death(self) -> str:
        """Where a stage that died says it died: the platform's frames of its traceback and the
        exception's line (rich tracebacks are boxes: only these lines are kept)."""
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(errors="replace")
        frames = re.findall(rf"/((?:{PLATFORM})/[\w/]*\.py:\d+ in \w+)", text)
        errors = [
            line.strip()
            for line in text.splitlines()
            if re.match(r"^[A-Z]\w*(Error|Exception|Exit)\b", line.strip())
        ]
        where = " < ".join(reversed(frames[-4:]))
        return f"{errors[-1] if errors else self.tail(3)} at {where}" if where else self.tail(8)

    def log_count(self, text: str) -> int:
        if self.log is None or not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count(text)


def stage_env(
    s: Settings, *, database_url: str, mqtt_port: int, broker_dir: Path
) -> dict[str, str]:
    """The environment that points a ``shouwang`` subprocess at the drill's services, with the
    settings' own credentials (environment variables win over ``shouwang.env``)."""
    env = dict(os.environ)
    env.update(
        {
            "SHOUWANG_STATE_DIR": str(s.state_dir),
            "SHOUWANG_DATABASE_URL": database_url,
            "SHOUWANG_MQTT_HOST": "127.0.0.1",
            "SHOUWANG_MQTT_PORT": str(mqtt_port),
            "SHOUWANG_MQTT_INGEST_PASSWORD": s.mqtt_ingest_password.get_secret_value(),
            "SHOUWANG_MQTT_ADMIN_PASSWORD": s.mqtt_admin_password.get_secret_value(),
            "SHOUWANG_MQTT_ANALYTICS_PASSWORD": s.mqtt_analytics_password.get_secret_value(),
            "SHOUWANG_NOTIFY_MQTT_PASSWORD": s.notify_mqtt_password.get_secret_value(),
            "SHOUWANG_NOTIFY_ACK_SECRET": s.notify_ack_secret.get_secret_value(),
            "SHOUWANG_BROKER_PASSWORD_FILE": str(broker_dir / "passwd"),
            "SHOUWANG_BROKER_ACL_FILE": str(broker_dir / "acl"),
            "SHOUWANG_BROKER_PID_FILE": str(broker_dir / "mosquitto.pid"),
            "COLUMNS": "400",  # the stages' log lines unwrapped, for the counts read from them
        }
    )
    return env


def start_stage(
    name: str, args: list[str], env: dict[str, str], directory: Path, log_name: str = ""
) -> Proc:
    log = directory / f"{log_name or name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            command(*args), env=env, stdout=subprocess.DEVNULL, stderr=out, start_new_session=True
        )
    return Proc(name, popen, log)


def wait_for_log(proc: Proc, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.log_count(text):
            return True
        if not proc.alive():
            return False
        time.sleep(0.1)
    return False


class PrivateBroker:
    """A Mosquitto of the platform's configuration in ``directory``, on its own loopback port,
    with persistence; the accounts are written from the registry before it first starts. Every
    process it has been (restarts and kills) is kept in ``incarnations``."""

    def __init__(
        self, directory: Path, conn: Conn, s: Settings, autosave_s: int = AUTOSAVE_INTERVAL_S
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.autosave_s = autosave_s
        self.incarnations: list[Proc] = []
        directory.mkdir(parents=True, exist_ok=True)
        sync(
            conn,
            platform_services(s),
            passwd=directory / "passwd",
            acl=directory / "acl",
            pid_file=directory / "mosquitto.pid",
            share_group=s.ingest_share_group,
            signal_broker=False,
        )
        (directory / "mosquitto.conf").write_text(
            broker_config(
                host="127.0.0.1",
                port=self.port,
                directory=directory,
                persistence=True,
                autosave_s=autosave_s,
            )
        )

    @property
    def proc(self) -> Proc:
        return self.incarnations[-1]

    def start(self) -> None:
        popen = subprocess.Popen(
            ["mosquitto", "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.incarnations.append(
            Proc(f"broker-{len(self.incarnations)}", popen, self.directory / "mosquitto.log")
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if popen.poll() is not None:
                    raise SystemExit(f"mosquitto exited:\n{self.proc.tail()}") from None
                time.sleep(0.05)
        raise SystemExit("mosquitto did not start listening within 10 s")

    def sample(self) -> None:
        self.proc.sample()

    def peak_mb(self) -> float:
        return max((p.peak_mb for p in self.incarnations), default=0.0)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        self.proc.stop(sig)


@dataclass
class Observer:
    """Subscribes (QoS 0, admin account) to the devices' telemetry and gateways' batches on the
    drill's broker, and keeps the newest data time routed, so that a moment on the wall clock
    (a kill, the end of an outage) has its time on the simulator's data clock."""

    host: str
    port: int
    username: str
    password: str
    messages: int = 0
    latest_ts_ms: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: mqtt.Client | None = None

    def start(self) -> None:
        client, props = new_client("drill-observer", self.username, self.password)
        client.on_connect = lambda c, *_: c.subscribe(
            [(f"{PREFIX}/d/+/telemetry", 0), (f"{PREFIX}/g/+/batch", 0)]
        )
        client.on_message = self._on_message
        client.reconnect_delay_set(1, 2)
        client.connect_async(self.host, self.port, properties=props)
        client.loop_start()
        self._client = client

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            body = orjson.loads(msg.payload)
        except orjson.JSONDecodeError:
            return
        samples = body.get("samples", [body]) if isinstance(body, dict) else []
        ts = [s["ts"] for s in samples if isinstance(s, dict) and isinstance(s.get("ts"), int)]
        with self._lock:
            self.messages += 1
            if ts:
                self.latest_ts_ms = max(self.latest_ts_ms, *ts)

    def mark(self) -> tuple[int, int]:
        """(messages routed so far, newest data time routed, ms)."""
        with self._lock:
            return self.messages, self.latest_ts_ms

    def close(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
