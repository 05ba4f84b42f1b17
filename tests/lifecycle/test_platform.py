"""Acknowledging a platform alarm (lifecycle.platform.acknowledge) on the real database: who and
when are recorded once, re-triggers keep them, a cleared or unknown alarm is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.db import Conn
from core.severity import Severity
from lifecycle.platform import (
    AckRefused,
    PlatformKind,
    acknowledge,
    clear_alarm,
    open_alarms,
    raise_alarm,
)

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def empty(db: Conn) -> Conn:
    db.execute("TRUNCATE platform_alarms")
    return db


def test_the_first_acknowledgement_stands_and_survives_re_triggers(empty: Conn) -> None:
    alarm = raise_alarm(empty, PlatformKind.FEED_SILENT, severity=Severity.P1, at=AT)
    assert (alarm.state, alarm.acknowledged_at, alarm.acknowledged_by) == ("active", None, None)
    acked = acknowledge(empty, alarm.id, " 县信息中心 王工 ", AT + timedelta(minutes=3))
    assert (acked.id, acked.state) == (alarm.id, "acknowledged")
    assert (acked.acknowledged_at, acked.acknowledged_by) == (
        AT + timedelta(minutes=3),
        "县信息中心 王工",
    )
    again = acknowledge(empty, alarm.id, "vendor on-call", AT + timedelta(minutes=9))
    assert (again.acknowledged_at, again.acknowledged_by) == (
        acked.acknowledged_at,
        acked.acknowledged_by,
    ), "the first acknowledgement is kept"
    retriggered = raise_alarm(
        empty, PlatformKind.FEED_SILENT, severity=Severity.P0, at=AT + timedelta(minutes=10)
    )
    assert (retriggered.id, retriggered.state, retriggered.triggers) == (
        alarm.id,
        "acknowledged",
        2,
    )
    assert retriggered.acknowledged_by == "县信息中心 王工"
    (listed,) = open_alarms(empty)
    assert (listed.state, listed.acknowledged_by) == ("acknowledged", "县信息中心 王工")
    # Acknowledged alarms clear like active ones.
    cleared = clear_alarm(empty, PlatformKind.FEED_SILENT, reason="feed_resumed")
    assert cleared is not None and cleared.acknowledged_by == "县信息中心 王工"


def test_the_database_clock_when_no_time_is_given(empty: Conn) -> None:
    alarm = raise_alarm(empty, PlatformKind.MASS_SILENCE, severity=Severity.P1)
    before = datetime.now(UTC)
    acked = acknowledge(empty, alarm.id, "ops")
    assert acked.acknowledged_at is not None
    assert before - timedelta(seconds=5) < acked.acknowledged_at < before + timedelta(seconds=5)


def test_a_cleared_or_unknown_alarm_is_refused(empty: Conn) -> None:
    alarm = raise_alarm(empty, PlatformKind.STAGE_RESTARTED, "ingest", severity=Severity.P2)
    clear_alarm(empty, PlatformKind.STAGE_RESTARTED, "ingest", reason="ran_clean", at=AT)
    with pytest.raises(
        AckRefused, match=r"was cleared at 2026-03-0\d .*\(reason: ran_clean\)"
    ) as e:
        acknowledge(empty, alarm.id, "ops")
    assert e.value.reason == "cleared"
    state = empty.execute(
        "SELECT state, acknowledged_by FROM platform_alarms WHERE id = %s", (alarm.id,)
    ).fetchone()
    assert state == ("cleared", None), "nothing recorded"
    with pytest.raises(AckRefused, match=f"no platform alarm {alarm.id + 1}") as e:
        acknowledge(empty, alarm.id + 1, "ops")
    assert e.value.reason == "unknown"
    with pytest.raises(ValueError, match="name"):
        acknowledge(empty, alarm.id, "  ")
