"""Analytics: alarm episodes, the one way every detector turns a stream of scores into alarms.

A score is a row's evidence against normal, in units where the detector's threshold means "alarm"
(any positive scale works; the tracker divides by its threshold when it reports a peak). An
episode opens when scores stay above the threshold for ``confirm_s`` seconds of data time (0: one
row is enough), and closes when no row has been above the release level for ``hold_s`` seconds; a
data gap longer than ``max_gap_s`` also closes it. There is no quiet period after an episode: a
later distinct fault opens a new one as soon as the previous one has closed, so one long nuisance
cannot hide a real fault behind it.

Everything is defined in seconds of data time, never in rows, so the same settings serve 1 s and
hourly data, irregular rows and missing rows. NaN scores are "no evidence": they neither open nor
extend an episode, but time still passes over them. Rows out of time order (or with a non-finite
time) are dropped. The tracker is causal and split-invariant: feeding the same rows in batches of
any size, or saving the state with :meth:`EpisodeTracker.to_state` and restoring it between two
batches, gives the same episodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
STATE_FORMAT = 1
MAX_CONTRIBUTIONS = 5
_BIG = 1e300  # infinite scores are clipped to this, so peaks stay finite and JSON-able


@dataclass(frozen=True, slots=True)
class Episode:
    start: float  # time of the first above-threshold row of the run that opened it
    end: float | None  # time of the last row above the release level; None while open
    peak: float  # highest score in the episode, in multiples of the threshold
    peak_at: float
    contributions: tuple[tuple[str, float], ...]  # (column, signed z) at the peak, largest first
    open_at_end: bool = False  # closed by finish() (data ended / detector stopped), not by hold


def contributions(columns: Sequence[str], z: FloatArray | None) -> tuple[tuple[str, float], ...]:
    """The at most five columns with the largest finite ``|z|`` in one row, largest first."""
    if z is None or not columns:
        return ()
    row = np.asarray(z, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(row))
    order = ok[np.argsort(-np.abs(row[ok]), kind="stable")][:MAX_CONTRIBUTIONS]
    return tuple((columns[int(j)], float(row[j])) for j in order)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class EpisodeTracker:
    """Streaming episodes over one score series (see the module docstring for the rules)."""

    def __init__(
        self,
        threshold: float,
        *,
        confirm_s: float = 0.0,
        hold_s: float = 300.0,
        release: float | None = None,
        max_gap_s: float | None = None,
        columns: Sequence[str] = (),
    ) -> None:
        if not (math.isfinite(threshold) and threshold > 0):
            raise ValueError(f"threshold must be a positive number, not {threshold!r}")
        if not (math.isfinite(confirm_s) and confirm_s >= 0):
            raise ValueError(f"confirm_s must be >= 0 seconds, not {confirm_s!r}")
        if not (math.isfinite(hold_s) and hold_s > 0):
            raise ValueError(f"hold_s must be a positive number of seconds, not {hold_s!r}")
        rel = threshold if release is None else release
        if not (math.isfinite(rel) and rel <= threshold):
            raise ValueError(f"release must be a number <= threshold {threshold}, not {release!r}")
        if max_gap_s is not None and not (math.isfinite(max_gap_s) and max_gap_s > 0):
            raise ValueError(f"max_gap_s must be a positive number of seconds, not {max_gap_s!r}")
        self.threshold = float(threshold)
        self.confirm_s = float(confirm_s)
        self.hold_s = float(hold_s)
        self.release = float(rel)
        self.max_gap_s = None if max_gap_s is None else float(max_gap_s)
        self.columns = tuple(columns)
        self._last_ts = -math.inf  # time of the last row seen
        # the run of above-threshold rows that may open an episode (confirm_s > 0)
        self._cand: tuple[float, float, float, tuple[tuple[str, float], ...]] | None = None
        # the open episode: start, peak (raw score), peak_at, contributions, last row above release
        self._open: tuple[float, float, float, tuple[tuple[str, float], ...]] | None = None
        self._last_above = -math.inf

    @property
    def open(self) -> Episode | None:
        if self._open is None:
            return None
        start, peak, peak_at, contrib = self._open
        return Episode(start, None, peak / self.threshold, peak_at, contrib)

    def _close(self, end: float, *, at_end: bool = False) -> Episode:
        assert self._open is not None
        start, peak, peak_at, contrib = self._open
        self._open = None
        self._last_above = -math.inf
        return Episode(start, end, peak / self.threshold, peak_at, contrib, at_end)

    def _contrib(self, z: FloatArray | None, i: int) -> tuple[tuple[str, float], ...]:
        return () if z is None else contributions(self.columns, z[i])

    def update(
        self, ts: FloatArray, scores: FloatArray, z: FloatArray | None = None
    ) -> list[Episode]:
        """Rows in time order (NaN scores are 'no evidence'); returns the changes in order: an
        Episode with end None when one opens, the same episode with end set when it closes (both
        can come from one batch). ``z`` (rows x columns) gives each row's signed per-column
        deviations, reported as the contributions at the peak."""
        t = np.asarray(ts, dtype=np.float64).reshape(-1)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if t.shape != s.shape:
            raise ValueError(f"ts and scores differ in length: {t.shape[0]} and {s.shape[0]}")
        zz: FloatArray | None = None
        if z is not None and self.columns:
            zz = np.asarray(z, dtype=np.float64)
            if zz.shape != (len(t), len(self.columns)):
                raise ValueError(
                    f"z must have one row per score and one column per name in {self.columns}, "
                    f"not shape {zz.shape}"
                )
        # Drop rows out of time order or without a time; clip infinite scores.
        ok = np.isfinite(t)
        prior = np.maximum.accumulate(np.concatenate(([self._last_ts], np.where(ok, t, -np.inf))))
        ok &= t >= prior[:-1]
        if not ok.all():
            t, s = t[ok], s[ok]
            zz = None if zz is None else zz[ok]
        s = np.clip(s, -_BIG, _BIG)
        out: list[Episode] = []
        p, n = 0, len(t)
        while p < n:
            if self._open is not None:
                p = self._extend(t, s, zz, p, out)
            elif self._cand is None and self.confirm_s == 0.0:
                above = np.flatnonzero(s[p:] > self.threshold)
                if not len(above):
                    break
                i = p + int(above[0])
                self._open = (float(t[i]), float(s[i]), float(t[i]), self._contrib(zz, i))
                self._last_above = float(t[i])
                self._last_ts = float(t[i])
                out.append(self.open)  # type: ignore[arg-type]
                p = i + 1
            else:
                p = self._confirm(t, s, zz, p, out)
        if n:
            self._last_ts = float(t[-1])
        return out

    def _extend(
        self, t: FloatArray, s: FloatArray, z: FloatArray | None, p: int, out: list[Episode]
    ) -> int:
        """Carry the open episode over rows p..; returns the first row not consumed."""
        assert self._open is not None
        seg_t, seg_s = t[p:], s[p:]
        above = seg_s > self.release
        la = np.fmax.accumulate(np.where(above, seg_t, -np.inf))
        prev_la = np.fmax(np.concatenate(([self._last_above], la[:-1])), self._last_above)
        close = seg_t - prev_la >= self.hold_s
        if self.max_gap_s is not None:
            prev_t = np.concatenate(([self._last_ts], seg_t[:-1]))
            close |= seg_t - prev_t > self.max_gap_s
        hit = np.flatnonzero(close)
        c = int(hit[0]) if len(hit) else len(seg_t)
        if c:
            part = seg_s[:c]
            finite = np.isfinite(part)
            if finite.any():
                m = int(np.argmax(np.where(finite, part, -np.inf)))
                if part[m] > self._open[1]:
                    self._open = (
                        self._open[0],
                        float(part[m]),
                        float(seg_t[m]),
                        self._contrib(z, p + m),
                    )
            self._last_above = float(max(self._last_above, la[c - 1]))
            self._last_ts = float(seg_t[c - 1])
        if c < len(seg_t):
            out.append(self._close(self._last_above))
        return p + c

    def _confirm(
        self, t: FloatArray, s: FloatArray, z: FloatArray | None, p: int, out: list[Episode]
    ) -> int:
        """Follow a run of above-threshold rows from row p until it opens an episode or breaks."""
        i = p
        while i < len(t):
            ti, si = float(t[i]), float(s[i])
            if self.max_gap_s is not None and ti - self._last_ts > self.max_gap_s:
                self._cand = None
            self._last_ts = ti
            if math.isnan(si):
                i += 1
                continue
            if si <= self.threshold:
                # The run broke; rows up to the next one above the threshold cannot matter.
                self._cand = None
                above = np.flatnonzero(s[i + 1 :] > self.threshold)
                if not len(above):
                    self._last_ts = float(t[-1])
                    return len(t)
                i += 1 + int(above[0])
                self._last_ts = float(t[i - 1])
                continue
            if self._cand is None:
                self._cand = (ti, si, ti, self._contrib(z, i))
            elif si > self._cand[1]:
                self._cand = (self._cand[0], si, ti, self._contrib(z, i))
            if ti - self._cand[0] >= self.confirm_s:
                start, peak, peak_at, contrib = self._cand
                self._cand = None
                self._open = (start, peak, peak_at, contrib)
                self._last_above = ti
                out.append(self.open)  # type: ignore[arg-type]
                return i + 1
            i += 1
        return i

    def finish(self, at: float) -> Episode | None:
        """Close an open episode because the data ended or the detector stops (``open_at_end``).

        Its end stays the last row above the release level (``at`` when there is none later)."""
        self._cand = None
        if self._open is None:
            return None
        end = self._last_above if math.isfinite(self._last_above) else float(at)
        return self._close(end, at_end=True)

    def to_state(self) -> dict[str, Any]:
        def ep(x: tuple[float, float, float, tuple[tuple[str, float], ...]] | None) -> Any:
            if x is None:
                return None
            return [x[0], x[1], x[2], [[c, v] for c, v in x[3]]]

        return {
            "format": STATE_FORMAT,
            "threshold": self.threshold,
            "confirm_s": self.confirm_s,
            "hold_s": self.hold_s,
            "release": self.release,
            "max_gap_s": self.max_gap_s,
            "columns": list(self.columns),
            "last_ts": _num(self._last_ts),
            "last_above": _num(self._last_above),
            "candidate": ep(self._cand),
            "open": ep(self._open),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EpisodeTracker:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"episode state format {state.get('format')!r} is not {STATE_FORMAT}")
        gap = state["max_gap_s"]
        tr = cls(
            float(state["threshold"]),
            confirm_s=float(state["confirm_s"]),
            hold_s=float(state["hold_s"]),
            release=float(state["release"]),
            max_gap_s=None if gap is None else float(gap),
            columns=[str(c) for c in state["columns"]],
        )

        def ep(x: Any) -> tuple[float, float, float, tuple[tuple[str, float], ...]] | None:
            if x is None:
                return None
            return (
                float(x[0]),
                float(x[1]),
                float(x[2]),
                tuple((str(c), float(v)) for c, v in x[3]),
            )

        tr._last_ts = -math.inf if state["last_ts"] is None else float(state["last_ts"])
        tr._last_above = -math.inf if state["last_above"] is None else float(state["last_above"])
        tr._cand = ep(state["candidate"])
        tr._open = ep(state["open"])
        return tr
