"""Analytics: when a class model is retrained, and when its false alarms have drifted (pure).

Normal operation moves (seasons, a pump replaced, a new tenant's demand), so a class model
trained once grows stale and its false alarms creep up. It is retrained on a schedule, on its
devices' recent data with the alarm episodes and the model's own anomalies left out (a fault the
model learns as normal is a fault it will not see again). Each list entry names its target rate
of false alarms per device-day; a rate observed well above it, over enough alarms to mean
something, is drift: the platform operators are told, since retraining alone may not mend it
(a sensor that drifted, a feature that no longer means what it did).

The I/O is in ``analytics.models``; the service's ``maintain_models`` joins the two.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_S = 86400.0
PAD_S = 3600.0  # data this close to an alarm or anomaly is left out of training too
MIN_TRAIN_ROWS = 500  # complete rows a retraining needs (a third of a day of one device at 1/min)


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of one device's data to leave out of training, epoch seconds."""

    device_id: int
    start: float
    end: float


def due(trained_at: float | None, now: float, every_s: float) -> bool:
    """Whether a model trained at ``trained_at`` is due for retraining at ``now`` (never when
    ``every_s`` is 0: retraining is off; never without a model: the first is trained by hand)."""
    if every_s <= 0 or trained_at is None:
        return False
    return now - trained_at >= every_s


def padded(spans: list[Span], pad_s: float = PAD_S) -> list[Span]:
    """``spans`` widened by ``pad_s`` either side: the run-up to a fault and the recovery after
    it are not normal operation either."""
    return [Span(s.device_id, s.start - pad_s, s.end + pad_s) for s in spans]


@dataclass(frozen=True, slots=True)
class Drift:
    """A list entry's observed false-alarm rate against its target."""

    code: str
    false_alarms: int
    device_days: float
    target: float  # false alarms per device-day
    factor: float

    @property
    def rate(self) -> float:
        """False alarms per device-day (0 when no device-day was watched)."""
        return self.false_alarms / self.device_days if self.device_days > 0 else 0.0

    def drifting(self, min_alarms: int) -> bool:
        """Above ``factor`` times the target, on at least ``min_alarms`` false alarms: a few
        false alarms on a small fleet are chance, not drift."""
        return self.false_alarms >= min_alarms and self.rate > self.factor * self.target
