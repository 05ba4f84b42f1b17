"""Analytics: the multivariate detector of a replay, on drift-removed columns, explaining itself.

The class model of :mod:`analytics.multivariate` (a Gaussian mixture over robustly standardised
columns) judges whether columns still agree with one another. Fed raw values, it reads slow drift
(a loop warming over a run, seasons) as disagreement. Here it sees each column's deviation from
its own level and trend as :class:`~analytics.robust.RobustDetector` follows them (drift, and with
enough history the daily profile, taken out; levels frozen while a column is in alarm), as a
signed robust z. Columns that are states (pump on/off) are kept as they are: their value is the
mode the other columns depend on. When calibration holds several days (the robust detector then
uses a daily profile), the model sees the values themselves: the mixture has seen every daily
mode, and a relation such as "this level rises while that pump runs" is kept whole.

Each row gets a score (the model's distance) and signed per-column contributions
(:meth:`~analytics.multivariate.Model.deviations`): how far each column sits from what the nearest
mixture component expects of it given the others, in standard deviations, positive when higher.
An alarm therefore says which sensors disagree and in which direction.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from analytics.multivariate import Model, train
from analytics.robust import FloatArray, RobustDetector


class RelationDetector:
    """Scores rows by how far their columns' deviations are from agreeing as in calibration."""

    def __init__(self, robust: RobustDetector) -> None:
        if len(robust.columns) < 2:
            raise ValueError("the multivariate detector needs at least two columns")
        self.robust = robust
        self.columns = robust.columns
        self.model: Model | None = None

    def _features(self, z: FloatArray, x: FloatArray) -> FloatArray:
        if self.robust.seasonal:  # weeks of history: the mixture has seen every daily mode
            return x
        return np.asarray(np.where(self.robust.active, z, x), dtype=np.float64)

    def fit(self, ts: FloatArray, x: FloatArray, *, components: int = 4) -> None:
        """Train on the calibration rows the robust detector was just fitted on."""
        xx = np.asarray(x, dtype=np.float64)
        z = self.robust.fit_z
        if z.shape != xx.shape:
            raise ValueError("fit the robust detector on the same rows first")
        when = datetime.fromtimestamp(float(np.nanmax(ts)) if len(ts) else 0.0, UTC)
        self.model = train(
            self._features(z, xx), self.columns, trained_at=when, components=components
        )

    def score(self, z: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Row scores (NaN where a column is missing) and signed contributions, from the robust
        detector's deviations ``z`` of the same rows and their raw values ``x``."""
        if self.model is None:
            raise ValueError("fit the detector on calibration rows before scoring")
        feats = self._features(np.asarray(z, dtype=np.float64), np.asarray(x, dtype=np.float64))
        with np.errstate(all="ignore"):  # huge values give infinite scores, not warnings
            sc = self.model.score(feats)
            contrib = np.full(feats.shape, np.nan)
            ok = np.isfinite(sc)
            if ok.any():
                contrib[ok] = self.model.deviations(feats[ok])
        return sc, contrib
