"""Notify: the notification policy (pure) — what goes out at once, what waits for companions,
what quiet hours hold back, how often reminders repeat, and how a batch drops duplicates.

Grouping follows Alertmanager: notifications of a grouped severity for the same community and
responsible party wait ``group_wait`` for companions after the first arrives, then go out as one
message; the next message of that group goes out no sooner than ``group_interval`` after the
last. Quiet hours (local time) hold the quiet severities back until they end; P0 is never held.

A P0 goes out at once on every channel but a voice call (SMS among them); if nobody has
acknowledged it ``voice_after`` later, the people on duty get a voice call (a ``voice_call``
row, one per alarm), on their voice channels only. Nothing else ever reaches a voice channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.severity import Severity


class PolicyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, spec: str) -> QuietHours | None:
        """``"22:00-07:00"`` (may wrap midnight); empty means none."""
        if not spec.strip():
            return None
        try:
            a, b = (time.fromisoformat(p.strip()) for p in spec.split("-"))
        except ValueError:
            raise PolicyError(
                f"quiet hours {spec!r}: write them as HH:MM-HH:MM in local time, e.g. 22:00-07:00"
            ) from None
        if a == b:
            raise PolicyError(f"quiet hours {spec!r}: start and end are the same time")
        return cls(a, b)

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


@dataclass(frozen=True, slots=True)
class Policy:
    grouped: frozenset[str] = frozenset({"P1", "P2", "P3"})
    group_wait: timedelta = timedelta(seconds=30)
    group_interval: timedelta = timedelta(minutes=5)
    quiet: QuietHours | None = None
    quiet_severities: frozenset[str] = frozenset({"P2", "P3"})
    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    reminder_every: Mapping[str, timedelta] = field(
        default_factory=lambda: {
            "P0": timedelta(minutes=5),
            "P1": timedelta(minutes=15),
            "P2": timedelta(hours=1),
            "P3": timedelta(hours=4),
        }
    )
    voice_after: timedelta = timedelta(minutes=5)

    @classmethod
    def build(
        cls,
        *,
        grouped: Iterable[str],
        group_wait_s: float,
        group_interval_s: float,
        quiet_hours: str,
        quiet_severities: Iterable[str],
        timezone: str,
        reminder_minutes: Mapping[str, float],
        voice_after_s: float = 300.0,
    ) -> Policy:
        grouped, quiet_sev = frozenset(grouped), frozenset(quiet_severities)
        known = {str(s) for s in Severity}
        for name, sev in (
            ("grouped", grouped),
            ("quiet", quiet_sev),
            ("reminder", reminder_minutes),
        ):
            if unknown := set(sev) - known:
                raise PolicyError(f"{name} severities: {sorted(unknown)} are not P0..P3")
        if "P0" in grouped or "P0" in quiet_sev:
            raise PolicyError("P0 goes out at once: it can be neither grouped nor held back")
        if group_wait_s < 0 or group_interval_s < 0:
            raise PolicyError("group wait and group interval are seconds, zero or more")
        if bad := {k: v for k, v in reminder_minutes.items() if v <= 0}:
            raise PolicyError(f"reminder intervals must be positive minutes: {bad}")
        if not 0 < voice_after_s <= 86400:
            raise PolicyError("the wait before a P0's voice call is 1 s to 24 h")
        return cls(
            grouped=grouped,
            group_wait=timedelta(seconds=group_wait_s),
            group_interval=timedelta(seconds=group_interval_s),
            quiet=QuietHours.parse(quiet_hours),
            quiet_severities=quiet_sev,
            tz=ZoneInfo(timezone),
            reminder_every={k: timedelta(minutes=v) for k, v in reminder_minutes.items()},
            voice_after=timedelta(seconds=voice_after_s),
        )

    def held(self, severity: str, now: datetime) -> bool:
        """Whether quiet hours hold this severity back at ``now``."""
        return (
            self.quiet is not None
            and severity in self.quiet_severities
            and self.quiet.contains(now.astimezone(self.tz).time())
        )


def reaches(row_kind: str, channel_kind: str) -> bool:
    """Whether a notification of ``row_kind`` goes to a channel of ``channel_kind``: a voice
    call to the voice channels, and only there."""
    return (row_kind == "voice_call") == (channel_kind == "voice")


def group_key(community_id: int, party: str | None, severity: str) -> str:
    return f"{community_id}:{party or ''}:{severity}"


def merge_batch(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per alarm, in order of first appearance, carrying its latest news: an alarm
    opened and cleared within the batch is reported once, as cleared; reminders for an alarm
    already in the batch add nothing."""
    latest: dict[Any, dict[str, Any]] = {}
    for p in payloads:
        key = p.get("alarm_id", id(p))
        prev = latest.get(key)
        if prev is not None and p.get("kind") == "reminder":
            continue
        latest[key] = p if prev is None else {**prev, **p, "opened_at": prev.get("opened_at")}
    return list(latest.values())


def batch_message(members: Iterable[tuple[dict[str, Any], str]]) -> dict[str, Any] | None:
    """The message for a batch, from its rows' (payload, alarm state): the single notification,
    or a group of them without duplicates; None when nothing in it is still worth saying (a
    reminder for an alarm no longer active is not)."""
    items = merge_batch(
        [p for p, state in members if not (p.get("kind") == "reminder" and state != "active")]
    )
    if not items:
        return None
    if len(items) == 1:
        return dict(items[0])
    first = items[0]
    return {
        "kind": "group",
        "severity": first.get("severity"),
        "community": first.get("community"),
        "responsible": first.get("responsible"),
        "count": len(items),
        "items": items,
    }
