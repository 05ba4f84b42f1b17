"""`shouwang bench gateway` in a short run: its own broker, database, ingest, Modbus servers and
gateway process, figures printed, everything removed after."""

from __future__ import annotations

import re
import subprocess

import pytest
from psycopg.conninfo import conninfo_to_dict

from core.db import connect
from core.settings import Settings
from tests.conftest import settings_env, shouwang


def test_bench_gateway_prints_its_figures_and_cleans_up(settings: Settings) -> None:
    env = settings_env(settings) | {"COLUMNS": "200"}
    args = [
        "bench",
        "gateway",
        "--devices",
        "20",
        "--interval",
        "0.5",
        "--seconds",
        "3",
        "--outage",
        "3",
        "--reference",
        "5000",
        "--per-port",
        "8",
        "--batch-interval",
        "0.2",
    ]
    out = subprocess.run(
        shouwang(*args), env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert out.returncode == 0, out.stderr[-4000:] + out.stdout
    text = " ".join(out.stdout.split())
    assert re.search(r"batched ingest \(50/msg\): [\d,]+ readings/s", text), text
    m = re.search(
        r"polling: ([\d,]+) devices/s, ([\d,]+) registers/s \(([\d,]+) requests/s\),"
        r" gateway CPU (\d+)% of a core",
        text,
    )
    assert m is not None, text
    devices_per_s, registers_per_s, requests_per_s = (
        float(m.group(i).replace(",", "")) for i in (1, 2, 3)
    )
    # 20 devices every 0.5 s; two of each ten are fire-water transmitters (9 registers in 2
    # requests), one a pump room (18 in 3), one a water-quality analyser (5 in 1), six
    # residual-current monitors (2 in 1): 5.3 registers and 1.5 requests a device
    assert 30 <= devices_per_s <= 42
    assert registers_per_s / devices_per_s == pytest.approx(5.3, abs=0.5)
    assert requests_per_s / devices_per_s == pytest.approx(1.5, abs=0.15)
    m = re.search(r"outage of 3 s: ([\d,]+) entries \(([\d,]+) readings\) held; drained", text)
    assert m is not None, text
    assert int(m.group(1).replace(",", "")) >= 40 and int(m.group(2).replace(",", "")) > 0
    for row in ("gateway peak RSS", "ratio to batched ingest", "devices polled per second"):
        assert row in text, text
    name = f"{conninfo_to_dict(settings.database_url)['dbname']}_bench_gw"
    with connect(settings.database_url, autocommit=True) as db:
        left = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left is None, "the scratch database was left behind"
    assert not list(settings.state_dir.glob("bench-gateway-*")), "the run's files were left"
