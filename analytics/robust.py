"""Analytics: a robust per-column detector that is right from the end of a short calibration.

Each column is followed by a local level-and-trend filter (Holt's method in continuous time, time
constant ``tau_s`` seconds), so slow warming or a slow demand change over a run is followed, not
reported. A row's *deviation* is the difference between its value and the filter's prediction,
smoothed over ``smooth_s`` seconds and divided by a robust scale of the same deviations learned in
calibration: a signed z per column. A second, one-sided statistic watches the *spread* of the
deviations over ``spread_s`` seconds (noise rising, as with cavitation or a loose rotor), as a
robust z of its logarithm. A column's score is the larger of ``|z|`` and the spread z; a row's score
is the largest over its columns.

The filter learns from a value only while that column is calm: once armed with the alarm
threshold (:meth:`RobustDetector.arm`), a value scoring above it (or above ``freeze_z``) does not
move the level, and the level stays frozen ``freeze_s`` seconds after the last such value,
extrapolated with the trend of the last calm rows (the rows just before the alarm held the
fault's onset). So a fault is not absorbed while it lasts; Huber-clipped updates keep single
outliers out as well. A change lasting ``relearn_s``, or a deviation turning to the other side
while frozen (the fault ended while the level moved on), is learned again as the new normal.
Columns that are states (:func:`is_state`: pump on/off, a pump's flow) are not scored.

When calibration covers at least ``min_periods`` days, each column's median daily profile (per
hour of local day) is taken out first, so a daily demand cycle is not a deviation, and the level
follows with a time constant of a day (what is left should be steady, so a failure building up
over hours stands out); with less history the profile is not used, since a profile from one or two
days would be noise.

Everything is in seconds of data time; defaults scale with the median row interval of calibration
(1 s to hourly). Causal: the score of a row uses rows up to it only. Irregular rows are fine; across
a gap longer than ``gap_s`` the trend is not extrapolated further than ``gap_s``.

Thresholds: :func:`calibrate_threshold` picks the smallest threshold for which an
:class:`~analytics.episodes.EpisodeTracker` would have opened no more than the target number of
false alarms on held-back calibration data, times a safety margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics.episodes import EpisodeTracker

FloatArray = NDArray[np.float64]
MAD_TO_SIGMA = 1.4826
DAY = 86400.0
MAX_STATES = 5  # a column with at most this many distinct values in calibration is a state
STATE_FORMAT = 1
# The arrays that make up a fitted detector's state (``fit_z``, kept for the relation model's
# training, is not part of it).
_ARRAYS = (
    "profile",
    "scale_f",
    "scale_r",
    "spread_mid",
    "spread_scale",
    "level",
    "trend",
    "f",
    "v",
    "frozen_until",
    "frozen_since",
    "freeze_sign",
    "calm_trend",
    "fit_trend",
)


@dataclass(frozen=True, slots=True)
class RobustParams:
    """Settings in seconds; ``None`` means "a multiple of the median row interval ``dt``"."""

    tau_s: float | None = None  # level/trend time constant (default 30 dt, at least 30 s; a day
    # when the daily profile is used)
    trend_tau_s: float | None = None  # how fast the trend adapts (default tau)
    smooth_s: float | None = None  # deviation smoothing (default 2 dt)
    spread_s: float | None = None  # spread window (default 30 dt)
    gap_s: float | None = None  # longest extrapolation of the trend (default 10 dt)
    freeze_z: float | None = None  # values scoring above this do not teach (default: threshold)
    freeze_s: float | None = None  # the level stays frozen this long after (default tau)
    relearn_s: float | None = None  # a change lasting this long is the new normal (default 6 tau)
    huber: float = 3.0  # level updates clipped at this many scales
    min_periods: float = 3.0  # days of calibration needed before the daily profile is used
    utc_offset_s: float = 8 * 3600.0  # local time for the daily profile (UTC+8)

    def resolved(self, dt: float) -> RobustParams:
        dt = max(float(dt), 1e-3)
        tau = self.tau_s if self.tau_s is not None else max(30.0 * dt, 30.0)
        return replace(
            self,
            tau_s=tau,
            trend_tau_s=self.trend_tau_s if self.trend_tau_s is not None else tau,
            smooth_s=self.smooth_s if self.smooth_s is not None else 2.0 * dt,
            spread_s=self.spread_s if self.spread_s is not None else 30.0 * dt,
            gap_s=self.gap_s if self.gap_s is not None else 10.0 * dt,
            freeze_s=self.freeze_s if self.freeze_s is not None else tau,
            relearn_s=self.relearn_s if self.relearn_s is not None else 6.0 * tau,
        )

    def __post_init__(self) -> None:
        for name in ("tau_s", "trend_tau_s", "smooth_s", "spread_s", "gap_s", "freeze_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a non-negative number of seconds, not {v!r}")
        if self.freeze_z is not None and not self.freeze_z > 0:
            raise ValueError(f"freeze_z must be positive, not {self.freeze_z!r}")


def is_state(column: FloatArray) -> bool:
    """A column of at most ``MAX_STATES`` distinct values, or one sitting at a single value (off)
    in at least 5 % of its rows (a continuous measurement with noise never does)."""
    c = column[np.isfinite(column)]
    if not len(c):
        return False
    values, counts = np.unique(c, return_counts=True)
    return len(values) <= MAX_STATES or counts.max() >= 0.05 * len(c)


def _decay(dt: float, tau: float) -> float:
    return 0.0 if tau <= 0 else math.exp(-dt / tau)


def robust_scale(x: FloatArray, floor: float = 1e-9) -> float:
    """Sigma-equivalent MAD of the finite values (the mean absolute deviation if MAD is 0)."""
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return floor
    med = float(np.median(x))
    mad = MAD_TO_SIGMA * float(np.median(np.abs(x - med)))
    if mad <= floor:
        mad = 1.2533 * float(np.mean(np.abs(x - med)))
    return max(mad, floor)


class RobustDetector:
    """Streaming deviation and spread scores of ``len(columns)`` columns. Use :meth:`fit` on
    calibration rows, then :meth:`score` on the rest (calls of any size give the same scores)."""

    def __init__(self, columns: Sequence[str], params: RobustParams | None = None) -> None:
        if not columns:
            raise ValueError("give at least one column")
        self.columns = tuple(columns)
        self.base = params or RobustParams()
        self.params = self.base.resolved(1.0)
        d = len(self.columns)
        self.profile = np.zeros((24, d))
        self.seasonal = False
        self.scale_f = np.ones(d)  # scale of the smoothed deviation
        self.scale_r = np.ones(d)  # scale of the raw deviation (for Huber clipping)
        self.spread_mid = np.zeros(d)  # median and scale of log spread
        self.spread_scale = np.ones(d)
        self.level = np.full(d, np.nan)
        self.trend = np.zeros(d)
        self.f = np.zeros(d)
        self.v = np.full(d, np.nan)
        self.frozen_until = np.full(d, -np.inf)
        self.frozen_since = np.full(d, np.inf)
        self.freeze_sign = np.zeros(d)  # side of the deviation that froze a column
        self.calm_trend = np.zeros(d)  # the trend as of the last calm row
        self.last_t = -math.inf
        self.fitted = False
        self.freeze_level = math.inf  # no freezing until armed with an alarm threshold
        self.active = np.ones(d, dtype=bool)  # columns scored (not states)
        self.fit_z = np.empty((0, d))
        self.fit_trend = np.zeros(d)

    # -- calibration --------------------------------------------------------------------------

    def fit(self, ts: FloatArray, x: FloatArray) -> None:
        """Learn level, trend, scales and (with enough days) the daily profile from normal rows."""
        with np.errstate(all="ignore"):  # hostile values overflow to inf; robust statistics cope
            self._fit(ts, x)

    def _fit(self, ts: FloatArray, x: FloatArray) -> None:
        ts, x = _clean(ts, x, len(self.columns))
        if len(ts) < 10:
            raise ValueError(f"{len(ts)} rows are too few to calibrate on; give at least 10")
        empty = [c for c, n in zip(self.columns, np.isfinite(x).sum(axis=0), strict=True) if n < 10]
        if empty:
            raise ValueError(
                f"columns {empty} hold fewer than 10 numbers in calibration; leave them out "
                "(--columns) or calibrate on data where they are measured"
            )
        dt = float(np.median(np.diff(ts)))
        span = float(ts[-1] - ts[0])
        self.seasonal = span >= self.base.min_periods * DAY
        base = self.base
        if self.seasonal and base.tau_s is None:  # with the day taken out, the level is steady
            base = replace(base, tau_s=max(30.0 * dt, DAY))
        self.params = base.resolved(dt if dt > 0 else 1.0)
        if self.seasonal:
            hour = self._hours(ts)
            med = np.nanmedian(x, axis=0)
            for h in range(24):
                rows = x[hour == h]
                if len(rows):
                    with np.errstate(all="ignore"):
                        self.profile[h] = np.nan_to_num(np.nanmedian(rows, axis=0) - med)
        # States (pump on/off, modes) and switched measurements (a pump's flow, 0 while it is off)
        # jump as a matter of course: a switch is not a deviation. They are left to the
        # multivariate model, which sees them together with the columns they drive.
        self.active = np.array([not is_state(c) for c in x.T], dtype=bool)
        xs = self._deseason(ts, x)
        # Initial level and trend: a robust line through the first stretch.
        head = max(10, len(ts) // 5)
        self.level = np.nanmedian(xs[:head], axis=0)
        self.trend = np.zeros(len(self.columns))
        if span > 0:
            mid_t = float(np.median(ts[:head]))
            tail = xs[-head:]
            slope = (np.nanmedian(tail, axis=0) - self.level) / max(
                float(np.median(ts[-head:])) - mid_t, 1e-9
            )
            self.trend = np.nan_to_num(slope)
            self.level = self.level + self.trend * (ts[0] - mid_t)
        self.level = np.nan_to_num(self.level)
        # Two passes: the first learns the scales with generous ones, the second with those.
        floor = np.maximum(1e-6 * np.abs(self.level), 1e-9)
        self.scale_r = np.maximum(np.nanstd(xs, axis=0), floor)
        self.scale_f = self.scale_r.copy()
        self.spread_mid[:] = 0.0
        self.spread_scale[:] = np.inf
        start = (self.level.copy(), self.trend.copy())
        for _ in range(2):
            self.level, self.trend = start[0].copy(), start[1].copy()
            self._reset_stream()
            _, f, r, lv = self._run(ts, xs, learn_only=True)
            self.scale_r = np.maximum([robust_scale(r[:, j]) for j in range(r.shape[1])], floor)
            self.scale_f = np.maximum([robust_scale(f[:, j]) for j in range(f.shape[1])], floor)
            self.spread_mid = np.nan_to_num(np.nanmedian(lv, axis=0))
            self.spread_scale = np.maximum(
                [robust_scale(lv[:, j]) for j in range(lv.shape[1])], 1e-3
            )
        self.fit_z = np.where(self.active, f / self.scale_f, np.nan)  # for the relation model
        self.fit_trend = start[1].copy()
        self.fitted = True

    def _reset_stream(self) -> None:
        d = len(self.columns)
        self.f = np.zeros(d)
        self.v = np.full(d, np.nan)
        self.frozen_until = np.full(d, -np.inf)
        self.frozen_since = np.full(d, np.inf)
        self.freeze_sign = np.zeros(d)  # side of the deviation that froze a column
        self.calm_trend = self.trend.copy()
        self.last_t = -math.inf

    def restart(self) -> None:
        """The next rows are a new run (another file): each column's level starts again at its
        first value there, with the trend of calibration; scales and thresholds are kept."""
        self._reset_stream()
        self.level = np.full(len(self.columns), np.nan)
        self.trend = self.fit_trend.copy()
        self.calm_trend = self.trend.copy()

    def arm(self, threshold: float) -> None:
        """From now on, values scoring above ``freeze_z`` (default ``threshold``, the level at which
        an alarm opens) do not teach the level: a fault is not absorbed while it lasts."""
        fz = self.base.freeze_z
        self.freeze_level = float(threshold if fz is None else fz)

    # -- checkpoints --------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot of a fitted detector (non-finite numbers as strings);
        :meth:`from_state` continues scoring exactly where this one is. The calibration
        deviations kept for the relation model (``fit_z``) are not part of it."""
        if not self.fitted:
            raise ValueError("fit the detector before saving its state")
        return {
            "format": STATE_FORMAT,
            "columns": list(self.columns),
            "base": asdict(self.base),
            "params": asdict(self.params),
            "seasonal": self.seasonal,
            "freeze_level": _enc(self.freeze_level),
            "last_t": _enc(self.last_t),
            **{name: _enc_array(getattr(self, name)) for name in _ARRAYS},
            "active": self.active.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RobustDetector:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"robust state format {state.get('format')!r} is not {STATE_FORMAT}")
        det = cls([str(c) for c in state["columns"]], RobustParams(**state["base"]))
        det.params = RobustParams(**state["params"])
        det.seasonal = bool(state["seasonal"])
        det.freeze_level = float(state["freeze_level"])
        det.last_t = float(state["last_t"])
        for name in _ARRAYS:
            setattr(det, name, np.array(_dec(state[name]), dtype=np.float64))
        det.active = np.array([bool(a) for a in state["active"]], dtype=bool)
        det.fitted = True
        return det

    # -- scoring ------------------------------------------------------------------------------

    def score(self, ts: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Row scores (NaN: no finite column) and signed per-column deviation z (rows x columns).

        Rows out of time order score NaN and teach nothing."""
        if not self.fitted:
            raise ValueError("fit the detector on calibration rows before scoring")
        t = np.asarray(ts, dtype=np.float64).reshape(-1)
        xx = np.asarray(x, dtype=np.float64).reshape(len(t), len(self.columns))
        with np.errstate(all="ignore"):  # huge values give infinite scores, not warnings
            score, _, _, _ = self._run(t, self._deseason(t, xx), learn_only=False)
        return score, self._z

    def _hours(self, ts: FloatArray) -> NDArray[np.int64]:
        return np.asarray(((ts + self.base.utc_offset_s) % DAY) // 3600, dtype=np.int64)

    def _deseason(self, ts: FloatArray, x: FloatArray) -> FloatArray:
        if not self.seasonal:
            return x
        ok = np.isfinite(ts)
        hours = self._hours(np.where(ok, ts, 0.0))
        return np.asarray(x - self.profile[hours], dtype=np.float64)

    def _run(  # noqa: PLR0915 (one filter step per row and column, read top to bottom)
        self, ts: FloatArray, x: FloatArray, *, learn_only: bool
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """The filter over rows; returns scores, smoothed and raw deviations, log spreads.

        Plain floats, one column at a time: with a handful of columns this is several times
        faster than numpy on tiny arrays, and the recursion cannot be vectorised over rows."""
        p = self.params
        assert p.tau_s is not None and p.trend_tau_s is not None and p.smooth_s is not None
        assert p.spread_s is not None and p.gap_s is not None and p.freeze_s is not None
        assert p.relearn_s is not None
        n, d = x.shape
        nan, inf = math.nan, math.inf
        isfinite, isnan, log = math.isfinite, math.isnan, math.log
        scores = [nan] * n
        zs = [[nan] * d for _ in range(n)]
        fs = [[nan] * d for _ in range(n)]
        rs = [[nan] * d for _ in range(n)]
        lvs = [[nan] * d for _ in range(n)]
        level, trend, f, v = (a.tolist() for a in (self.level, self.trend, self.f, self.v))
        calm_trend = (
            self.calm_trend if self.calm_trend.shape == self.trend.shape else self.trend
        ).tolist()
        frozen_until, frozen_since = self.frozen_until.tolist(), self.frozen_since.tolist()
        sign = self.freeze_sign.tolist()
        active = self.active.tolist()
        scale_f, scale_r = self.scale_f.tolist(), self.scale_r.tolist()
        sp_mid, sp_scale = self.spread_mid.tolist(), self.spread_scale.tolist()
        big = [1000.0 * s for s in scale_r]  # a wild value is evidence enough; no long tail
        cap = [3.0 * s for s in scale_r]  # spread: one jump is not noise
        clip = [p.huber * s for s in scale_r]
        last_t = self.last_t
        fz = self.freeze_level
        half = 0.5 * fz
        judge = not learn_only
        rows, times = x.tolist(), ts.tolist()
        for i in range(n):
            t = times[i]
            if not isfinite(t) or t < last_t:
                continue
            row = rows[i]
            dt = 0.0 if last_t == -inf else t - last_t
            last_t = t
            step = min(dt, p.gap_s)
            a_s = 1.0 - _decay(dt, p.smooth_s)
            a_v = 1.0 - _decay(dt, p.spread_s)
            a = 1.0 - _decay(dt, p.tau_s)
            ab = a * (1.0 - _decay(dt, p.trend_tau_s)) / dt if dt > 0 else 0.0
            best = nan
            zi, fi, ri, li = zs[i], fs[i], rs[i], lvs[i]
            for j in range(d):
                xj = row[j]
                if isnan(level[j]) and isfinite(xj):
                    level[j] = xj
                pred = level[j] + trend[j] * step
                r = xj - pred
                ok = isfinite(r)
                if ok:
                    e = r - f[j]
                    f[j] += a_s * (min(max(r, -big[j]), big[j]) - f[j])
                    r2 = min(abs(e), cap[j])
                    v[j] = r2 if isnan(v[j]) else v[j] + a_v * (r2 - v[j])
                    ri[j] = r
                z = f[j] / scale_f[j]
                vj = v[j]
                if isnan(vj):
                    lv = nan
                else:
                    q = max(vj, 1e-300) / scale_r[j]
                    lv = log(q) if q > 0 else -inf
                zsp = (lv - sp_mid[j]) / sp_scale[j]
                col = nan
                if ok and active[j]:
                    col = abs(z) if not zsp > abs(z) else zsp
                    best = col if not best >= col else best
                    zi[j] = z
                fi[j], li[j] = f[j], lv
                # Learn from calm columns only; a long change is accepted after relearn_s, and a
                # deviation turning to the other side means the fault ended while the level
                # moved (demand): learn again at once.
                if judge and col > fz:
                    frozen_until[j] = t + p.freeze_s
                frozen = t < frozen_until[j]
                if frozen:
                    if frozen_since[j] == inf:
                        trend[j] = calm_trend[j]  # the rows leading to the alarm held its onset
                        sign[j] = (1.0 if z > 0 else -1.0) if abs(z) > fz else 0.0
                        frozen_since[j] = t
                    flipped = sign[j] != 0.0 and z * sign[j] < 0 and abs(z) > fz
                    if flipped or t - frozen_since[j] >= p.relearn_s:
                        pred += f[j]  # the smoothed value is the new level
                        r = xj - pred
                        trend[j] = f[j] = sign[j] = 0.0
                        frozen_until[j], frozen_since[j] = -inf, inf
                        frozen = False
                else:
                    frozen_since[j] = inf
                if ok and not frozen:
                    rc = min(max(r, -clip[j]), clip[j])
                    level[j] = pred + a * rc
                    trend[j] += ab * rc
                    if not col > half:
                        calm_trend[j] = trend[j]
                elif ok or frozen:
                    level[j] = pred
            scores[i] = best
        self.level, self.trend = np.array(level), np.array(trend)
        self.f, self.v, self.calm_trend = np.array(f), np.array(v), np.array(calm_trend)
        self.frozen_until, self.frozen_since = np.array(frozen_until), np.array(frozen_since)
        self.freeze_sign, self.last_t = np.array(sign), last_t
        self._z = np.array(zs, dtype=np.float64).reshape(n, d)
        return (
            np.array(scores, dtype=np.float64),
            np.array(fs, dtype=np.float64).reshape(n, d),
            np.array(rs, dtype=np.float64).reshape(n, d),
            np.array(lvs, dtype=np.float64).reshape(n, d),
        )


def _enc(x: float) -> float | str:
    """A number for JSON: non-finite ones as the strings ``float`` reads back."""
    return float(x) if math.isfinite(x) else str(float(x))


def _enc_array(a: FloatArray) -> list[Any]:
    return [_enc_array(r) for r in a] if a.ndim > 1 else [_enc(v) for v in a.tolist()]


def _dec(x: Any) -> Any:
    return [_dec(v) for v in x] if isinstance(x, list) else float(x)


def _clean(ts: FloatArray, x: FloatArray, d: int) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(ts, dtype=np.float64).reshape(-1)
    xx = np.asarray(x, dtype=np.float64).reshape(len(t), d)
    ok = np.isfinite(t)
    t, xx = t[ok], xx[ok]
    order = np.argsort(t, kind="stable")
    return t[order], np.where(np.isfinite(xx[order]), xx[order], np.nan)


@dataclass(frozen=True, slots=True)
class Calibrated:
    threshold: float
    episodes: int  # false alarms the chosen threshold (before the margin) opened on held-back
    held_back_days: float
    allowed: float  # target rate x held-back duration


def calibrate_threshold(
    ts: FloatArray,
    scores: FloatArray,
    *,
    rate_per_day: float,
    confirm_s: float = 0.0,
    hold_s: float = 300.0,
    max_gap_s: float | None = None,
    margin: float = 1.2,
    floor: float = 6.0,
) -> Calibrated:
    """The smallest threshold (at least ``floor``) for which an :class:`EpisodeTracker` opens at
    most ``rate_per_day`` x the held-back duration episodes on these held-back scores, times
    ``margin``. Held-back data of normal operation only."""
    if not (math.isfinite(rate_per_day) and rate_per_day > 0):
        raise ValueError(f"the false-alarm rate must be a positive number, not {rate_per_day!r}")
    t = np.asarray(ts, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    finite = s[np.isfinite(s)]
    days = float(t[-1] - t[0]) / DAY if len(t) > 1 else 0.0
    allowed = rate_per_day * days

    def count(thr: float) -> int:
        tr = EpisodeTracker(thr, confirm_s=confirm_s, hold_s=hold_s, max_gap_s=max_gap_s)
        return sum(1 for e in tr.update(t, s) if e.end is None)

    lo = floor
    if not len(finite) or count(lo) <= allowed:
        return Calibrated(lo * margin, count(lo) if len(finite) else 0, days, allowed)
    hi = float(finite.max()) * 1.0001
    for _ in range(40):  # bisection on a log scale
        mid = math.sqrt(lo * hi)
        if count(mid) <= allowed:
            hi = mid
        else:
            lo = mid
        if hi / lo < 1.001:
            break
    return Calibrated(hi * margin, count(hi), days, allowed)
