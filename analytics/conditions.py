"""Analytics: streaming, causal rule detectors compiled from the responsibility list (pure).

Each filing condition of the list becomes a ``Check``: given one device's latest view at time t
it says whether the raw condition holds (True), does not (False), or cannot tell from this
sample (None). ``for_seconds`` is applied by ``Engine``: a condition must hold continuously that
long. Decisions at t use only data up to t.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class DeviceView:
    """What the detectors know of one device: latest values and a little history."""

    device_id: int
    device_class: str
    report_interval_s: float
    rated_speed: float = 1.0
    values: dict[str, float] = field(default_factory=dict)
    prev: dict[str, tuple[float, float]] = field(
        default_factory=dict
    )  # metric -> (t, value) before
    value_t: dict[str, float] = field(default_factory=dict)
    runs: dict[str, tuple[float, int]] = field(default_factory=dict)  # metric -> (value, repeats)
    last_seen: float = float("-inf")  # never heard from
    # The device's fault codes still raised, each with the data time it was raised at: a
    # sample older than that (a backlog replayed after a restart) does not see it yet.
    active_codes: dict[str, float] = field(default_factory=dict)
    # Silence is counted from no earlier than this: when the feed last resumed (analytics
    # started, or data flowed again after a gap), so the platform's own outage is not counted
    # as the device's silence.
    silence_from: float = float("-inf")

    def update(self, t: float, values: Mapping[str, float]) -> bool:
        """Take a sample; False (and no change) when it is older than what was seen."""
        if t < self.last_seen:
            return False
        for name, v in values.items():
            old_t = self.value_t.get(name)
            if old_t is not None and t <= old_t:
                continue
            if old_t is not None:
                self.prev[name] = (old_t, self.values[name])
            value, repeats = self.runs.get(name, (float("nan"), 0))
            self.runs[name] = (v, repeats + 1 if v == value else 1)
            self.values[name] = v
            self.value_t[name] = t
        self.last_seen = t
        return True


class Check(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def for_seconds(self) -> float: ...

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None: ...


@dataclass(frozen=True, slots=True)
class Threshold:
    metric: str
    below: float | None = None
    above: float | None = None
    for_seconds: float = 0.0
    kind: str = "threshold"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is None or self.metric not in sample:
            return None
        v = sample[self.metric]
        return (self.below is not None and v < self.below) or (
            self.above is not None and v > self.above
        )


@dataclass(frozen=True, slots=True)
class State:
    metric: str
    equals: float
    for_seconds: float = 0.0
    kind: str = "state"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is None or self.metric not in sample:
            return None
        return sample[self.metric] == self.equals


@dataclass(frozen=True, slots=True)
class EventCodes:
    codes: frozenset[str]
    for_seconds: float = 0.0
    kind: str = "event_code"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        return any(view.active_codes.get(code, t + 1) <= t for code in self.codes)


@dataclass(frozen=True, slots=True)
class Trapped:
    for_seconds: float = 60.0
    kind: str = "trapped"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        v = view.values
        if sample is None or "car_status" not in v or "passenger_present" not in v:
            return None
        stopped = v["car_status"] == 0 and v["passenger_present"] == 1
        return stopped and (v.get("door_zone", 1) == 0 or v.get("door_state", 1) == 0)


@dataclass(frozen=True, slots=True)
class DoorOpenMoving:
    for_seconds: float = 0.0
    kind: str = "door_open_moving"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is None or "car_status" not in sample or "door_state" not in sample:
            return None
        return sample["car_status"] == 1 and sample["door_state"] != 0


@dataclass(frozen=True, slots=True)
class Overspeed:
    factor: float = 1.2
    for_seconds: float = 0.0
    kind: str = "overspeed"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is None or "speed" not in sample:
            return None
        return sample["speed"] > self.factor * view.rated_speed


@dataclass(frozen=True, slots=True)
class Offline:
    intervals: float = 3.0
    for_seconds: float = 0.0
    kind: str = "offline"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is not None:
            return False  # heard from just now
        if view.last_seen == float("-inf"):
            return None
        return t - max(view.last_seen, view.silence_from) > self.silence(view)

    def silence(self, view: DeviceView) -> float:
        """How long ``view``'s device may be silent before this holds."""
        return self.intervals * view.report_interval_s


@dataclass(frozen=True, slots=True)
class Stuck:
    metric: str
    samples: int = 30
    for_seconds: float = 0.0
    kind: str = "stuck"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is None or self.metric not in sample:
            return None
        return view.runs.get(self.metric, (0.0, 0))[1] >= self.samples


@dataclass(frozen=True, slots=True)
class Jump:
    metric: str
    max_rate_per_s: float
    for_seconds: float = 0.0
    kind: str = "jump"

    def __call__(
        self, view: DeviceView, t: float, sample: Mapping[str, float] | None
    ) -> bool | None:
        if sample is None or self.metric not in sample or self.metric not in view.prev:
            return None
        t0, v0 = view.prev[self.metric]
        dt = max(view.value_t[self.metric] - t0, 1e-3)
        return abs(view.values[self.metric] - v0) / dt > self.max_rate_per_s


def compile_filing(detector: str, params: Mapping[str, Any]) -> Check | None:
    """A check for a filing condition; None for the learned detectors, which run elsewhere."""
    p = {k: v for k, v in params.items() if k != "detector" and v is not None}
    match detector:
        case "threshold":
            return Threshold(**p)
        case "state":
            return State(**p)
        case "event_code":
            return EventCodes(codes=frozenset(p.pop("codes")), **p)
        case "trapped":
            return Trapped(**p)
        case "door_open_moving":
            return DoorOpenMoving(**p)
        case "overspeed":
            return Overspeed(**p)
        case "offline":
            return Offline(**p)
        case "stuck":
            return Stuck(**p)
        case "jump":
            return Jump(**p)
        case "baseline" | "multivariate":
            return None
    raise ValueError(f"unknown detector {detector!r}")


@dataclass(slots=True)
class Held:
    """``for_seconds`` applied to a raw condition: since when it has held.

    Steps need not come in time order: a device's events and its readings reach analytics in
    separate feed messages (ingest publishes a committed batch's readings before its events), so
    an event is often evaluated at its own time after samples later than it. Such a look back
    cannot undo what the later steps found: a condition seen holding from ``since`` is not
    ended by a step before ``since`` that finds it not holding (it simply had not begun), and
    one that finds it holding moves ``since`` back to then."""

    since: float | None = None

    def step(self, raw: bool, t: float, for_seconds: float) -> bool | None:
        """Whether the condition has held ``for_seconds`` at ``t``; None when this step, older
        than the moment it began to hold, says nothing of now."""
        if self.since is not None and t < self.since:  # a look back at before it was seen
            if not raw:
                return None
            self.since = t  # it held earlier than first seen
            return True if for_seconds <= 0 else None
        if not raw:
            self.since = None
            return False
        if self.since is None:
            self.since = t
        return t - self.since >= for_seconds
