"""Shared: the correlation id that follows a device's message through the platform (pure).

A message is known by its device and its own timestamp (``ts``, set by the device): every stage
that holds the message, or what it led to, computes the same id from those two, so no stage
has to hand the id to the next. Ingest logs it when it stores an event; analytics when the
alarm opens (the alarm opens at the data time of the message that made it hold, and keeps that
time as ``opened_at``) and when its work order is filed; notify with every delivery attempt of
the alarm's notifications, whose payload carries the device and ``opened_at``.

Logs carry it as ``cid`` (``core.logs``): ``grep <cid>`` over every stage's log follows one
fault from the wire to the people told of it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import datetime

CID_LENGTH = 16  # hex digits: 64 bits, ample for a log search


def correlation_id(device_uid: str, ts_ms: int) -> str:
    """The id of the message ``device_uid`` sent with timestamp ``ts_ms`` (epoch ms)."""
    if not isinstance(device_uid, str) or not device_uid:
        raise ValueError(f"a correlation id needs the device's uid, not {device_uid!r}")
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int):
        raise ValueError(
            f"a correlation id needs the message's timestamp in whole epoch ms, not {ts_ms!r}"
        )
    return hashlib.sha256(f"{device_uid}\x00{ts_ms}".encode()).hexdigest()[:CID_LENGTH]


def at(device_uid: str, t: float | datetime) -> str:
    """The id of the message whose data time is ``t`` (epoch seconds, or an aware datetime): an
    alarm's ``opened_at``, an event's ``ts``."""
    if isinstance(t, datetime):
        if t.tzinfo is None:
            raise ValueError(f"a correlation id needs an aware time, not the naive {t}")
        seconds = t.timestamp()
    else:
        seconds = float(t)
    if not math.isfinite(seconds):
        raise ValueError(f"a correlation id needs a finite time, not {t!r}")
    return correlation_id(device_uid, round(seconds * 1000))


def of_notice(payload: Mapping[str, object]) -> str | None:
    """The id of the alarm a notification is about, from its payload's ``device`` and
    ``opened_at`` (ISO 8601; a batch's lead row carries its own alarm's); None for one
    without them (a platform notice) or whose time does not read."""
    device, opened = payload.get("device"), payload.get("opened_at")
    if not isinstance(device, str) or not device or not isinstance(opened, str):
        return None
    try:
        return at(device, datetime.fromisoformat(opened))
    except ValueError:
        return None
