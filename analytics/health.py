"""Analytics: the platform's own health as analytics sees it, kept apart from the devices' (pure).

``FeedWatch`` follows the feed from ingest on analytics' clock (the wall clock, or the data's own
time): when it is silent, when it resumed, and from when device silence may be judged again.
``MassSilence`` holds back OFFLINE judgments briefly so that a large share of devices going silent
together becomes one platform alarm rather than an alarm and a work order per device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lifecycle.alarms import Observation

NEVER = float("-inf")


@dataclass(slots=True)
class FeedWatch:
    """The feed's state. Times are on analytics' clock."""

    grace_s: float
    newest: float = NEVER  # the newest reading time seen (capped at the wall clock in wall mode)
    started_at: float | None = None
    judge_from: float = math.inf  # no device is judged offline before this
    silence_from: float = NEVER  # device silence counts from no earlier than this
    silent: bool = False  # a feed_silent platform alarm is open
    silent_after: float = 0.0  # the threshold in force while ``silent``

    def start(self, now: float) -> bool:
        """Analytics looks at the feed for the first time at ``now``; whether this was it."""
        if self.started_at is not None:
            return False
        self.started_at = now
        self.resume(now)
        return True

    def resume(self, now: float, *, grace: bool = True) -> None:
        """The feed flows again at ``now``: silence counts from now; with ``grace``, nobody is
        judged offline before the grace has passed."""
        self.silence_from = max(self.silence_from, now)
        if grace:
            self.judge_from = now + self.grace_s

    def lag(self, now: float) -> float:
        """How long no new reading has arrived (since the start when none has)."""
        if self.started_at is None:
            return 0.0
        return now - max(self.newest, self.started_at)

    def jump(self, t: float) -> float:
        """How far a reading at ``t`` moves the feed's time forward (0 for the first)."""
        return 0.0 if self.newest == NEVER else max(0.0, t - self.newest)

    def heard(self, t: float) -> None:
        self.newest = max(self.newest, t)

    def may_judge(self, t: float) -> bool:
        """Whether device silence may be judged at ``t``."""
        return not self.silent and t >= self.judge_from


@dataclass(frozen=True, slots=True)
class MassVerdict:
    release: list[Observation] = field(default_factory=list)  # on to the alarm lifecycle
    wave: list[int] = field(default_factory=list)  # devices taken into a mass silence now
    ended: list[int] | None = None  # the mass silence ended; its devices still silent


@dataclass(slots=True)
class MassSilence:
    """OFFLINE judgments, held back ``window_s`` to see whether they come together.

    When the devices held back reach ``share`` of the devices heard from (with at least
    ``min_devices`` heard from), they are taken into one mass silence: no OFFLINE alarm for them
    while it lasts. It ends when fewer than half that many are still silent (so one device
    coming back does not hand the rest to the lifecycle one by one). Below ``min_devices``
    nothing is held back.
    """

    share: float
    min_devices: int
    window_s: float
    pending: dict[tuple[int, str], Observation] = field(default_factory=dict)
    silenced: set[int] = field(default_factory=set)
    active: bool = False

    def threshold(self, watched: int) -> int | None:
        """How many devices silent together make a mass silence; None: the rule is off."""
        if watched < self.min_devices or self.share <= 0:
            return None
        return max(1, math.ceil(self.share * watched))

    def forget(self, device_id: int) -> None:
        self.silenced.discard(device_id)
        for key in [k for k in self.pending if k[0] == device_id]:
            del self.pending[key]

    def reset(self) -> None:
        """Start afresh (the feed resumed: judgments made before it are void)."""
        self.pending.clear()

    def step(self, observations: list[Observation], watched: int, t: float) -> MassVerdict:
        """Offline ``observations`` at ``t`` of devices with no OFFLINE alarm open, ``watched``
        devices heard from in all: what goes on to the lifecycle now, and what changed."""
        threshold = self.threshold(watched)
        release: list[Observation] = []
        for obs in observations:
            if not obs.active:  # heard from again
                self.forget(obs.device_id)
            elif obs.device_id in self.silenced:
                continue
            elif threshold is None and not self.pending:
                release.append(obs)
            else:
                self.pending.setdefault((obs.device_id, obs.code), obs)
        ended: list[int] | None = None
        if self.active and (threshold is None or len(self.silenced) < threshold / 2):
            ended = sorted(self.silenced)
            self.silenced.clear()
            self.active = False
        waiting = {d for d, _ in self.pending}
        wave: list[int] = []
        if threshold is not None and len(waiting) >= threshold:
            wave = sorted(waiting)
            self.silenced.update(waiting)
            self.active = True
            self.pending.clear()
        else:
            for key, obs in list(self.pending.items()):
                if threshold is None or t - obs.t >= self.window_s:
                    release.append(obs)
                    del self.pending[key]
        return MassVerdict(release, wave, ended)
