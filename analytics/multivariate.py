"""Analytics: a multivariate model of one device's simultaneous readings, per device class.

The readings of a pump room are tied together (pump currents follow flow, zone pressures dip with
demand); a fault often breaks a relation while every value stays in its usual range. The model is a
Gaussian mixture (scikit-learn) over robustly standardised features; a row's score is its
Mahalanobis distance to the nearest component, in that component's own metric, so thin components
and wide ones are judged alike. Measured on simulated pump rooms, this finds a 2 A pump-current
offset at unchanged flow, a 0.015 MPa zone-pressure drop and flow without current, which an
isolation forest or a single robust covariance (MinCovDet) missed at the same false-alarm rate.

The threshold is a high quantile of the training scores. :class:`Episodes` turns scores into
anomalies: at least ``min_hits`` of the last ``window`` rows above the threshold.

Models serialise to an ``.npz`` of arrays and JSON metadata, never a pickle: loading a model from
the database cannot run code, and does not depend on the scikit-learn version that trained it.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

FloatArray = NDArray[np.float64]
FORMAT = 1

# Features per device class: gauges that move together. Names are core.catalogue metric names.
DEFAULT_FEATURES: dict[str, tuple[str, ...]] = {
    "pump_room": (
        "pump1_current",
        "pump2_current",
        "flow",
        "zone_low_pressure",
        "zone_mid_pressure",
        "zone_high_pressure",
        "tank_level",
    ),
    "fire_water": ("sprinkler_pressure", "hydrant_pressure", "tank_level", "tank_static_pressure"),
    "electrical_fire": ("residual_current", "cable_temp"),
    "water_quality": ("residual_chlorine", "turbidity", "ph", "water_temp"),
}


@dataclass(frozen=True, slots=True)
class Model:
    device_class: str
    features: tuple[str, ...]
    center: FloatArray  # (d,) training medians
    scale: FloatArray  # (d,) sigma-equivalent IQRs
    means: FloatArray  # (k, d) component means, standardised
    prec_chol: FloatArray  # (k, d, d) Cholesky factors of the component precisions
    threshold: float
    quantile: float
    n_train: int
    converged: bool
    trained_at: datetime
    version: str  # "<trained_at UTC>-<content hash>"

    def score(self, x: FloatArray) -> FloatArray:
        """Distance of each row to the nearest component (higher is more anomalous; NaN rows NaN)."""
        return np.asarray(np.sqrt(self._distances(x).min(axis=0)), dtype=np.float64)

    def _standardise(self, x: FloatArray) -> FloatArray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.features):
            raise ValueError(f"expected rows of {len(self.features)} features, got {x.shape}")
        return (x - self.center) / self.scale

    def _distances(self, x: FloatArray) -> FloatArray:
        z = self._standardise(x)
        out = np.empty((len(self.means), len(z)))
        for i, (mu, chol) in enumerate(zip(self.means, self.prec_chol, strict=True)):
            y = (z - mu) @ chol
            out[i] = np.einsum("ij,ij->i", y, y)
        return out

    def repaired(self, x: FloatArray) -> FloatArray:
        """Score of each row with each feature alone moved to its most likely value, given the rest.

        Column j low where the row scores high means feature j is the one out of line.
        """
        z = self._standardise(x)
        best = np.full(z.shape, np.inf)
        for mu, chol in zip(self.means, self.prec_chol, strict=True):
            prec = chol @ chol.T
            r = z - mu
            g = r @ prec
            d2 = np.einsum("ij,ij->i", r, g)
            best = np.minimum(best, d2[:, None] - g**2 / np.diag(prec))
        return np.asarray(np.sqrt(np.maximum(best, 0.0)), dtype=np.float64)

    def explain(self, row: FloatArray, most: int = 3) -> list[str]:
        """The features most out of line in one row: those whose repair alone lowers its score
        by at least half as much as the best single repair, best first."""
        x = np.asarray(row, dtype=np.float64).reshape(1, -1)
        drop = self.score(x)[0] - self.repaired(x)[0]
        order = np.argsort(-drop)
        return [self.features[j] for j in order[:most] if drop[j] >= 0.5 * drop[order[0]]]

    def deviations(self, x: FloatArray) -> FloatArray:
        """Signed standardised deviation of each feature of each row, (n, d): how far the value
        sits from what the nearest component expects of it given the row's other features, in
        that component's conditional standard deviations (positive: higher than expected).

        A fault often breaks a relation while every value stays in its range, so the deviation
        is taken given the rest: a pump drawing more current at the same flow shows as current
        too high, not as an unusual flow. Squared, it is what repairing that feature alone takes
        off the row's squared score (``repaired``). NaN rows give NaN."""
        z = self._standardise(x)
        d2 = self._distances(x)
        nearest = np.argmin(np.where(np.isnan(d2), np.inf, d2), axis=0)
        out = np.full(z.shape, np.nan)
        for i, chol in enumerate(self.prec_chol):
            rows = nearest == i
            if not rows.any():
                continue
            prec = chol @ chol.T
            g = (z[rows] - self.means[i]) @ prec
            out[rows] = g / np.sqrt(np.diag(prec))
        return out

    def contributions(self, row: FloatArray, most: int = 3) -> list[tuple[str, float]]:
        """The ``most`` features of one row furthest out of line, as (feature, signed z), the
        largest deviation first (``deviations``); empty for a row with a missing value."""
        dev = self.deviations(np.asarray(row, dtype=np.float64).reshape(1, -1))[0]
        if not np.isfinite(dev).all():
            return []
        order = np.argsort(-np.abs(dev), kind="stable")[: max(most, 0)]
        return [(self.features[j], round(float(dev[j]), 2)) for j in order]

    def to_bytes(self) -> bytes:
        meta = {
            "format": FORMAT,
            "device_class": self.device_class,
            "features": list(self.features),
            "threshold": self.threshold,
            "quantile": self.quantile,
            "n_train": self.n_train,
            "converged": self.converged,
            "trained_at": self.trained_at.isoformat(),
            "version": self.version,
        }
        buf = io.BytesIO()
        np.savez(
            buf,
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
            center=self.center,
            scale=self.scale,
            means=self.means,
            prec_chol=self.prec_chol,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> Model:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            meta = json.loads(npz["meta"].tobytes())
            if meta.get("format") != FORMAT:
                raise ValueError(f"model format {meta.get('format')!r} is not {FORMAT}")
            arrays = {k: np.asarray(npz[k], dtype=np.float64) for k in ("center", "scale")}
            means, prec = np.asarray(npz["means"]), np.asarray(npz["prec_chol"])
        return cls(
            device_class=meta["device_class"],
            features=tuple(meta["features"]),
            center=arrays["center"],
            scale=arrays["scale"],
            means=means.astype(np.float64),
            prec_chol=prec.astype(np.float64),
            threshold=float(meta["threshold"]),
            quantile=float(meta["quantile"]),
            n_train=int(meta["n_train"]),
            converged=bool(meta["converged"]),
            trained_at=datetime.fromisoformat(meta["trained_at"]),
            version=meta["version"],
        )


def train(
    x: FloatArray,
    feature_names: Sequence[str],
    *,
    trained_at: datetime,
    device_class: str = "",
    components: int = 6,
    quantile: float = 0.999,
    max_rows: int = 50_000,
    seed: int = 0,
) -> Model:
    """Fit on rows of normal operation (rows with a NaN are left out); ``trained_at`` is aware."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(feature_names):
        raise ValueError(f"x must have one column per feature {list(feature_names)}: {x.shape}")
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < 20:
        raise ValueError(f"{len(x)} complete rows are too few to train on; give at least 20")
    if len(x) > max_rows:  # evenly spaced rows keep every time of day
        x = x[np.linspace(0, len(x) - 1, max_rows).astype(np.int64)]
    center = np.median(x, axis=0)
    q75, q25 = np.percentile(x, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    std = x.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    z = (x - center) / scale
    gm = GaussianMixture(
        n_components=max(1, min(components, len(x) // 20)),
        covariance_type="full",
        reg_covar=1e-4,
        max_iter=300,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported as Model.converged
        gm.fit(z)
    means = np.asarray(gm.means_, dtype=np.float64)
    prec_chol = np.asarray(gm.precisions_cholesky_, dtype=np.float64)
    draft = Model(
        device_class,
        tuple(feature_names),
        center,
        scale,
        means,
        prec_chol,
        threshold=0.0,
        quantile=quantile,
        n_train=len(x),
        converged=bool(gm.converged_),
        trained_at=trained_at,
        version="",
    )
    threshold = float(np.quantile(draft.score(x), quantile))
    digest = hashlib.sha256(
        json.dumps([device_class, list(feature_names), threshold]).encode()
        + b"".join(a.tobytes() for a in (center, scale, means, prec_chol))
    ).hexdigest()
    stamp = trained_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return replace(draft, threshold=threshold, version=f"{stamp}-{digest[:12]}")


@dataclass(frozen=True, slots=True)
class Anomaly:
    at: float  # time of the row that completed the evidence
    since: float  # time of the first row above the threshold in that window
    score: float  # highest score in that window
    index: int  # position of the ``at`` row in the arrays given to ``Episodes.update``


class Episodes:
    """Streaming m-of-n rule over scores: an anomaly opens when ``min_hits`` of the last ``window``
    rows exceed ``threshold``; it ends once no row has for ``quiet_seconds``. One report per
    anomaly, so a fault that hovers about the threshold is not reported again and again.
    """

    def __init__(
        self, threshold: float, window: int = 6, min_hits: int = 3, quiet_seconds: float = 3600.0
    ) -> None:
        if not 1 <= min_hits <= window:
            raise ValueError(f"need 1 <= min_hits <= window, not {min_hits} of {window}")
        self.threshold, self.window, self.min_hits = threshold, window, min_hits
        self.quiet_seconds = quiet_seconds
        self.active = False
        self.last_hit = -np.inf
        self.tail_ts = np.empty(0)
        self.tail_scores = np.empty(0)

    def update(self, ts: FloatArray, scores: FloatArray) -> list[Anomaly]:
        ts = np.concatenate((self.tail_ts, np.asarray(ts, dtype=np.float64)))
        sc = np.concatenate((self.tail_scores, np.asarray(scores, dtype=np.float64)))
        lead, w = len(self.tail_ts), self.window
        hits = np.nan_to_num(sc, nan=-np.inf) > self.threshold
        c = np.concatenate(([0], np.cumsum(hits)))
        pos = np.arange(lead, len(sc))  # the new rows, each the end of a window
        count = c[pos + 1] - c[np.maximum(pos + 1 - w, 0)]
        last_hit = np.fmax.accumulate(np.where(hits, ts, -np.inf))[lead:]
        last_hit = np.fmax(last_hit, self.last_hit)
        # An anomaly opens on a hit that completes the rule, and ends once quiet; each row changes
        # the state at most once (a row can complete the rule and be quiet at once when rows are
        # further apart than the quiet period), so the search always moves on.
        fire = pos[(count >= self.min_hits) & hits[lead:]]
        clear = pos[ts[lead:] - last_hit >= self.quiet_seconds]
        out: list[Anomaly] = []
        at = lead
        while True:
            pool = clear if self.active else fire
            i = int(np.searchsorted(pool, at))
            if i == len(pool):
                break
            row = int(pool[i])
            if not self.active:
                lo = max(row + 1 - w, 0)
                first = lo + int(np.argmax(hits[lo : row + 1]))
                peak = float(np.nanmax(sc[lo : row + 1]))
                out.append(Anomaly(float(ts[row]), float(ts[first]), peak, row - lead))
            self.active = not self.active
            at = row + 1
        if len(last_hit):
            self.last_hit = float(last_hit[-1])
        keep = max(len(sc) - (w - 1), 0)
        self.tail_ts, self.tail_scores = ts[keep:], sc[keep:]
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "window": self.window,
            "min_hits": self.min_hits,
            "quiet_seconds": self.quiet_seconds,
            "active": self.active,
            "last_hit": None if np.isinf(self.last_hit) else self.last_hit,
            "tail_ts": self.tail_ts.tolist(),
            "tail_scores": [None if np.isnan(s) else s for s in self.tail_scores.tolist()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Episodes:
        e = cls(
            float(state["threshold"]),
            int(state["window"]),
            int(state["min_hits"]),
            float(state["quiet_seconds"]),
        )
        e.active = bool(state["active"])
        e.last_hit = -np.inf if state["last_hit"] is None else float(state["last_hit"])
        e.tail_ts = np.asarray(state["tail_ts"], dtype=np.float64)
        e.tail_scores = np.asarray(
            [np.nan if s is None else s for s in state["tail_scores"]], dtype=np.float64
        )
        return e
