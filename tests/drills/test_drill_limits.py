"""What the drills rest on, checked without running one: the broker's queue limits hold a
one-hour database outage of the demo county (its load measured on the simulator's own
scheduler), and a drill on a registry without credentials says what to run first."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from bench.drills.backlog import county_load
from broker.files import MAX_QUEUED_BYTES, MAX_QUEUED_MESSAGES
from shouwang.cli import app


def test_the_queue_limits_hold_an_hour_of_the_demo_county_with_room_to_spare() -> None:
    load = county_load(communities=20, minutes=10, keep=0)
    assert load.devices > 1900
    assert 300_000 < load.messages_h < 400_000  # the figures docs/benchmarks.md gives
    assert 100e6 < load.payload_h < 135e6
    assert load.payload_h * 1.5 < MAX_QUEUED_BYTES, "one hour, and half an hour more"
    assert load.messages_h * 1.5 < MAX_QUEUED_MESSAGES


def test_a_drill_without_device_credentials_says_to_seed_first(
    database_url: str, tmp_path: Path
) -> None:
    env = {"SHOUWANG_STATE_DIR": str(tmp_path), "SHOUWANG_DATABASE_URL": database_url}
    result = CliRunner().invoke(app, ["drill", "broker-kill"], env=env)
    assert result.exit_code == 1
    assert "run 'shouwang seed' first" in result.output
