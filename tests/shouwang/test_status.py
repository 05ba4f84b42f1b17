"""The status line (``shouwang up``) and ``shouwang status``: exact counts of the readings of the
last minute and hour on the real database, and each stage's state read from a real metrics
endpoint (``core.metrics.serve``) or from a closed port."""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from core.db import Conn
from core.metrics import Heartbeat, serve
from core.settings import Settings
from shouwang.status import print_status, snapshot, stage_states, status_line
from tests.conftest import free_port, settings_env, shouwang

METRIC = 32_000  # a metric id of the test's own: its readings are told apart and removed


@pytest.fixture
def readings(db: Conn) -> Iterator[int]:
    """A device whose readings of metric :data:`METRIC` the test writes; removed afterwards."""
    (device,) = db.execute("SELECT id FROM devices ORDER BY id LIMIT 1").fetchone() or (0,)
    yield int(device)
    db.execute("DELETE FROM readings WHERE metric_id = %s", (METRIC,))


def write(db: Conn, device: int, *ago: str) -> None:
    for a in ago:
        db.execute(
            "INSERT INTO readings (ts, device_id, metric_id, value)"
            " VALUES (now() - %s::interval, %s, %s, 1)",
            (a, device, METRIC),
        )


def test_the_readings_of_the_last_minute_and_hour_are_counted_exactly(
    db: Conn, readings: int
) -> None:
    before = snapshot(db)
    write(db, readings, "5 seconds", "20 seconds", "10 minutes", "50 minutes", "2 hours")
    after = snapshot(db)
    # The session's database: nothing else writes readings meanwhile.
    assert after.readings_last_minute - before.readings_last_minute == 2
    assert after.readings_last_hour - before.readings_last_hour == 4
    line = status_line(after, clock="08:00:00")
    assert f"readings/h {after.readings_last_hour:>10,}" in line
    assert f"readings/min {after.readings_last_minute:>8,}" in line
    assert "stored ≈" in line, "the total is an estimate, and says so"


@pytest.fixture
def endpoint() -> int:
    """The port of this process's metrics endpoint (any free one)."""
    _, port = serve("analytics", "127.0.0.1", 0)
    assert port > 0
    return port


def ports(s: Settings, **by_stage: int) -> Settings:
    return s.model_copy(
        update={"metrics_host": "127.0.0.1"} | {f"metrics_port_{k}": v for k, v in by_stage.items()}
    )


def test_each_stage_is_running_idle_stuck_down_or_unknown(
    settings: Settings, endpoint: int
) -> None:
    closed = free_port()
    s = ports(settings, ingest=closed, analytics=endpoint, notify=endpoint, api=-1)
    clock = [time.time() - 600]
    beat = Heartbeat("analytics", clock=lambda: clock[0])  # started 10 minutes ago
    clock[0] = time.time()
    beat.beat()  # its loop turns, nothing done since the start

    states = {st.name: st for st in stage_states(s)}
    assert list(states) == ["ingest", "analytics", "notify", "api"]
    assert states["ingest"].judged.state == "down"
    assert f"127.0.0.1:{closed}" in states["ingest"].judged.detail
    assert states["analytics"].judged.state == "idle"
    assert states["analytics"].where == f"127.0.0.1:{endpoint}"
    assert states["notify"].judged.state in ("running", "idle", "down")
    assert states["api"].judged.state == "unknown"
    assert "port is -1" in states["api"].judged.detail

    beat.progressed(3)  # it finished work just now
    assert {st.name: st.judged.state for st in stage_states(s)}["analytics"] == "running"
    later = {st.name: st for st in stage_states(s, now=time.time() + 3600)}
    assert later["analytics"].judged.state == "stuck", "its loop has not turned for an hour"
    assert "has not turned" in later["analytics"].judged.detail

    two = [st.name for st in stage_states(s, ("ingest",), workers=2)]
    assert two == ["ingest 0", "ingest 1"]


def test_the_status_line_and_table_show_each_stage(
    db: Conn, settings: Settings, endpoint: int
) -> None:
    Heartbeat("analytics").progressed(1)
    s = ports(settings, ingest=free_port(), analytics=endpoint, notify=free_port(), api=-1)
    stages = stage_states(s)
    line = status_line(snapshot(db), clock="08:00:00", notes=["api restarted 1×"], stages=stages)
    assert "  stages ingest [bold red]down[/]  analytics [green]running[/]" in line
    assert "notify [bold red]down[/]  api [yellow]unknown[/]" in line
    # The markers come last (another test's open platform alarms may add theirs after it).
    assert "[bold red]! api restarted 1×[/]" in line
    assert line.index("stages ") < line.index("! api restarted 1×"), "the markers come last"
    assert "stages" not in status_line(snapshot(db), clock="08:00:00")

    shown = Console(record=True, width=200, file=io.StringIO())
    print_status(db, shown, stages)
    text = shown.export_text()
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if "│" in line}
    assert "running" in rows["stage analytics"]
    assert f"127.0.0.1:{endpoint}" in rows["stage analytics"]
    assert "down" in rows["stage ingest"]
    assert "unknown" in rows["stage api"]
    assert "readings in the last hour" in rows


def test_shouwang_status_prints_the_counts_and_the_stages(settings: Settings) -> None:
    env = settings_env(settings) | {
        "SHOUWANG_METRICS_HOST": "127.0.0.1",
        "SHOUWANG_METRICS_PORT_INGEST": str(free_port()),
        "SHOUWANG_METRICS_PORT_ANALYTICS": str(free_port()),
        "SHOUWANG_METRICS_PORT_NOTIFY": str(free_port()),
        "SHOUWANG_METRICS_PORT_API": "-1",
        "COLUMNS": "200",
    }
    out = subprocess.run(
        shouwang("status"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "readings in the last hour" in out.stdout
    for stage, state in (("ingest", "down"), ("analytics", "down"), ("api", "unknown")):
        row = next(x for x in out.stdout.splitlines() if f"stage {stage} " in x)
        assert state in row, row


@pytest.mark.parametrize("stage", ["analytics", "notify", "api"])
def test_a_stage_started_by_its_command_serves_its_state(
    settings: Settings, stage: str, tmp_path: Path
) -> None:
    """``shouwang analytics``, ``notify`` and ``api serve`` serve their endpoint (``core.metrics.serve``
    in their ``main``) and beat while idle: the status sees them running or idle, then down
    once stopped."""
    port = free_port()
    env = settings_env(settings) | {
        "SHOUWANG_METRICS_HOST": "127.0.0.1",
        f"SHOUWANG_METRICS_PORT_{stage.upper()}": str(port),
    }
    args = {
        "analytics": ["analytics"],
        "notify": ["notify", "--name", "status-test"],
        "api": ["api", "serve", "--host", "127.0.0.1", "--port", str(free_port())],
    }[stage]
    s = ports(settings, **{stage: port})
    log = tmp_path / f"{stage}.log"
    with (
        log.open("w") as err,
        subprocess.Popen(shouwang(*args), env=env, stdout=subprocess.DEVNULL, stderr=err) as proc,
    ):
        try:
            deadline = time.monotonic() + 30
            while True:
                (st,) = stage_states(s, (stage,))
                if st.judged.state in ("running", "idle"):
                    break
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, st.judged
                time.sleep(0.2)
            assert st.judged.ok and st.where == f"127.0.0.1:{port}"
            assert f"metrics on http://127.0.0.1:{port}/metrics" in log.read_text()
        finally:
            proc.terminate()
            proc.wait(30)
    (gone,) = stage_states(s, (stage,))
    assert gone.judged.state == "down"
