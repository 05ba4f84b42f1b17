"""Ingest: the platform alarms a site gateway's own state calls for (pure).

A gateway reports its state on its status topic (wire contract revisions 4 and 5). Two things in
it are the platform's business, not the gateway's alone:

- ``dropped``, the entries its buffer's byte limit pushed out since the buffer was created: a
  rise is data the platform will never get, a gap an operator must see. It raises the platform
  alarm ``gateway_dropped`` (P3, data quality), re-triggered by each further rise, and cleared
  once the gateway's backlog is down to half its buffer or less with no new drop (the outage is
  over; the alarm's record keeps the count).
- its clock's offset from the platform's (measured by the gateway on its storage
  acknowledgements' round trips, or, when it has not measured one, the status's own ``ts`` ahead
  of the platform's clock): beyond the platform's timestamp window its samples are rejected as
  ``future_ts`` (or, behind, arrive stamped in the past), so it raises ``gateway_clock`` (P2)
  rather than letting the rejects pile up unexplained; cleared once it is back within.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.severity import Severity
from core.wire import RawGatewayState
from lifecycle.platform import PlatformKind


@dataclass(frozen=True, slots=True)
class Raise:
    kind: PlatformKind
    severity: Severity
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Clear:
    kind: PlatformKind
    reason: str


Action = Raise | Clear


def new_drops(previous: int | None, dropped: int) -> int:
    """Entries dropped since the report before (``previous``; None: none stored). A count that
    went back means a new buffer: all of its count is new."""
    if previous is None or dropped < previous:
        return dropped
    return dropped - previous


def judge(
    previous_dropped: int | None,
    state: RawGatewayState | None,
    clock: tuple[int, int] | None,
) -> list[Action]:
    """The alarms to raise or clear for one report: ``state`` as reported (None: a status
    without one), ``clock`` the platform's clock minus the gateway's and the timestamp window,
    in ms (None: unknown)."""
    out: list[Action] = []
    if state is not None:
        entries, used, limit, dropped = state[0], state[1], state[2], state[3]
        new = new_drops(previous_dropped, dropped)
        if new > 0:
            detail = {
                "dropped": dropped,
                "new": new,
                "buffer_entries": entries,
                "buffer_bytes": used,
                "buffer_max_bytes": limit,
            }
            out.append(Raise(PlatformKind.GATEWAY_DROPPED, Severity.P3, detail))
        elif used * 2 <= limit:
            out.append(Clear(PlatformKind.GATEWAY_DROPPED, "buffer_drained"))
    if clock is not None:
        offset, window = clock
        if abs(offset) > window:
            detail = {"clock_offset_ms": offset, "window_ms": window}
            out.append(Raise(PlatformKind.GATEWAY_CLOCK, Severity.P2, detail))
        else:
            out.append(Clear(PlatformKind.GATEWAY_CLOCK, "clock_within_window"))
    return out
