"""Lifecycle: alarms, from the observations detectors make to open, re-triggered, raised and
cleared alarms (pure).

One open alarm per (device, event code). A condition that holds again while its alarm is open
re-triggers it (counted, never duplicated); an alarm clears only once the condition has held
normal for the list's hold time, so flapping stays one alarm; severity is raised when the
condition persists past the list's ``severity_raise``. Observations may come late (an event
handled after later readings, a backlog replayed after a restart): one older than what its
alarm already knows changes nothing, so an alarm is never cleared before it opened.
Acknowledgement is recorded in the database by people; the lifecycle never undoes it.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from core import correlation
from core.severity import Severity
from lifecycle.deadlines import limit_seconds
from responsibility.model import Entry


@dataclass(frozen=True, slots=True)
class Observation:
    """Whether a list entry's filing condition holds for a device at data time ``t``."""

    device_id: int
    code: str  # the responsibility list's event code
    t: float
    active: bool
    detector: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


class Kind(StrEnum):
    OPEN = "open"
    RETRIGGER = "retrigger"
    NORMAL = "normal"
    CLEAR = "clear"
    RAISE = "raise"


@dataclass(slots=True)
class Alarm:
    device_id: int
    code: str
    severity: str  # a Severity's text, as stored
    detector: str
    opened_at: float
    last_triggered_at: float
    normal_since: float | None = None
    triggers: int = 1
    flaps: int = 0
    id: int | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)  # what the detector saw (explained)


@dataclass(frozen=True, slots=True)
class Transition:
    kind: Kind
    alarm: Alarm
    t: float


@dataclass(frozen=True, slots=True)
class Policy:
    """What the lifecycle needs of a list entry."""

    severity: Severity
    hold_seconds: float
    raise_after_s: float | None = None
    raise_to: Severity | None = None


def policy_of(entry: Entry | None, hours_per_day: float) -> Policy | None:
    """The lifecycle's view of a responsibility-list entry (None: no entry, no alarm); a
    severity raise after working days counts ``hours_per_day`` hours a day (the calendar's)."""
    if entry is None:
        return None
    r = entry.severity_raise
    return Policy(
        entry.severity,
        0.0 if entry.closing is None else float(entry.closing.hold_seconds),
        None if r is None else limit_seconds(r.after, hours_per_day),
        None if r is None else r.to,
    )


@dataclass(slots=True)
class Lifecycle:
    policy: Callable[[int, str], Policy | None]  # (device, code) -> the entry's policy
    open: dict[tuple[int, str], Alarm] = field(default_factory=dict)

    def observe(self, obs: Observation) -> list[Transition]:
        key = (obs.device_id, obs.code)
        alarm = self.open.get(key)
        if alarm is not None and _stale(alarm, obs):
            return []
        if obs.active:
            if alarm is None:
                pol = self.policy(obs.device_id, obs.code)
                if pol is None:
                    return []
                alarm = Alarm(
                    obs.device_id,
                    obs.code,
                    str(pol.severity),
                    obs.detector,
                    obs.t,
                    obs.t,
                    detail=dict(obs.detail),
                )
                self.open[key] = alarm
                return [Transition(Kind.OPEN, alarm, obs.t)]
            if alarm.normal_since is not None:
                alarm.normal_since = None
                alarm.triggers += 1
                alarm.flaps += 1
                alarm.last_triggered_at = obs.t
                if obs.detail:  # a new episode: its own explanation
                    alarm.detail = dict(obs.detail)
                return [Transition(Kind.RETRIGGER, alarm, obs.t)]
            return []
        if alarm is None or alarm.normal_since is not None:
            return self._maybe_clear(key, obs.t) if alarm is not None else []
        alarm.normal_since = obs.t
        return [Transition(Kind.NORMAL, alarm, obs.t), *self._maybe_clear(key, obs.t)]

    def tick(
        self,
        now: float,
        *,
        skip: Container[int] = (),
        on_error: Callable[[int, Exception], None] | None = None,
    ) -> list[Transition]:
        """Clears whose hold has passed and severity raises due at ``now``; the alarms of the
        devices in ``skip`` wait. With ``on_error``, an alarm whose step fails is reported as
        (device, error) and the others go on; without it the error propagates."""
        out: list[Transition] = []
        for key in list(self.open):
            if key[0] in skip:
                continue
            try:
                out.extend(self._maybe_clear(key, now))
                alarm = self.open.get(key)
                if alarm is not None:
                    out.extend(self._maybe_raise(alarm, now))
            except Exception as e:
                if on_error is None:
                    raise
                on_error(key[0], e)
        return out

    def forget_device(self, device_id: int) -> list[Alarm]:
        """Drop a device's open alarms (it is gone, or its state is reloaded); return them."""
        keys = [k for k in self.open if k[0] == device_id]
        return [self.open.pop(k) for k in keys]

    def adopt(self, alarms: Iterable[Alarm]) -> None:
        """Take alarms open in the database as open here (a start, or a reload)."""
        for a in alarms:
            self.open[(a.device_id, a.code)] = a

    def _maybe_clear(self, key: tuple[int, str], now: float) -> list[Transition]:
        alarm = self.open[key]
        pol = self.policy(*key)
        hold = pol.hold_seconds if pol is not None else 0.0
        if alarm.normal_since is None:
            return []
        # Normal from no earlier than the opening, whatever normal_since says (an alarm adopted
        # from the database): a clear is never recorded before the alarm opened.
        normal = max(alarm.normal_since, alarm.opened_at)
        if now - normal >= hold:
            del self.open[key]
            return [Transition(Kind.CLEAR, alarm, max(now, normal + hold))]
        return []

    def _maybe_raise(self, alarm: Alarm, now: float) -> list[Transition]:
        pol = self.policy(alarm.device_id, alarm.code)
        if (
            pol is None
            or pol.raise_after_s is None
            or pol.raise_to is None
            or alarm.normal_since is not None
            or not Severity(pol.raise_to).more_severe_than(alarm.severity)
            or now - alarm.opened_at < pol.raise_after_s
        ):
            return []
        alarm.severity = str(pol.raise_to)
        return [Transition(Kind.RAISE, alarm, now)]


def correlation_id(alarm: Alarm, device_uid: str) -> str:
    """The alarm's correlation id: that of the message it opened at (its ``opened_at`` is that
    message's data time), the same id ingest logged when it stored the message and notify logs
    with every delivery about the alarm (``core.correlation``). An alarm that silence opened
    (offline) has the id of no message, but one all the same: that of its opening time."""
    return correlation.at(device_uid, alarm.opened_at)


def _stale(alarm: Alarm, obs: Observation) -> bool:
    """Whether ``obs`` is older than what ``alarm`` already knows, and so says nothing of now:
    normal before the condition was last seen holding (a reading replayed after a restart, an
    event handled after later readings), or holding before it was seen normal. Acting on it
    would record a clear earlier than the alarm's opening, or re-trigger a recovered alarm on
    old news."""
    if not obs.active:
        return obs.t < alarm.last_triggered_at
    return alarm.normal_since is not None and obs.t < alarm.normal_since
