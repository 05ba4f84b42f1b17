"""Analytics: a robust baseline of one series (one device's metric) that follows the time of day.

The local day (UTC+8) is cut into buckets, 15 minutes by default; the values of one bucket on one
day are a *visit*. Per bucket the baseline keeps, as Huber-clipped exponentially weighted averages
over visits (so roughly over days): the level (visit medians), the spread of values inside a visit
(MAD) and the day-to-day spread of the visit medians. One more slot does the same over all visits:
until a bucket has seen ``min_visits`` days, its values are scored against that all-day slot, and
its visits are not judged (no shifts while warming up).

Each value gets a robust z-score against its bucket. Each complete visit gets a z-score of its
median, which feeds two two-sided CUSUMs: a fast one (large reference ``shift_k``) for level shifts
and a slow one (small reference ``drift_k``) for drift. Crossing a threshold opens an episode in that
direction and reports one :class:`Shift`; the episode ends when both statistics are back to zero.

Causal and split-invariant: a value is scored with the state from before its visit, a visit is
judged once it is complete (a value of a later visit arrives, or ``now`` passes its end), so feeding
the same data in calls of any size gives the same scores and shifts. Values out of time order and
non-finite values are ignored (score NaN).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

CST = 8 * 3600  # local time is UTC+8, no daylight saving
MAD_TO_SIGMA = 1.4826
MEAN_AD_TO_SIGMA = 1.2533
STATE_FORMAT = 1

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BaselineParams:
    bucket_seconds: int = 900
    alpha: float = 0.1  # weight of the newest visit in a bucket's averages (about 1/days)
    min_visits: int = 5  # days a bucket needs before it judges on its own
    min_global_visits: int = 8  # visits the all-day slot needs before it judges at all
    huber: float = 3.0  # updates are clipped at this many scales
    drift_k: float = 0.5
    drift_h: float = 10.0
    shift_k: float = 2.0
    shift_h: float = 4.0
    cap: float = 2.0  # CUSUMs are capped at cap * h, so an episode ends soon after the change does
    min_scale: float = 1e-9  # absolute floor of a scale, in the series' unit
    rel_scale: float = 1e-4  # relative floor of a scale, as a fraction of |level|

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or 86400 % self.bucket_seconds:
            raise ValueError(f"bucket_seconds must divide a day, not {self.bucket_seconds}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], not {self.alpha}")


@dataclass(frozen=True, slots=True)
class Shift:
    """A level shift or drift, decided at ``at`` (end of a visit), estimated to start at ``since``."""

    kind: Literal["level_shift", "baseline_drift"]
    direction: Literal[1, -1]
    at: float
    since: float
    z: float  # z-score of the visit median that raised it
    cusum: float


@dataclass(frozen=True, slots=True)
class Scored:
    z: FloatArray  # one robust z-score per input value; NaN in warm-up or when ignored
    shifts: list[Shift] = field(default_factory=list)


def median(x: FloatArray) -> float:
    """``np.median`` of a 1-d array without NaN, at a fraction of its overhead on small arrays."""
    h = x.size // 2
    if x.size % 2:
        return float(np.partition(x, h)[h])
    p = np.partition(x, (h - 1, h))
    return 0.5 * float(p[h - 1] + p[h])


def robust_spread(x: FloatArray, med: float) -> float:
    """Sigma-equivalent MAD about ``med``; the mean absolute deviation when over half tie."""
    dev = np.abs(x - med)
    mad = median(dev)
    return MAD_TO_SIGMA * mad if mad > 0 else MEAN_AD_TO_SIGMA * float(dev.mean())


class Baseline:
    def __init__(self, params: BaselineParams | None = None) -> None:
        self.p = params or BaselineParams()
        n = 86400 // self.p.bucket_seconds + 1  # the buckets, then the all-day slot
        self._global = n - 1
        self.loc = np.zeros(n)
        self.within = np.zeros(n)
        self.between = np.zeros(n)  # mean absolute deviation of visit medians
        self.visits = np.zeros(n, dtype=np.int64)
        # CUSUMs: [slow up, slow down, fast up, fast down]
        self.cusum = np.zeros(4)
        self.active = [False, False]  # episode open: [up, down]
        self.onset: list[float | None] = [None, None]
        self.last_ts = -math.inf
        self.visit: int | None = None  # absolute index of the open visit
        self.pending: list[FloatArray] = []

    # --- scales -------------------------------------------------------------------------------

    def _floor(self, i: int) -> float:
        return max(self.p.min_scale, self.p.rel_scale * abs(float(self.loc[i])))

    def judging(self, t: float) -> bool:
        """Whether a value at ``t`` is judged against its own time-of-day bucket (warmed up)."""
        visit = math.floor((t + CST) / self.p.bucket_seconds)
        return bool(self.visits[self._bucket(visit)] >= self.p.min_visits)

    def _judge_slot(self, bucket: int) -> int | None:
        if self.visits[bucket] >= self.p.min_visits:
            return bucket
        if self.visits[self._global] >= self.p.min_global_visits:
            return self._global
        return None

    def _visit_scale(self, i: int, n: int) -> float:
        """Scale of a visit median: day-to-day spread, at least the median's own sampling noise."""
        between = MEAN_AD_TO_SIGMA * float(self.between[i])
        sampling = MEAN_AD_TO_SIGMA * float(self.within[i]) / math.sqrt(max(n, 1))
        return max(between, sampling, self._floor(i))

    def _value_scale(self, i: int) -> float:
        w, b = float(self.within[i]), MEAN_AD_TO_SIGMA * float(self.between[i])
        return max(math.hypot(w, b), self._floor(i))

    # --- streaming ----------------------------------------------------------------------------

    def update(self, ts: FloatArray, values: FloatArray, now: float | None = None) -> Scored:
        """Score ``values`` at ``ts`` (Unix seconds, non-decreasing); judge visits completed by them.

        ``now`` (Unix seconds), when given, also closes the open visit if its bucket has ended.
        """
        ts = np.asarray(ts, dtype=np.float64)
        values = np.asarray(values, dtype=np.float64)
        if ts.shape != values.shape or ts.ndim != 1:
            raise ValueError(f"ts and values must be 1-d of one length: {ts.shape}, {values.shape}")
        z = np.full(ts.shape, np.nan)
        shifts: list[Shift] = []
        if ts.size:
            running = np.fmax.accumulate(np.concatenate(([self.last_ts], ts)))
            ok = np.isfinite(ts) & np.isfinite(values) & (ts >= running[:-1])
            idx = np.flatnonzero(ok)
            self.last_ts = float(running[-1])
            visits = np.floor((ts[idx] + CST) / self.p.bucket_seconds).astype(np.int64)
            cuts = np.flatnonzero(np.diff(visits)) + 1
            for s, e in zip(np.r_[0, cuts], np.r_[cuts, idx.size], strict=True):
                if e == s:
                    continue
                v = int(visits[s])
                if self.visit is not None and v != self.visit:
                    self._close(shifts)
                self.visit = v
                x = values[idx[s:e]]
                slot = self._judge_slot(self._bucket(v))
                if slot is not None:
                    z[idx[s:e]] = (x - self.loc[slot]) / self._value_scale(slot)
                self.pending.append(x)
        if now is not None and self.visit is not None and now >= self._visit_end(self.visit):
            self._close(shifts)
        return Scored(z, shifts)

    def _bucket(self, visit: int) -> int:
        return visit % self._global

    def _visit_end(self, visit: int) -> float:
        return float((visit + 1) * self.p.bucket_seconds - CST)

    def _close(self, shifts: list[Shift]) -> None:
        assert self.visit is not None
        x = np.concatenate(self.pending)
        bucket, end = self._bucket(self.visit), self._visit_end(self.visit)
        med = median(x)
        spread = robust_spread(x, med)
        if self.visits[bucket] >= self.p.min_visits:  # shifts only against the bucket's own days
            z = (med - float(self.loc[bucket])) / self._visit_scale(bucket, x.size)
            self._step(z, end - self.p.bucket_seconds, end, shifts)
        self._learn(bucket, med, spread, x.size, self.p.alpha)
        self._learn(self._global, med, spread, x.size, self.p.bucket_seconds / 86400)
        self.visit, self.pending = None, []

    def _learn(self, i: int, med: float, spread: float, n: int, alpha: float) -> None:
        k = int(self.visits[i])
        self.visits[i] = k + 1
        if k == 0:
            self.loc[i], self.within[i], self.between[i] = med, spread, 0.0
            return
        d = med - float(self.loc[i])
        if k >= self.p.min_visits:  # robust once there is something to be robust against
            lim = self.p.huber * self._visit_scale(i, n)
            d = min(max(d, -lim), lim)
            if self.within[i] > 0:
                spread = min(spread, self.p.huber * float(self.within[i]))
        a = max(alpha, 1.0 / (k + 1))
        self.loc[i] += a * d
        self.within[i] += a * (spread - self.within[i])
        self.between[i] += max(alpha, 1.0 / k) * (abs(d) - self.between[i])

    def _step(self, z: float, start: float, end: float, shifts: list[Shift]) -> None:
        p, c = self.p, self.cusum
        was = c.copy()
        for j, (k, h) in enumerate(((p.drift_k, p.drift_h), (p.shift_k, p.shift_h))):
            c[2 * j] = min(max(0.0, c[2 * j] + z - k), p.cap * h)
            c[2 * j + 1] = min(max(0.0, c[2 * j + 1] - z - k), p.cap * h)
        for d, direction in ((0, 1), (1, -1)):
            slow, fast = c[d], c[2 + d]
            if slow == 0:
                self.onset[d] = None
            elif was[d] == 0 or self.onset[d] is None:
                self.onset[d] = start
            if not self.active[d] and (fast >= p.shift_h or slow >= p.drift_h):
                self.active[d] = True
                kind: Literal["level_shift", "baseline_drift"] = (
                    "level_shift" if fast >= p.shift_h else "baseline_drift"
                )
                stat = fast if kind == "level_shift" else slow
                onset = self.onset[d]
                since = start if onset is None else onset
                shifts.append(Shift(kind, 1 if direction > 0 else -1, end, since, z, float(stat)))
            elif self.active[d] and slow == 0 and fast == 0:
                self.active[d] = False

    @property
    def episode(self) -> Literal[1, 0, -1]:
        """Direction of the shift episode that is open (reported, not yet over), else 0."""
        return 1 if self.active[0] else -1 if self.active[1] else 0

    # --- checkpoints --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot; ``Baseline.from_state`` continues exactly where this one is."""
        return {
            "format": STATE_FORMAT,
            "params": asdict(self.p),
            "loc": self.loc.tolist(),
            "within": self.within.tolist(),
            "between": self.between.tolist(),
            "visits": self.visits.tolist(),
            "cusum": self.cusum.tolist(),
            "active": list(self.active),
            "onset": list(self.onset),
            "last_ts": None if math.isinf(self.last_ts) else self.last_ts,
            "visit": self.visit,
            "pending": np.concatenate(self.pending).tolist() if self.pending else [],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Baseline:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"baseline state format {state.get('format')!r} is not {STATE_FORMAT}")
        b = cls(BaselineParams(**state["params"]))
        b.loc = np.asarray(state["loc"], dtype=np.float64)
        b.within = np.asarray(state["within"], dtype=np.float64)
        b.between = np.asarray(state["between"], dtype=np.float64)
        b.visits = np.asarray(state["visits"], dtype=np.int64)
        b.cusum = np.asarray(state["cusum"], dtype=np.float64)
        b.active = [bool(a) for a in state["active"]]
        b.onset = [None if o is None else float(o) for o in state["onset"]]
        b.last_ts = -math.inf if state["last_ts"] is None else float(state["last_ts"])
        b.visit = state["visit"]
        pending = np.asarray(state["pending"], dtype=np.float64)
        b.pending = [pending] if pending.size else []
        return b
