"""Shared: maintenance windows, the rules (pure).

A maintenance unit or the firm opens a window for devices while it works on them: planned
service (elevators half-monthly, 半月保), the annual inspection, a repair, a fire-system drill.
An alarm of a device that opened inside one of its windows is recorded and shown but not
notified, and its work order does not count against the firm. Windows of one device may overlap:
they combine (the device is under maintenance in their union). A window is bounded: at most
:data:`MAX_LENGTH` long for its kind, starting at most :data:`MAX_BACKDATE` before it is opened
and at most :data:`MAX_AHEAD` after; it ends by itself at ``ends_at``, and may be closed early.

The database's ``device_in_maintenance(device, at)`` (``core/migrations/0030``) is :func:`covers`
in SQL; the store is ``lifecycle.maintenance_windows``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

Kind = Literal["service", "annual_inspection", "repair", "fire_drill"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

MAX_LENGTH: Final[dict[Kind, timedelta]] = {
    "service": timedelta(hours=8),
    "annual_inspection": timedelta(hours=12),
    "repair": timedelta(hours=72),
    "fire_drill": timedelta(hours=4),
}
MAX_BACKDATE: Final = timedelta(hours=1)
"""A window may start at most this long before it is opened (a visit entered on arrival)."""
MAX_AHEAD: Final = timedelta(days=30)
MAX_DEVICES: Final = 500

# When a device's last visit of a kind is overdue (docs: half-monthly service overdue after 15
# days; the statutory inspection yearly). Repairs and drills have no interval.
SERVICE_INTERVAL: Final[dict[Kind, timedelta]] = {
    "service": timedelta(days=15),
    "annual_inspection": timedelta(days=365),
}


class WindowError(ValueError):
    """A window that breaks a rule: ``field`` names what to change."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Window:
    """A window as stored: ``ends_at`` is where it ends (moved earlier when closed early)."""

    id: int
    kind: Kind
    starts_at: datetime
    ends_at: datetime
    device_ids: frozenset[int]

    def covers(self, t: datetime) -> bool:
        return self.starts_at <= t < self.ends_at


def covers(windows: Iterable[Window], device_id: int, t: datetime) -> bool:
    """Whether ``device_id`` is under maintenance at ``t``: inside any of its windows."""
    return any(device_id in w.device_ids and w.covers(t) for w in windows)


def check_window(
    kind: str, starts_at: datetime, ends_at: datetime, device_ids: Iterable[int], now: datetime
) -> Kind:
    """Refuse a window out of bounds, naming the field to change; return its kind."""
    if kind not in KINDS:
        raise WindowError("kind", f"must be one of {', '.join(KINDS)}")
    k: Kind = kind
    ids = list(device_ids)
    if not ids:
        raise WindowError("device_ids", "name at least one device")
    if len(ids) > MAX_DEVICES:
        raise WindowError("device_ids", f"at most {MAX_DEVICES} devices per window")
    if len(set(ids)) != len(ids):
        raise WindowError("device_ids", "name each device once")
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise WindowError("starts_at", "give times with a UTC offset, e.g. 2026-05-01T09:00+08:00")
    if starts_at < now - MAX_BACKDATE:
        raise WindowError(
            "starts_at", f"may be at most {_hours(MAX_BACKDATE)} before now ({now.isoformat()})"
        )
    if starts_at > now + MAX_AHEAD:
        raise WindowError("starts_at", f"may be at most {MAX_AHEAD.days} days ahead")
    if ends_at <= starts_at:
        raise WindowError("ends_at", "must be after starts_at")
    if ends_at - starts_at > MAX_LENGTH[k]:
        raise WindowError(
            "ends_at", f"a {k} window may last at most {_hours(MAX_LENGTH[k])}; open another later"
        )
    if ends_at <= now:
        raise WindowError("ends_at", "must be in the future: the window would already be over")
    return k


def closed_end(w: Window, now: datetime) -> datetime:
    """Where a window closed early at ``now`` ends: now, or its start if it has not started
    (it then covers nothing). A window already over cannot be closed."""
    if w.ends_at <= now:
        raise WindowError("window", f"already ended at {w.ends_at.isoformat()}")
    return max(now, w.starts_at)


def overdue(kind: Kind, last_at: datetime | None, now: datetime) -> bool:
    """Whether a device's visit of this kind is overdue (never visited counts as overdue);
    False for kinds without an interval."""
    interval = SERVICE_INTERVAL.get(kind)
    if interval is None:
        return False
    return last_at is None or now - last_at > interval


def _hours(d: timedelta) -> str:
    h = d.total_seconds() / 3600
    return f"{h:g} h"
