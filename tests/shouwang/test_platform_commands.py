"""``shouwang platform alarms|ack`` on the test database, and the main job's status line saying
that platform alarms are open."""

from __future__ import annotations

import io
import os
import subprocess

import pytest
from rich.console import Console

from core.db import Conn
from core.settings import Settings
from core.severity import Severity
from lifecycle.platform import PlatformKind, clear_alarm, raise_alarm
from shouwang.status import print_status, snapshot, status_line
from tests.conftest import settings_env, shouwang


def run(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in settings_env(s).items() if k != "COLUMNS"}  # as when piped
    return subprocess.run(
        shouwang("platform", *args),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def table(stdout: str) -> dict[str, list[str]]:
    """The rows of a Rich table by their first cell (the id): their cells, stripped."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in stdout.splitlines()]
    return {r[0]: r for r in rows if r and r[0].isdigit()}


@pytest.fixture
def empty(db: Conn) -> Conn:
    db.execute("TRUNCATE platform_alarms")
    return db


def test_the_open_alarms_are_listed_and_acknowledged(settings: Settings, empty: Conn) -> None:
    none = run(settings, "alarms")
    assert none.returncode == 0, none.stderr
    assert "no platform alarm is open" in none.stdout

    feed = raise_alarm(empty, PlatformKind.FEED_SILENT, severity=Severity.P1)
    quarantined = raise_alarm(
        empty, PlatformKind.DETECTOR_QUARANTINED, "C01-B01-EL1", severity=Severity.P3
    )
    raise_alarm(empty, PlatformKind.DETECTOR_QUARANTINED, "C01-B01-EL1", severity=Severity.P3)
    gone = raise_alarm(empty, PlatformKind.STAGE_RESTARTED, "notify", severity=Severity.P2)
    clear_alarm(empty, PlatformKind.STAGE_RESTARTED, "notify", reason="ran_clean")

    listed = run(settings, "alarms")
    assert listed.returncode == 0, listed.stderr
    rows = table(listed.stdout)
    assert "2 open platform alarm(s)" in listed.stdout
    assert sorted(rows, key=int) == sorted([str(feed.id), str(quarantined.id)], key=int)
    assert rows[str(feed.id)][1:5] == ["feed_silent", "—", "P1", "active"]
    assert rows[str(quarantined.id)][1:5] == ["detector_quarantined", "C01-B01-EL1", "P3", "active"]
    assert rows[str(quarantined.id)][6:] == ["2", ""], "triggers, nobody acknowledged"

    acked = run(settings, "ack", str(feed.id), "--by", "县信息中心 王工")
    assert acked.returncode == 0, acked.stderr
    assert f"platform alarm {feed.id} (feed_silent) acknowledged by 县信息中心 王工" in acked.stderr
    again = run(settings, "ack", str(feed.id), "--by", "vendor")
    assert again.returncode == 0
    assert "acknowledged already, by 县信息中心 王工" in again.stderr
    row = empty.execute(
        "SELECT state, acknowledged_by FROM platform_alarms WHERE id = %s", (feed.id,)
    ).fetchone()
    assert row == ("acknowledged", "县信息中心 王工")
    after = table(run(settings, "alarms").stdout)[str(feed.id)]
    assert (after[4], after[7]) == ("acknowledged", "县信息中心 王工")

    cleared = run(settings, "ack", str(gone.id), "--by", "vendor")
    assert cleared.returncode == 2
    assert "error:" in cleared.stderr and "cannot be acknowledged" in cleared.stderr
    missing = run(settings, "ack", str(gone.id + 1000), "--by", "vendor")
    assert missing.returncode == 2
    assert f"no platform alarm {gone.id + 1000}" in missing.stderr
    nameless = run(settings, "ack", str(feed.id), "--by", " ")
    assert nameless.returncode != 0
    assert "say who acknowledges" in nameless.stderr
    assert run(settings, "ack", "0", "--by", "x").returncode != 0


def test_the_status_line_says_when_platform_alarms_are_open(empty: Conn) -> None:
    quiet = snapshot(empty)
    assert quiet.open_platform_alarms == 0
    assert "platform alarm" not in status_line(quiet, clock="08:00:00")
    raise_alarm(empty, PlatformKind.FEED_SILENT, severity=Severity.P1)
    one = status_line(snapshot(empty), clock="08:00:10", notes=["ingest restarted 2×"])
    assert one.endswith("[bold red]! ingest restarted 2×[/]  [bold red]! 1 platform alarm open[/]")
    raise_alarm(empty, PlatformKind.MASS_SILENCE, severity=Severity.P1)
    raise_alarm(empty, PlatformKind.STAGE_RESTARTED, "api", severity=Severity.P2)
    clear_alarm(empty, PlatformKind.STAGE_RESTARTED, "api", reason="ran_clean")
    two = snapshot(empty)
    assert two.open_platform_alarms == 2, "a cleared alarm is not counted"
    assert status_line(two, clock="08:00:20").endswith("[bold red]! 2 platform alarms open[/]")
    assert status_line(two, clock="08:00:20").startswith("08:00:20  readings/min")
    shown = Console(record=True, width=120, file=io.StringIO())
    print_status(empty, shown)
    row = next(x for x in shown.export_text().splitlines() if "open platform alarms" in x)
    assert "2 (shouwang platform alarms)" in row


def test_the_commands_need_the_database(tmp_path: object) -> None:
    env = {
        **os.environ,
        "SHOUWANG_STATE_DIR": str(tmp_path),
        "SHOUWANG_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none",
    }
    out = subprocess.run(
        shouwang("platform", "alarms"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    assert "cannot reach the database" in out.stderr
