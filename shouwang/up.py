"""The command line: the platform's main job for a demo. Ingest workers, analytics, notify, the
HTTP API and the simulator together, with a status line every few seconds, until Ctrl-C stops
everything cleanly. The simulator injects a fault on the demo firm's devices every
``SHOUWANG_DEMO_FAULT_EVERY_S`` (``simulators.demo``), for the duty page to show. The county's
Modbus-class devices (pump rooms, fire-water transmitters, water-quality analysers,
residual-current monitors) answer on Modbus servers, one per community, and reach the platform
through the real site gateway program, one per community (``shouwang/demo_sites.py``)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import datetime

from psycopg.conninfo import conninfo_to_dict
from rich.console import Console

from core.audit import cli_actor
from core.db import connect
from core.holiday_store import calendar_in_force
from core.settings import Settings
from core.severity import Severity
from lifecycle.platform import PlatformKind, raise_alarm
from shouwang.demo_commands import duty_url, logins_file
from shouwang.demo_sites import DemoSites, Uplink, attach_field_devices, field_classes
from shouwang.status import snapshot, stage_states, status_line
from shouwang.supervisor import Supervisor
from simulators.demo import demo_firm, firm_devices
from simulators.stream import main as simulate

log = logging.getLogger("shouwang.demo")


def main(s: Settings, *, speed: float, workers: int) -> None:
    console = Console()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    services = Supervisor(
        {
            "ingest": ["ingest", "--workers", str(workers)],
            "analytics": ["analytics"],
            "notify": ["notify", "--name", "notify-0"],
            "api": ["api", "serve"],
        }
    )
    with connect(s.database_url, actor=cli_actor()) as conn:
        # before ingest loads the registry: it accepts these devices' readings from the gateway
        moved = attach_field_devices(conn, field_classes())
        if moved:
            log.info("%d Modbus-class devices put behind their site's gateway", len(moved))
        firm = demo_firm(conn)
        faulty = firm_devices(conn, firm) if firm is not None else None
    services.start()
    sim = threading.Thread(
        target=simulate,
        kwargs={
            "s": s,
            "speed": speed,
            "duration": None,
            "start_ago": 0.0,
            "communities": [],
            "limit": None,
            "record": None,
            "seed": 7,
            "stop_event": stop,
            "fault_every_s": s.demo_fault_every_s,
            "fault_devices": faulty,
            "field_sites": DemoSites(
                Uplink(s.mqtt_host, s.mqtt_port, s.mqtt_tls, s.mqtt_ca_file),
                s.state_dir / "gateways",
            ),
        },
        name="simulator",
    )
    sim.start()
    db = conninfo_to_dict(s.database_url)
    console.rule("[bold]shouwang is running")
    console.print(
        f"database  postgresql://{db.get('user')}@{db.get('host')}:{db.get('port')}/{db.get('dbname')}"
        f" (password in {s.state_dir / 'shouwang.env'})\n"
        f"broker    mqtt://{s.mqtt_host}:{s.mqtt_port} (watch: mosquitto_sub -p {s.mqtt_port}"
        f" -u {s.mqtt_admin_username} -P <SHOUWANG_MQTT_ADMIN_PASSWORD> -t 'sw/v1/#' -v)\n"
        f"API       http://{s.api_host}:{s.api_port}/docs (tokens: .venv/bin/shouwang api token issue)\n"
        "status    .venv/bin/shouwang status      stop: Ctrl-C"
    )
    logins = logins_file(s)
    console.print(
        f"duty page {duty_url(s)}"
        + (f"  logins: {logins}" if logins.exists() else "  (logins: shouwang demo roster)")
        + f"\nconsole   {duty_url(s).removesuffix('/duty')}/console (the firm manager's login)"
        + (
            f"\nfaults    one every {s.demo_fault_every_s:.0f} s on firm {firm}'s devices"
            f" (SHOUWANG_DEMO_FAULT_EVERY_S; the first in a minute)"
            if s.demo_fault_every_s > 0 and firm is not None
            else ""
        ),
        markup=False,
        highlight=False,
    )
    try:
        with connect(s.database_url, autocommit=True) as conn:
            calendar = calendar_in_force(conn, s.work_calendar)
            for w in calendar.warnings(datetime.now(calendar.tz).date()):
                log.warning("%s", w)
            last_status = time.monotonic()
            while not stop.wait(1.0):
                down_before = {p.name for p in services.exited()}
                services.poll()  # a stage that died is started again, with a backoff
                for p in services.exited():
                    if p.name not in down_before:  # died just now: the platform operator hears
                        raise_alarm(
                            conn,
                            PlatformKind.STAGE_RESTARTED,
                            p.name,
                            severity=Severity.P2,
                            detail={"exit_status": p.last_exit, "restarts": p.restarts},
                        )
                if time.monotonic() - last_status < 10.0:
                    continue
                last_status = time.monotonic()
                if not sim.is_alive():
                    log.error("the simulator stopped; stopping")
                    break
                snap = snapshot(conn)
                calendar = calendar_in_force(conn, calendar)
                notes = [w.short for w in calendar.warnings(datetime.now(calendar.tz).date())]
                if trouble := services.summary():
                    notes.append(trouble)
                stages = stage_states(s, workers=workers)
                console.print(
                    status_line(snap, clock=time.strftime("%H:%M:%S"), notes=notes, stages=stages)
                )
    finally:
        stop.set()
        sim.join(30)
        services.stop()
        console.print("stopped cleanly")
