"""The Modbus connector against real pymodbus servers: TCP on loopback and RTU over a
pseudo-terminal pair; a device that stops answering does not stall the others."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from gateway.connector import Connector, Poll
from sites.config import DeviceConfig, Serial, Tcp
from sites.profiles import shipped_profiles
from tests.conftest import free_port
from tests.gateway.modbus_servers import (
    load,
    pty_pair,
    rtu_server,
    silent_server,
    tcp_server,
    words_for,
)

PROFILES = shipped_profiles()
PUMP_RAW = {
    "tank_level": 350,  # 3.50 m
    "inlet_pressure": 250,
    "zone_low_pressure": 400,
    "zone_mid_pressure": 500,
    "zone_high_pressure": 600,
    "room_temp": -52,  # -5.2 °C
    "room_humidity": 655,
    "voltage": 3801,
    "pump1_current": 12.5,
    "pump2_current": 0.0,
    "flow": 33.25,
    "energy": 123_456_789,  # 12,345,678.9 kWh, low word first
    "pump1_run": 1,
    "pump1_fault": 0,
    "pump2_run": 0,
    "pump2_fault": 1,
    "flood": 1,
}


def device(uid: str, profile: str, link: Tcp | Serial, unit: int, **kw: float) -> DeviceConfig:
    return DeviceConfig(
        uid,
        PROFILES[profile],
        link,
        unit,
        kw.get("poll_s", 0.1),
        kw.get("timeout_s", 0.3),
        int(kw.get("retries", 0)),
    )


async def run_for(connector: Connector, seconds: float) -> None:
    task = asyncio.create_task(connector.run())
    await asyncio.sleep(seconds)
    connector.stop()
    await asyncio.wait_for(task, 5)


def test_tcp_poll_decodes_a_pump_room_controller() -> None:
    async def main() -> list[Poll]:
        port = free_port()
        polls: list[Poll] = []
        async with tcp_server(port, [1]) as server:
            await load(server, 1, words_for(PROFILES["pump-room-controller"], PUMP_RAW))
            c = Connector(
                (device("C01-PR", "pump-room-controller", Tcp("127.0.0.1", port), 1),), polls.append
            )
            await run_for(c, 0.35)
        return polls

    polls = asyncio.run(main())
    assert 2 <= len(polls) <= 5
    got = polls[0].decoded
    assert got is not None, polls[0].error
    assert got.values == pytest.approx(
        {
            "tank_level": 3.5,
            "inlet_pressure": 0.25,
            "zone_low_pressure": 0.4,
            "zone_mid_pressure": 0.5,
            "zone_high_pressure": 0.6,
            "room_temp": -5.2,
            "room_humidity": 65.5,
            "voltage": 380.1,
            "pump1_current": 12.5,
            "pump2_current": 0.0,
            "flow": 33.25,
            "energy": 12_345_678.9,
            "pump1_run": 1,
            "pump1_fault": 0,
            "pump2_run": 0,
            "pump2_fault": 1,
            "flood": 1,
        }
    )
    assert got.discrete == {"pump1_fault": 0, "pump2_fault": 1, "flood": 1}
    assert all(b.ts_ms - a.ts_ms >= 90 for a, b in itertools.pairwise(polls))


def test_a_silent_device_does_not_stall_the_others() -> None:
    async def main() -> list[Poll]:
        good_port, silent_port, closed_port = free_port(), free_port(), free_port()
        polls: list[Poll] = []
        async with tcp_server(good_port, [1, 2]), silent_server(silent_port):
            devices = (
                device("EF1", "residual-current-monitor", Tcp("127.0.0.1", good_port), 1),
                device("EF2", "residual-current-monitor", Tcp("127.0.0.1", good_port), 2),
                device("EF3", "residual-current-monitor", Tcp("127.0.0.1", good_port), 7),
                device(
                    "EF4", "residual-current-monitor", Tcp("127.0.0.1", silent_port), 1, retries=1
                ),
                device("EF5", "residual-current-monitor", Tcp("127.0.0.1", closed_port), 1),
            )
            await run_for(Connector(devices, polls.append), 1.0)
        return polls

    t0 = time.monotonic()
    polls = asyncio.run(main())
    assert time.monotonic() - t0 < 3
    by = {
        uid: [p for p in polls if p.device.uid == uid]
        for uid in ("EF1", "EF2", "EF3", "EF4", "EF5")
    }
    assert len(by["EF1"]) >= 6
    assert len(by["EF2"]) >= 6
    assert all(p.decoded is not None for p in by["EF1"] + by["EF2"])
    assert by["EF3"] and all(p.decoded is None and "unit 7" in p.error for p in by["EF3"])
    # two attempts of 0.3 s each, then the next poll: at most a few in a second
    assert 1 <= len(by["EF4"]) <= 2
    assert all(p.decoded is None for p in by["EF4"])
    assert by["EF5"] and all(p.decoded is None and "cannot connect" in p.error for p in by["EF5"])


def test_rtu_over_a_serial_line_with_several_units(tmp_path: Path) -> None:
    async def main(gw_end: str, dev_end: str) -> list[Poll]:
        polls: list[Poll] = []
        async with rtu_server(dev_end, [3, 4]) as server:
            prof = PROFILES["water-quality-analyser"]
            await load(
                server,
                3,
                words_for(
                    prof, {"residual_chlorine": 350, "turbidity": 0.5, "ph": 712, "water_temp": 145}
                ),
            )
            await load(
                server,
                4,
                words_for(
                    PROFILES["residual-current-monitor"],
                    {"residual_current": 120, "cable_temp": 315},
                ),
            )
            link = Serial(gw_end, 115200, "N", 8, 1)
            devices = (
                device("WQ1", "water-quality-analyser", link, 3, poll_s=0.2, timeout_s=0.5),
                device("EF1", "residual-current-monitor", link, 4, poll_s=0.2, timeout_s=0.5),
            )
            await run_for(Connector(devices, polls.append), 0.7)
        return polls

    with pty_pair(tmp_path) as (a, b):
        polls = asyncio.run(main(a, b))
    wq = [p for p in polls if p.device.uid == "WQ1"]
    ef = [p for p in polls if p.device.uid == "EF1"]
    assert len(wq) >= 2 and len(ef) >= 2
    assert wq[0].decoded is not None, wq[0].error
    assert wq[0].decoded.values == pytest.approx(
        {"residual_chlorine": 0.35, "turbidity": 0.5, "ph": 7.12, "water_temp": 14.5}
    )
    assert ef[-1].decoded is not None, ef[-1].error
    assert ef[-1].decoded.values == pytest.approx({"residual_current": 120, "cable_temp": 31.5})
