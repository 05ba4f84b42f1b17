"""`shouwang bench capacity` in a short run: two tiny steps on its own scratch database and
private broker, every stage a real process; its table and result line printed, nothing left."""

from __future__ import annotations

import itertools
import re
import socket
import subprocess

import psutil
from psycopg.conninfo import conninfo_to_dict

from bench.capacity_figures import Step, communities_for, device_steps, result_line, shares
from core.db import connect
from core.settings import Settings
from tests.conftest import settings_env, shouwang

NUMBER = r"[\d,.]+"
CPU = ("ingest", "simulator")


def test_steps_grow_by_the_factor_and_end_at_the_maximum() -> None:
    assert device_steps(2000, 1.5, 10_000) == [2000, 3000, 4500, 6800, 10_000]
    assert device_steps(100, 2, 200) == [100, 200]
    assert communities_for([100, 90, 110], 150) == 2


def test_a_count_breaks_only_when_every_run_of_it_missed() -> None:
    def step(devices: int, api_p99: float) -> Step:
        s = Step(devices, faults=2, alarm_ms=[300, 400], notify_ms=[400, 500])
        s.ingest_lag_ms, s.api_p99_ms, s.api_requests = [200.0], api_p99, 100
        s.cpu = {"ingest": 0.1, "simulator": 0.2}
        return s

    slow_then_fine = [step(2000, 20), step(3000, 250), step(3000, 30), step(4500, 30)]
    slow_then_fine.append(step(6800, 500))
    slow_then_fine.append(step(6800, 400))
    slow_then_fine[-1].notify_ms = [400]  # one notification never came
    line = result_line(slow_then_fine, CPU, "")
    assert line.startswith("capacity: 4,500 devices met every objective;"), line
    assert "first broken at 6,800 devices: API p99 (5.0× its target)" in line, line
    assert "CPU at 4,500 devices: ingest 10%, simulator 20%" in line, line
    assert [n for n, _ in slow_then_fine[-1].broken()] == [
        "publish → P0 notification p99",
        "API p99",
    ]
    assert result_line([step(2000, 20)], CPU, "reached --max-devices").endswith(
        "none broken (reached --max-devices); CPU at 2,000 devices: ingest 10%, simulator 20%"
    )


def test_cpu_shares_are_of_the_whole_machine() -> None:
    assert shares({"ingest": 10.0}, {"ingest": 40.0, "api": 6.0}, 60.0, 2) == {
        "ingest": 0.25,
        "api": 0.05,
    }


def test_bench_capacity_prints_its_curve_and_cleans_up(settings: Settings) -> None:
    env = settings_env(settings) | {"COLUMNS": "250"}
    args = ["bench", "capacity", "--start", "100", "--factor", "2", "--max-devices", "200"]
    args += ["--step-seconds", "3", "--warmup", "1", "--max-seconds", "100"]
    out = subprocess.run(
        shouwang(*args), env=env, capture_output=True, text=True, timeout=150, check=False
    )
    assert out.returncode == 0, out.stderr[-4000:] + out.stdout
    text = " ".join(out.stdout.split())
    # one row per step: devices, readings/s, ingest lag, alarm and notification p99 (faults
    # answered / raised), API p99, CPU shares, verdict; then the curve and the result line
    rows = re.findall(
        rf"│ +(\d+) │ +({NUMBER}) │ +({NUMBER}) \(p50 {NUMBER}\) │ +({NUMBER}) \((\d+)/(\d+)\) │"
        rf" +({NUMBER}) \((\d+)/(\d+)\) │ +({NUMBER}) \(p50 {NUMBER}\) │((?: +\d+% │){{9}}) +(pass[^│]*|FAIL[^│]*) │",
        text,
    )
    # Each step printed as it ends and again in the curve: two steps, and a step that missed an
    # objective on the shared machine run once more (--retries) right after it.
    n = len(rows) // 2
    assert len(rows) == 2 * n and rows[n:] == rows[:n], text
    steps = rows[:n]
    assert list(dict.fromkeys(r[0] for r in steps)) == ["100", "200"], steps
    for before, again in itertools.pairwise(steps):
        if again[0] == before[0]:
            assert before[11].startswith("FAIL") and "run again" in again[11], steps
    for r in steps:
        assert float(r[1].replace(",", "")) > 0, r  # readings were stored
        assert 0 < int(r[5]) == int(r[4]) == int(r[7]), r  # every fault alarmed and notified
    m = re.search(
        r"capacity: (?:([\d,]+) devices met every objective|no step met every objective);"
        r" (?:none broken \(([^)]*)\)|first broken at ([\d,]+) devices: ([^;]+));"
        r" CPU at ([\d,]+) devices: ingest (\d+)%, analytics (\d+)%, notify (\d+)%, api (\d+)%,"
        r" broker (\d+)%, simulator (\d+)%",
        text,
    )
    assert m is not None, text
    assert "capacity curve" in text and "webhook double" in text
    port = int(re.search(r"private broker on :(\d+)", text).group(1))  # type: ignore[union-attr]

    scratch = f"{conninfo_to_dict(settings.database_url)['dbname']}_capacity"
    with connect(settings.database_url, autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (scratch,)).fetchone()
    assert left is None, f"scratch database {scratch} left behind"
    stragglers = []
    for p in psutil.process_iter(["pid"]):
        try:
            if scratch in p.environ().get("SHOUWANG_DATABASE_URL", ""):
                stragglers.append(p.cmdline())
        except psutil.Error:
            continue
    assert not stragglers, stragglers
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the private broker still listens"
