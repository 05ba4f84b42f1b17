"""Analytics: one device metric's robust deviation in the stream, for the list's ``baseline``
filings (pure).

The metric's first ``calibrate_s`` seconds of data time (and at least ``min_rows`` readings) are
calibration: the first part fits a :class:`~analytics.robust.RobustDetector` (level, trend and
noise, and the daily profile when calibration spans ``min_periods`` days), the last ``held_back``
part sets the threshold with :func:`~analytics.robust.calibrate_threshold`: the smallest for which
the episode rules would have opened at most ``rate_per_day`` × the held-back days there, times
``margin``, and never below the filing's ``z``. The level follows with a time constant ``tau_s``
(at least ``confirm_s``), whatever the reporting interval. From then on every reading is scored and an
:class:`~analytics.episodes.EpisodeTracker` (``confirm_s``: the filing's ``for_seconds``;
``hold_s``) says whether the metric is in an anomaly episode.

Calibration that fails (a metric that never moves, too few numbers) starts again on the next
readings. :meth:`Deviation.to_state` and :meth:`Deviation.from_state` carry the whole state,
calibrating or judging, through JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from analytics.episodes import Episode, EpisodeTracker
from analytics.robust import DAY, RobustDetector, RobustParams, calibrate_threshold

STATE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class DeviationSettings:
    z: float = 6.0  # the threshold is never below this many robust scales
    confirm_s: float = 0.0  # above the threshold this long opens an episode
    hold_s: float = 900.0  # no reading above it this long ends the episode
    calibrate_s: float = 2 * DAY  # data time of calibration (two daily cycles)
    min_rows: int = 300  # and at least this many readings
    held_back: float = 0.5  # share of calibration that sets the threshold (a whole day)
    rate_per_day: float = 0.05  # false-alarm target on the held-back stretch
    margin: float = 1.5
    tau_s: float = 1800.0  # the level's time constant, at least confirm_s: a fault is learned
    # as the new normal after six of them, so it always outlasts the confirmation

    def __post_init__(self) -> None:
        if not (math.isfinite(self.z) and self.z > 0):
            raise ValueError(f"z must be a positive number, not {self.z!r}")
        if not 0.05 <= self.held_back <= 0.8:
            raise ValueError(f"held_back must be between 0.05 and 0.8, not {self.held_back!r}")
        if not (math.isfinite(self.calibrate_s) and self.calibrate_s > 0):
            raise ValueError(f"calibrate_s must be a positive number, not {self.calibrate_s!r}")
        if self.min_rows < 20:
            raise ValueError(f"min_rows must be at least 20, not {self.min_rows!r}")


class Deviation:
    def __init__(self, metric: str, settings: DeviationSettings | None = None) -> None:
        self.metric = metric
        self.settings = settings or DeviationSettings()
        self.cal_t: list[float] = []
        self.cal_x: list[float] = []
        self.detector: RobustDetector | None = None
        self.tracker: EpisodeTracker | None = None

    @property
    def judging(self) -> bool:
        return self.tracker is not None

    @property
    def threshold(self) -> float | None:
        return None if self.tracker is None else self.tracker.threshold

    @property
    def open(self) -> Episode | None:
        return None if self.tracker is None else self.tracker.open

    def update(self, t: float, value: float) -> bool | None:
        """Feed one reading; whether an anomaly episode is open (None while calibrating)."""
        if self.detector is None or self.tracker is None:
            if math.isfinite(t) and math.isfinite(value):
                if self.cal_t and t < self.cal_t[-1]:
                    return None  # out of order: calibration rows stay in time order
                self.cal_t.append(float(t))
                self.cal_x.append(float(value))
            s = self.settings
            if len(self.cal_t) >= s.min_rows and self.cal_t[-1] - self.cal_t[0] >= s.calibrate_s:
                self._calibrate()
            return None
        ts = np.array([t], dtype=np.float64)
        score, z = self.detector.score(ts, np.array([[value]], dtype=np.float64))
        self.tracker.update(ts, score, z)
        return self.tracker.open is not None

    def _calibrate(self) -> None:
        s = self.settings
        ts = np.array(self.cal_t)
        x = np.array(self.cal_x).reshape(-1, 1)
        k = int(len(ts) * (1.0 - s.held_back))
        det = RobustDetector([self.metric], RobustParams(tau_s=max(s.tau_s, s.confirm_s)))
        try:
            det.fit(ts[:k], x[:k])
        except ValueError:  # nothing to learn from (yet): calibrate on the newer half again
            half = len(self.cal_t) // 2
            del self.cal_t[:half], self.cal_x[:half]
            return
        hb, _ = det.score(ts[k:], x[k:])
        cal = calibrate_threshold(
            ts[k:],
            hb,
            rate_per_day=s.rate_per_day,
            confirm_s=s.confirm_s,
            hold_s=s.hold_s,
            margin=s.margin,
            floor=s.z,
        )
        det.arm(cal.threshold)
        self.detector = det
        self.tracker = EpisodeTracker(
            cal.threshold, confirm_s=s.confirm_s, hold_s=s.hold_s, columns=[self.metric]
        )
        self.cal_t, self.cal_x = [], []

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot; :meth:`from_state` continues exactly where this one is."""
        return {
            "format": STATE_FORMAT,
            "metric": self.metric,
            "settings": asdict(self.settings),
            "calibration": [self.cal_t, self.cal_x],
            "detector": None if self.detector is None else self.detector.to_state(),
            "tracker": None if self.tracker is None else self.tracker.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Deviation:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"deviation state format {state.get('format')!r} is not {STATE_FORMAT}"
            )
        d = cls(str(state["metric"]), DeviationSettings(**state["settings"]))
        cal_t, cal_x = state["calibration"]
        d.cal_t, d.cal_x = [float(v) for v in cal_t], [float(v) for v in cal_x]
        if state["detector"] is not None:
            d.detector = RobustDetector.from_state(state["detector"])
        if state["tracker"] is not None:
            d.tracker = EpisodeTracker.from_state(state["tracker"])
        return d
