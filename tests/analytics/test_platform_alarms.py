"""Platform alarms (lifecycle.platform) on the real database: one open per (kind, subject),
re-triggers counted, severity only raised, cleared with a reason, a new one after that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.db import Conn
from core.severity import Severity
from lifecycle.platform import PlatformKind, clear_alarm, open_alarms, raise_alarm

AT = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def empty(db: Conn) -> Conn:
    db.execute("TRUNCATE platform_alarms")
    return db


def test_one_open_alarm_per_kind_and_subject_retriggered_and_cleared(empty: Conn) -> None:
    first = raise_alarm(
        empty, PlatformKind.FEED_SILENT, severity=Severity.P1, at=AT, detail={"a": 1}
    )
    assert (first.kind, first.subject, first.severity, first.state, first.triggers) == (
        PlatformKind.FEED_SILENT,
        "",
        Severity.P1,
        "active",
        1,
    )
    assert first.opened_at == AT and first.open
    again = raise_alarm(
        empty,
        PlatformKind.FEED_SILENT,
        severity=Severity.P3,
        at=AT + timedelta(minutes=5),
        detail={"b": 2},
    )
    assert again.id == first.id and again.triggers == 2
    assert again.opened_at == AT and again.last_triggered_at == AT + timedelta(minutes=5)
    assert again.severity == Severity.P1, "never lowered"
    assert dict(again.detail) == {"a": 1, "b": 2}
    worse = raise_alarm(empty, PlatformKind.FEED_SILENT, severity=Severity.P0)
    assert worse.severity == Severity.P0 and worse.triggers == 3

    other = raise_alarm(empty, PlatformKind.DETECTOR_QUARANTINED, "C01-B01-EL1", severity="P3")
    assert other.id != first.id
    assert [a.kind for a in open_alarms(empty)] == [
        PlatformKind.FEED_SILENT,
        PlatformKind.DETECTOR_QUARANTINED,
    ]
    assert [a.subject for a in open_alarms(empty, (PlatformKind.DETECTOR_QUARANTINED,))] == [
        "C01-B01-EL1"
    ]

    cleared = clear_alarm(empty, PlatformKind.FEED_SILENT, reason="feed_resumed", at=AT)
    assert cleared is not None and cleared.state == "cleared" and not cleared.open
    assert (cleared.cleared_at, cleared.cleared_reason) == (AT, "feed_resumed")
    assert clear_alarm(empty, PlatformKind.FEED_SILENT, reason="x") is None, "none open"
    fresh = raise_alarm(empty, PlatformKind.FEED_SILENT, severity=Severity.P1)
    assert fresh.id != first.id and fresh.triggers == 1, "a new alarm after the clear"


def test_an_acknowledged_alarm_stays_acknowledged_when_it_triggers_again(empty: Conn) -> None:
    a = raise_alarm(empty, PlatformKind.MASS_SILENCE, severity=Severity.P1)
    empty.execute(
        "UPDATE platform_alarms SET state = 'acknowledged', acknowledged_by = 'ops' WHERE id = %s",
        (a.id,),
    )
    b = raise_alarm(empty, PlatformKind.MASS_SILENCE, severity=Severity.P1)
    assert (b.id, b.state, b.triggers) == (a.id, "acknowledged", 2)


def test_the_table_refuses_kinds_it_does_not_know(empty: Conn) -> None:
    with pytest.raises(ValueError, match="not_a_kind"):
        raise_alarm(empty, PlatformKind("not_a_kind"), severity=Severity.P1)
    with pytest.raises(psycopg.errors.CheckViolation):
        empty.execute("INSERT INTO platform_alarms (kind, severity) VALUES ('not_a_kind', 'P1')")
