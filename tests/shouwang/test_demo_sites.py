"""The demo's gateway path end to end on the real services: a community's Modbus-class devices
answer on a real pymodbus server, the real gateway code polls them with the gateway's own broker
credential, ingest stores their readings, and a pump fault written into the pump-room controller's
status word becomes the pump fault event and alarm."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from analytics.__main__ import build
from analytics.service import Analytics
from core.db import Conn
from core.settings import Settings
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from shouwang.demo_sites import (
    FieldNetwork,
    Uplink,
    attach_field_devices,
    field_classes,
    plan_sites,
)
from simulators.county import County
from simulators.faults import Fault
from simulators.run import SimClock, build_devices
from simulators.stream import load_rows

SITE = "C02"
ERRORS: list[BaseException] = []


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except BaseException as e:  # surfaced at teardown: a dead stage fails the test
            ERRORS.append(e)

    t = threading.Thread(target=guarded, name=name, daemon=True)
    t.start()
    return t


@pytest.fixture
def attached(db: Conn) -> Iterator[list[str]]:
    """The site's pump room and fire-water devices put behind its gateway for the test (the
    registry as the demo has it), as they were after."""
    moved = attach_field_devices(db, field_classes(), [SITE])
    try:
        yield moved
    finally:
        db.execute("UPDATE devices SET gateway_id = NULL WHERE uid = ANY(%s)", (moved,))


@pytest.fixture
def platform(settings: Settings, attached: list[str]) -> Iterator[Analytics]:
    """Ingest and analytics in threads of the test, started after the registry change."""
    ingest = Consumer(config_from(settings, "site-gw-ingest"), settings.database_url)
    analytics = build(settings.model_copy(update={"analytics_client_id": "site-gw-analytics"}))
    threads = [_thread(ingest.run, "ingest"), _thread(analytics.run, "analytics")]
    assert ingest._connected.wait(10)
    assert analytics._connected.wait(10)
    yield analytics
    ingest.stop()
    analytics.stop()
    for t in threads:
        t.join(30)
    ingest.conn.close()
    assert not ERRORS, ERRORS
    retire_session(config_from(settings, "site-gw-ingest"))
    retire_session(
        replace(
            config_from(settings, "site-gw-analytics"),
            username=settings.mqtt_analytics_username,
            password=settings.mqtt_analytics_password.get_secret_value(),
        )
    )


def wait_for(what: str, check: Callable[[], bool], timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.25)


def test_modbus_devices_reach_the_platform_through_the_real_gateway(
    settings: Settings,
    db: Conn,
    county: tuple[County, dict[str, str]],
    attached: list[str],
    platform: Analytics,
    tmp_path: Path,
) -> None:
    assert f"{SITE}-PR" in attached and f"{SITE}-B01-FW" in attached
    devices = build_devices(load_rows(settings.database_url, [SITE], None), seed=3)
    for d in devices:
        d.interval_s = 1.0  # fast-forward the polls: a second, not the county's ten
    now = time.time()
    faults = [
        Fault(
            "pump_failure",
            f"{SITE}-PR",
            now + 3,
            now + 600,
            None,
            values={"pump1_fault": 1.0, "pump1_current": 0.0},
        ),
        Fault("device_offline", f"{SITE}-B01-EF2", now + 3, now + 600, None, transport="offline"),
    ]
    sites = plan_sites(
        devices,
        faults,
        secrets=county[1],
        folder=tmp_path / "gateways",
        uplink=Uplink(settings.mqtt_host, settings.mqtt_port),
    )
    assert [s.gateway for s in sites] == [f"{SITE}-GW"]
    modbus = {d.uid for d in sites[0].modbus.devices}
    assert modbus == {d.uid for d in devices if d.device_class in field_classes()}
    ids = {
        str(u): int(i)
        for u, i in db.execute(
            "SELECT uid, id FROM devices WHERE uid = ANY(%s)", (sorted(modbus),)
        ).fetchall()
    }
    db.execute("DELETE FROM readings WHERE device_id = ANY(%s)", (list(ids.values()),))
    db.execute("DELETE FROM events WHERE device_id = ANY(%s)", (list(ids.values()),))

    network = FieldNetwork(sites, SimClock(start=now, speed=1.0))
    network.start()
    try:

        def heard_from() -> set[str]:
            rows = db.execute(
                "SELECT DISTINCT d.uid FROM readings r JOIN devices d ON d.id = r.device_id"
                " WHERE r.device_id = ANY(%s)",
                (list(ids.values()),),
            ).fetchall()
            return {str(r[0]) for r in rows}

        wait_for("every Modbus device's readings stored", lambda: heard_from() == modbus)

        def pump_fault_event() -> bool:
            row = db.execute(
                "SELECT count(*) FROM events WHERE device_id = %s AND code = 'PUMP_FAULT'"
                " AND active",
                (ids[f"{SITE}-PR"],),
            ).fetchone()
            return bool(row and row[0])

        wait_for("the pump fault event", pump_fault_event)
        # the event came with the first poll that read the fault bit, and so did the reading
        fault_readings = db.execute(
            "SELECT r.value FROM readings r JOIN metrics m ON m.id = r.metric_id"
            " WHERE r.device_id = %s AND m.name = 'pump1_fault' AND r.ts >= (SELECT min(ts)"
            " FROM events WHERE device_id = %s AND code = 'PUMP_FAULT' AND active)",
            (ids[f"{SITE}-PR"], ids[f"{SITE}-PR"]),
        ).fetchall()
        assert fault_readings and {float(v) for (v,) in fault_readings} == {1.0}
        before = db.execute(
            "SELECT DISTINCT r.value FROM readings r JOIN metrics m ON m.id = r.metric_id"
            " WHERE r.device_id = %s AND m.name = 'pump1_fault' AND r.ts < to_timestamp(%s)",
            (ids[f"{SITE}-PR"], now + 3),
        ).fetchall()
        assert [float(v) for (v,) in before] == [0.0]

        def pump_alarm() -> bool:
            row = db.execute(
                "SELECT count(*) FROM alarms WHERE device_id = %s AND event_code = 'PR.PUMP_FAULT'",
                (ids[f"{SITE}-PR"],),
            ).fetchone()
            return bool(row and row[0])

        wait_for("the pump fault alarm", pump_alarm)

        def offline_reported() -> bool:
            row = db.execute(
                "SELECT online, reason FROM device_status WHERE device_id = %s"
                " ORDER BY ts DESC LIMIT 1",
                (ids[f"{SITE}-B01-EF2"],),
            ).fetchone()
            return row is not None and row[0] is False

        wait_for("the silent device reported offline by the gateway", offline_reported)
        gw = network.gateways[0]
        assert gw.collector.unusable_values == 0
        assert gw.connector.unexpected == 0
    finally:
        network.stop()

    def last_word() -> bool:
        row = db.execute(
            "SELECT s.online, s.reason, s.devices FROM gateway_state s"
            " JOIN gateways g ON g.id = s.gateway_id WHERE g.uid = %s",
            (f"{SITE}-GW",),
        ).fetchone()
        return row is not None and tuple(row) == (False, "shutdown", len(modbus))

    wait_for("the gateway's clean stop, with its state, stored", last_word, timeout=15)
