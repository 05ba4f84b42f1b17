"""Analytics: reading the times and durations of files a firm exports (pure).

A firm's exports write times in whatever way their system does: ISO 8601 with or without an
offset, a local format such as ``2026/03/01 08:00``, or epoch seconds. Every command that reads such
a file (``shouwang replay``, ``shouwang evaluate``) reads times here, so they all agree on what a
naive time means: local time in the zone the operator names (default Asia/Shanghai).

Formats (``fmt``):

- ``None`` or ``"iso"``: ISO 8601 as :meth:`datetime.fromisoformat` reads it (``2026-03-01``,
  ``2026-03-01 08:00``, ``2026-03-01T08:00:00+08:00``, ``...Z``).
- ``"epoch"`` or ``"epoch_s"``: seconds since 1970-01-01 UTC; ``"epoch_ms"``: milliseconds.
- anything else: a :meth:`datetime.strptime` format (``%z`` reads an offset).

A cell that does not match a given format but is ISO 8601 is read as ISO 8601, so a file written by
``shouwang replay`` (ISO with offset) and a firm's export in its own format can be read with one
``--time-format``. A naive time in a zone with daylight saving that falls in a repeated hour is
the first of the two (``fold=0``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import ConfigError

DEFAULT_ZONE = "Asia/Shanghai"
ISO_NAMES = frozenset({"iso"})
EPOCH_SECONDS = frozenset({"epoch", "epoch_s"})
EPOCH_MILLISECONDS = frozenset({"epoch_ms"})
# The times datetime can represent (years 1 to 9999): an epoch value beyond them is a mistake.
EARLIEST = -62_135_596_800.0
LATEST = 253_402_300_799.0
_MAX_SHOWN = 60  # characters of a bad value quoted in an error

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*", re.IGNORECASE)
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``Asia/Shanghai``, ``UTC``, ``Europe/Berlin``)."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            "--tz",
            f"{shown(name)} is not a known IANA time zone; give a name such as "
            f"{DEFAULT_ZONE}, UTC or Europe/Berlin",
        ) from None


def parse_time(text: str, fmt: str | None, tz: tzinfo, where: str = "time") -> float:
    """Epoch seconds of ``text`` read with ``fmt`` (see the module docstring); naive times are in
    ``tz``. ``where`` names the file and line in the error a bad value raises."""
    cell = text.strip()
    if not cell:
        raise ConfigError(where, "the time is empty")
    if fmt is not None and fmt not in ISO_NAMES:
        if fmt in EPOCH_SECONDS or fmt in EPOCH_MILLISECONDS:
            scale = 1.0 if fmt in EPOCH_SECONDS else 1000.0
            try:
                value = float(cell) / scale
            except ValueError:
                pass  # maybe ISO, below
            else:
                if not (math.isfinite(value) and EARLIEST <= value <= LATEST):
                    raise ConfigError(
                        where, f"the time {shown(cell)} is not a finite epoch time in years 1-9999"
                    )
                return value
        else:
            try:
                return _epoch(datetime.strptime(cell, fmt), tz)
            except (ValueError, OverflowError):
                pass  # maybe ISO, below
    try:
        return _epoch(datetime.fromisoformat(cell), tz)
    except (ValueError, OverflowError):
        pass
    expected = "ISO 8601" if fmt is None or fmt in ISO_NAMES else f"{fmt!r} or ISO 8601"
    raise ConfigError(
        where,
        f"cannot read the time {shown(cell)} as {expected}; give the file's format with "
        "--time-format (a strptime format such as '%Y/%m/%d %H:%M', or epoch)",
    )


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds of ``90``, ``90s``, ``10m``, ``2h`` or ``1d`` (not negative, finite)."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ConfigError(
            what,
            f"cannot read {shown(text)} as a duration; give seconds, or a number with s, m, h or d"
            " (90s, 10m, 2h, 1d)",
        )
    value = float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    if not math.isfinite(value):
        raise ConfigError(what, f"the duration {shown(text)} is too large")
    return value


def shown(value: str) -> str:
    """``value`` quoted for an error message, cut short if long (hostile files have long cells)."""
    if len(value) > _MAX_SHOWN:
        return repr(value[:_MAX_SHOWN]) + f"... ({len(value)} characters)"
    return repr(value)


def _epoch(d: datetime, tz: tzinfo) -> float:
    return (d if d.tzinfo is not None else d.replace(tzinfo=tz)).timestamp()
