"""The simulator's silenced devices (``shouwang simulate --silence UID --silence-after S``): a
device that really goes offline, for drills. It publishes nothing from that simulated time on
while every other device goes on; a device that is not simulated is refused before anything
connects."""

from __future__ import annotations

import math
import subprocess
import time

import pytest

from core.errors import ConfigError
from core.settings import Settings
from simulators.county import County
from simulators.fleet import Fleet
from simulators.run import SimClock, build_devices, run
from simulators.stream import load_rows, silence
from tests.conftest import settings_env, shouwang


def test_a_silenced_device_publishes_nothing_from_its_time_on_and_the_rest_goes_on(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    devices = build_devices(load_rows(settings.database_url, [c.communities[0].code], None), 3)
    victim = devices[0].uid
    start = time.time() - 600
    faults = silence(devices, [victim], start + 120)
    assert [(f.device_uid, f.start, f.end, f.transport) for f in faults] == [
        (victim, start + 120, math.inf, "offline")
    ]
    published: list[tuple[str, int]] = []
    fleet = Fleet(settings.mqtt_host, settings.mqtt_port, client_prefix="silence-test")
    try:
        gateways = {d.gateway for d in devices if d.gateway}
        for uid in sorted({d.uid for d in devices if d.gateway is None} | gateways):
            fleet.add(uid, secrets[uid], is_gateway=uid in gateways)
        assert fleet.wait_connected() == []
        run(
            fleet,
            devices,
            SimClock(start=start, speed=0),
            until=start + 300,
            faults=faults,
            record=lambda uid, ts, _values: published.append((uid, ts)),
        )
        fleet.drain()
    finally:
        fleet.close()
    mine = [ts for uid, ts in published if uid == victim]
    assert mine, "it reported before its silence"
    assert max(mine) < (start + 120) * 1000
    later = {uid for uid, ts in published if ts >= (start + 120) * 1000}
    assert later == {d.uid for d in devices} - {victim}


def test_a_device_that_is_not_simulated_cannot_be_silenced(
    settings: Settings, county: tuple[County, dict[str, str]]
) -> None:
    c, _secrets = county
    devices = build_devices(load_rows(settings.database_url, [c.communities[0].code], None), 3)
    with pytest.raises(ConfigError, match="NOPE-1: not among the simulated devices"):
        silence(devices, [devices[0].uid, "NOPE-1"], 0.0)
    other = c.communities[1].devices[0].uid
    result = subprocess.run(
        shouwang(
            "simulate",
            "--community",
            c.communities[0].code,
            "--duration",
            "5",
            "--silence",
            other,
        ),
        env={**settings_env(settings), "COLUMNS": "400"},
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"{other}: not among the simulated devices" in result.stderr + result.stdout
    result = subprocess.run(
        shouwang("simulate", "--duration", "5", "--silence-after", "-1"),
        env={**settings_env(settings), "COLUMNS": "400"},
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--silence-after: give simulated seconds, 0 or more" in result.stderr + result.stdout
