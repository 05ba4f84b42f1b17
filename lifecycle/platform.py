"""Lifecycle: platform alarms, the platform's own trouble (I/O on ``platform_alarms``).

Not a device's fault and not a firm's work order: the feed from ingest silent, a large share of
devices silent at once, a device's detector state set aside after it failed, a stage the main
job restarted, a site gateway that dropped data or whose clock is off the platform's (raised by
ingest from the gateway's state, ``ingest/gateway_alarms.py``). One alarm is open per (kind, subject) (the table's partial unique index); raising
it again while it is open re-triggers it (``triggers + 1``, ``last_triggered_at``), never a
second row. Clearing closes it with a reason. Acknowledging records who and when (the API,
``shouwang platform ack``); the first acknowledgement stands, re-triggers keep it, and a cleared
alarm cannot be acknowledged. Notify reads the table to tell the platform operators on shift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from psycopg.types.json import Jsonb

from core.db import Conn
from core.errors import ShouwangError
from core.severity import Severity


class PlatformKind(StrEnum):
    FEED_SILENT = "feed_silent"  # no data reaching analytics: ingest or the broker down or lagging
    MASS_SILENCE = "mass_silence"  # a large share of devices went silent at once
    DETECTOR_QUARANTINED = "detector_quarantined"  # subject: the device uid
    STAGE_RESTARTED = "stage_restarted"  # subject: the stage
    MODEL_DRIFT = "model_drift"  # subject: the list entry's code; its model's false alarms drift up
    GATEWAY_DROPPED = "gateway_dropped"  # subject: the gateway uid; its buffer dropped data
    GATEWAY_CLOCK = "gateway_clock"  # subject: the gateway uid; its clock is off the window


@dataclass(frozen=True, slots=True)
class PlatformAlarm:
    """One row of ``platform_alarms`` (pure)."""

    id: int
    kind: PlatformKind
    subject: str
    severity: Severity
    state: str  # active | acknowledged | cleared
    opened_at: datetime
    last_triggered_at: datetime
    triggers: int = 1
    cleared_at: datetime | None = None
    cleared_reason: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None

    @property
    def open(self) -> bool:
        return self.state != "cleared"


class AckRefused(ShouwangError):
    """An acknowledgement that cannot be recorded: no such alarm (``reason`` "unknown"), or
    it is cleared already ("cleared")."""

    def __init__(self, alarm_id: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.alarm_id = alarm_id
        self.reason = reason


def _row(r: tuple[Any, ...]) -> PlatformAlarm:
    i, kind, subject, severity, state, opened, last, triggers, cleared, reason, detail, at, by = r
    return PlatformAlarm(
        int(i),
        PlatformKind(kind),
        subject,
        Severity(severity),
        state,
        opened,
        last,
        int(triggers),
        cleared,
        reason,
        dict(detail or {}),
        at,
        by,
    )


def raise_alarm(
    conn: Conn,
    kind: PlatformKind,
    subject: str = "",
    *,
    severity: Severity,
    at: datetime | None = None,
    detail: Mapping[str, Any] | None = None,
) -> PlatformAlarm:
    """Open the (kind, subject) alarm, or re-trigger it when it is open: ``triggers + 1``,
    ``last_triggered_at``, ``detail`` merged in, the severity raised if this one is more severe
    (never lowered). ``at``: when (default: the database's clock); the analytics data clock
    passes its own time."""
    row = conn.execute(
        "INSERT INTO platform_alarms (kind, subject, severity, opened_at, last_triggered_at, detail)"
        " VALUES (%(kind)s, %(subject)s, %(severity)s, coalesce(%(at)s::timestamptz, clock_timestamp()),"
        "         coalesce(%(at)s::timestamptz, clock_timestamp()), %(detail)s)"
        " ON CONFLICT (kind, subject) WHERE state <> 'cleared' DO UPDATE SET"
        "  triggers = platform_alarms.triggers + 1,"
        "  last_triggered_at = EXCLUDED.last_triggered_at,"
        "  detail = platform_alarms.detail || EXCLUDED.detail,"
        "  severity = least(platform_alarms.severity, EXCLUDED.severity)"  # 'P0' < 'P3'
        " RETURNING id, kind, subject, severity, state, opened_at, last_triggered_at, triggers,"
        " cleared_at, cleared_reason, detail, acknowledged_at, acknowledged_by",
        {
            "kind": str(kind),
            "subject": subject,
            "severity": str(Severity(severity)),
            "at": at,
            "detail": Jsonb(dict(detail or {})),
        },
    ).fetchone()
    assert row is not None
    return _row(row)


def clear_alarm(
    conn: Conn,
    kind: PlatformKind,
    subject: str = "",
    *,
    reason: str,
    at: datetime | None = None,
) -> PlatformAlarm | None:
    """Clear the open (kind, subject) alarm with ``reason``; the cleared alarm, or None when
    none was open."""
    row = conn.execute(
        "UPDATE platform_alarms SET state = 'cleared', cleared_at = coalesce(%s::timestamptz, clock_timestamp()),"
        " cleared_reason = %s WHERE kind = %s AND subject = %s AND state <> 'cleared'"
        " RETURNING id, kind, subject, severity, state, opened_at, last_triggered_at, triggers,"
        " cleared_at, cleared_reason, detail, acknowledged_at, acknowledged_by",
        (at, reason, str(kind), subject),
    ).fetchone()
    return None if row is None else _row(row)


def open_alarms(conn: Conn, kinds: tuple[PlatformKind, ...] = ()) -> list[PlatformAlarm]:
    """The open platform alarms (of ``kinds``; all when empty), oldest first."""
    rows = conn.execute(
        "SELECT id, kind, subject, severity, state, opened_at, last_triggered_at, triggers, cleared_at,"
        " cleared_reason, detail, acknowledged_at, acknowledged_by FROM platform_alarms"
        " WHERE state <> 'cleared'"
        " AND (cardinality(%s::text[]) = 0 OR kind = ANY(%s::text[])) ORDER BY opened_at, id",
        ([str(k) for k in kinds], [str(k) for k in kinds]),
    ).fetchall()
    return [_row(r) for r in rows]


def acknowledge(conn: Conn, alarm_id: int, by: str, at: datetime | None = None) -> PlatformAlarm:
    """Record that ``by`` has taken the alarm on, at ``at`` (default: the database's clock), and
    return it. An alarm acknowledged already keeps its first acknowledgement (returned as it
    is); a cleared one, or no such alarm, raises :class:`AckRefused`. The row is locked while
    this runs, so of two acknowledgements at once the first stands."""
    if not by.strip():
        raise ValueError("an acknowledgement needs the name of who acknowledges")
    with conn.transaction():
        row = conn.execute(
            "SELECT id, kind, subject, severity, state, opened_at, last_triggered_at, triggers,"
            " cleared_at, cleared_reason, detail, acknowledged_at, acknowledged_by"
            " FROM platform_alarms WHERE id = %s FOR UPDATE",
            (alarm_id,),
        ).fetchone()
        if row is None:
            raise AckRefused(alarm_id, "unknown", f"there is no platform alarm {alarm_id}")
        alarm = _row(row)
        if alarm.state == "cleared":
            when = f" at {alarm.cleared_at:%Y-%m-%d %H:%M:%S%z}" if alarm.cleared_at else ""
            raise AckRefused(
                alarm_id,
                "cleared",
                f"platform alarm {alarm_id} was cleared{when} (reason: {alarm.cleared_reason});"
                " a cleared alarm cannot be acknowledged",
            )
        if alarm.state == "acknowledged":
            return alarm
        row = conn.execute(
            "UPDATE platform_alarms SET state = 'acknowledged',"
            " acknowledged_at = coalesce(%s::timestamptz, clock_timestamp()), acknowledged_by = %s"
            " WHERE id = %s RETURNING id, kind, subject, severity, state, opened_at,"
            " last_triggered_at, triggers, cleared_at, cleared_reason, detail, acknowledged_at,"
            " acknowledged_by",
            (at, by.strip(), alarm_id),
        ).fetchone()
    assert row is not None
    return _row(row)
