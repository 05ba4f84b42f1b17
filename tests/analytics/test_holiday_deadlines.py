"""Work-order deadlines from a holiday schedule loaded with ``shouwang calendar load``: across the
2027 Spring Festival and on an adjusted working Saturday; a running analytics takes a schedule
loaded later; a bad file is refused with its lines and nothing is stored."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from analytics.__main__ import build
from analytics.service import Analytics
from analytics.store import apply
from core.db import Conn
from core.settings import Settings
from lifecycle.alarms import Observation
from tests.conftest import settings_env, shouwang
from tests.core.test_holiday_schedule import EXAMPLE_2027

SH = ZoneInfo("Asia/Shanghai")


def calendar_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shouwang("calendar", *args),
        check=False,
        env=settings_env(settings) | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def clean(db: Conn) -> None:
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions,"
        " work_order_breaches, escalation_steps, holiday_schedules CASCADE"
    )


def door_fault(service: Analytics, db: Conn, n: int, opened: datetime) -> tuple[datetime, ...]:
    """EL.DOOR_FAULT (response 2 working hours, arrival 4, resolution 2 working days) on the
    ``n``-th elevator, opened at ``opened``: its work order's three deadlines."""
    (dev_id,) = db.execute(
        "SELECT id FROM devices WHERE device_class = 'elevator' ORDER BY id OFFSET %s LIMIT 1", (n,)
    ).fetchone() or (0,)
    apply(
        service.conn,
        service.lifecycle.observe(
            Observation(dev_id, "EL.DOOR_FAULT", opened.timestamp(), True, "t")
        ),
        entry_of=service._entry,
        devices=service.devices,
        calendar=service.calendar,
        list_version="test",
    )
    row = db.execute(
        "SELECT w.response_due, w.arrival_due, w.resolution_due FROM work_orders w"
        " JOIN alarms a ON a.id = w.alarm_id WHERE a.device_id = %s AND a.event_code = 'EL.DOOR_FAULT'",
        (dev_id,),
    ).fetchone()
    assert row is not None
    return tuple(d.astimezone(SH) for d in row)


@pytest.mark.usefixtures("clean")
def test_deadlines_across_the_2027_spring_festival_from_a_loaded_schedule(
    settings: Settings, db: Conn
) -> None:
    status = calendar_cli(settings, "status")
    assert status.returncode == 0, status.stderr
    now = datetime.now(SH)
    if now.year == 2026 and now.month >= 11:
        assert "2027 holiday schedule is not loaded" in status.stderr, status.stderr

    before = build(settings, clock="data")
    festival = datetime(2027, 2, 5, 17, tzinfo=SH)  # Friday before the festival
    assert door_fault(before, db, 0, festival) == (
        datetime(2027, 2, 8, 10, tzinfo=SH),  # Monday to Friday: the festival would count
        datetime(2027, 2, 8, 12, tzinfo=SH),
        datetime(2027, 2, 9, 18, tzinfo=SH),
    )

    loaded = calendar_cli(settings, "load", str(EXAMPLE_2027), "--by", "county IT, ticket 42")
    assert loaded.returncode == 0, loaded.stderr
    assert "2027 holiday schedule loaded as version 1" in loaded.stderr
    assert before.refresh_calendar(), "a running analytics takes the new schedule"
    assert not before.refresh_calendar()

    assert door_fault(before, db, 1, festival) == (
        datetime(2027, 2, 15, 10, tzinfo=SH),  # 1 h on Friday, 1 h on the first day back
        datetime(2027, 2, 15, 12, tzinfo=SH),
        datetime(2027, 2, 16, 18, tzinfo=SH),
    )
    saturday = datetime(2027, 2, 19, 17, tzinfo=SH)  # Friday; Saturday 20 February is worked
    assert door_fault(before, db, 2, saturday) == (
        datetime(2027, 2, 20, 10, tzinfo=SH),
        datetime(2027, 2, 20, 12, tzinfo=SH),
        datetime(2027, 2, 22, 18, tzinfo=SH),
    )
    before.conn.close()

    fresh = build(settings, clock="data")  # a restarted analytics reads it from the database
    assert fresh.calendar.source(2027) == "schedule"
    fresh.conn.close()

    status = calendar_cli(settings, "status")
    assert "2027: loaded schedule v1" in status.stderr, status.stderr
    assert "2027 holiday schedule is not loaded" not in status.stderr
    audit = db.execute("SELECT version, source, loaded_by FROM holiday_schedules").fetchall()
    assert audit == [(1, "holidays-2027-example.yaml", "county IT, ticket 42")]
    again = calendar_cli(settings, "load", str(EXAMPLE_2027))
    assert "unchanged" in again.stderr


@pytest.mark.usefixtures("clean")
def test_a_bad_schedule_file_is_refused_with_its_lines(
    settings: Settings, db: Conn, tmp_path: Path
) -> None:
    bad = tmp_path / "holidays-2027.yaml"
    bad.write_text(
        EXAMPLE_2027.read_text(encoding="utf-8").replace("2027-04-25", "2027-04-26"),
        encoding="utf-8",
    )
    line = (
        bad.read_text(encoding="utf-8").splitlines().index("  - {date: 2027-04-26, for: 劳动节}")
        + 1
    )
    for command in ("check", "load"):
        result = calendar_cli(settings, command, str(bad))
        assert result.returncode == 2
        said = " ".join(result.stderr.split())
        assert f"{bad}:{line}: workdays[1].date: 2027-04-26 is a Monday" in said, said
    missing = calendar_cli(settings, "load", str(tmp_path / "nowhere.yaml"))
    assert missing.returncode == 2 and "cannot read the schedule" in missing.stderr
    assert db.execute("SELECT count(*) FROM holiday_schedules").fetchone() == (0,)
