"""Shared: who is on duty (pure). Shifts in, people out; the database shell lives with its user.

A shift holds a role for a community over [starts_at, ends_at). Overlapping shifts are a
handover: during the overlap both people are on duty, so nothing falls between two shifts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Shift:
    community_id: int
    role: str
    person_id: int
    starts_at: datetime
    ends_at: datetime


def on_duty(shifts: Iterable[Shift], community_id: int, role: str, at: datetime) -> list[int]:
    """The people holding ``role`` for ``community_id`` at ``at`` (timezone-aware), earliest shift first."""
    if at.tzinfo is None:
        raise ValueError("'at' must be timezone-aware; shifts are kept in UTC")
    found = [
        s
        for s in shifts
        if s.community_id == community_id and s.role == role and s.starts_at <= at < s.ends_at
    ]
    found.sort(key=lambda s: (s.starts_at, s.person_id))
    return list(dict.fromkeys(s.person_id for s in found))
