"""Analytics: the learned detectors in the stream (per-device baselines, per-class models).

Entries of the list whose filing names ``baseline`` or ``multivariate`` are served here. A
baseline condition holds while the device's metric is in an anomaly episode of its robust
deviation (``analytics.deviation``): calibrated on the metric's first two days of data (level,
trend, noise; nothing is said meanwhile), with a threshold of at least ``z`` set for the rule's
false-alarm target on the second of them, the episode opens once the deviation has stayed above
it for ``for_seconds`` and ends once no reading has been above it for ``hold_seconds``. The
observation carries the metric's signed deviation at the episode's peak.

A multivariate condition holds while the device's anomaly episode (``analytics.episodes``) is
open: the class model's score, in units of the model's calibrated threshold, stayed above
``score_above`` for the entry's ``confirm_seconds``; the episode ends once no row has been above
it for ``hold_seconds``. There is no quiet period: once an episode has ended, a later distinct
fault opens a new one. The observation carries the features most out of line at the episode's
peak, signed (``Model.deviations``), as the alarm's detail.

Pure: models are handed in. Detector state lives in memory only, as the rest of analytics'
does: a restart, a new list or a model version with other features starts the evidence afresh
(open alarms are adopted from the database).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analytics.conditions import Held
from analytics.deviation import Deviation, DeviationSettings
from analytics.episodes import Episode, EpisodeTracker
from analytics.multivariate import Model
from analytics.retraining import Span
from lifecycle.alarms import Observation
from responsibility.model import BaselineFiling, Entry, MultivariateFiling


@dataclass(frozen=True, slots=True)
class LearnedRule:
    code: str
    detector: str  # baseline | multivariate
    metric: str = ""
    z: float = 6.0
    score_above: float = 1.0
    for_seconds: float = 0.0
    confirm_s: float = 120.0  # multivariate: above score_above this long opens an episode
    hold_s: float = 900.0  # normal this long ends an episode
    target_false_per_device_day: float = 0.05  # the false-alarm budget (baseline: calibration's)


EXPLAINED = 3  # features named in an alarm's detail
REMEMBERED = 5000  # ended anomaly episodes remembered per class (left out of retraining)
MIN_SCORE_ABOVE = 1e-6  # a score_above of 0 or less: every scored row is above it


def compile_learned(entries: Iterable[Entry]) -> dict[str, list[LearnedRule]]:
    out: dict[str, list[LearnedRule]] = {}
    for e in entries:
        for f in e.filing:
            if isinstance(f, BaselineFiling):
                rule = LearnedRule(
                    e.code, "baseline", f.metric, float(f.z), for_seconds=float(f.for_seconds)
                )
            elif isinstance(f, MultivariateFiling):
                rule = LearnedRule(
                    e.code,
                    "multivariate",
                    score_above=float(f.score_above),
                    for_seconds=float(f.for_seconds),
                    confirm_s=float(f.confirm_seconds),
                    hold_s=float(f.hold_seconds),
                    target_false_per_device_day=float(f.target_false_alarms_per_device_day),
                )
            else:
                continue
            out.setdefault(str(e.device_class), []).append(rule)
    return out


@dataclass(slots=True)
class Learned:
    rules: dict[str, list[LearnedRule]]
    models: dict[str, Model] = field(default_factory=dict)
    # device, code, metric: each baseline filing's robust deviation
    deviations: dict[tuple[int, str, str], Deviation] = field(default_factory=dict)
    episodes: dict[tuple[int, str], EpisodeTracker] = field(default_factory=dict)  # device, code
    held: dict[tuple[int, str], Held] = field(default_factory=dict)
    # Per class, the anomaly episodes that ended, newest last (at most REMEMBERED). Replaced, never
    # changed in place, so another thread may read it at any time.
    anomalies: dict[str, tuple[Span, ...]] = field(default_factory=dict)

    def classes_with_models(self) -> set[str]:
        return {
            c for c, rules in self.rules.items() if any(r.detector == "multivariate" for r in rules)
        }

    def forget(self, device_id: int) -> None:
        """Drop a device's deviations, episodes and held conditions."""
        tables: tuple[dict[Any, Any], ...] = (self.deviations, self.episodes, self.held)
        for table in tables:
            for key in [k for k in table if k[0] == device_id]:
                del table[key]

    def set_model(self, model: Model) -> None:
        """Use ``model`` for its class. Open episodes go on when the features are the same
        (scores are in units of each model's own threshold, so a retrained version judges them
        alike and a scheduled retraining does not make open alarms flap); otherwise the
        evidence starts afresh."""
        self.models[model.device_class] = model
        codes = {r.code for r in self.rules.get(model.device_class, ())}
        for key in [k for k in self.episodes if k[1] in codes]:
            if self.episodes[key].columns != model.features:
                del self.episodes[key]

    def anomaly_spans(self, device_class: str, now: float) -> list[Span]:
        """The class model's own anomalies: episodes that ended, and those open (up to ``now``).
        Safe to call from another thread than the one feeding samples."""
        codes = {r.code for r in self.rules.get(device_class, ())}
        spans = list(self.anomalies.get(device_class, ()))
        for (device_id, code), tracker in dict(self.episodes).items():
            ep = tracker.open
            if code in codes and ep is not None:
                spans.append(Span(device_id, ep.start, now))
        return spans

    def on_sample(
        self, device_id: int, device_class: str, t: float, values: Mapping[str, float]
    ) -> list[Observation]:
        out = []
        for rule in self.rules.get(device_class, ()):
            if rule.detector == "baseline":
                active = self._baseline(device_id, rule, t, values)
            else:
                active = self._multivariate(device_id, device_class, rule, t, values)
            if active is None:
                continue
            detail: dict[str, Any] = {}
            if active and rule.detector == "multivariate":
                detail = explained(self.episodes[(device_id, rule.code)].open)
            elif active:
                detail = explained(self.deviations[(device_id, rule.code, rule.metric)].open)
            out.append(Observation(device_id, rule.code, t, active, rule.detector, detail))
        return out

    def _baseline(
        self, device_id: int, rule: LearnedRule, t: float, values: Mapping[str, float]
    ) -> bool | None:
        if rule.metric not in values:
            return None
        key = (device_id, rule.code, rule.metric)
        d = self.deviations.get(key)
        if d is None:
            d = self.deviations[key] = Deviation(
                rule.metric,
                DeviationSettings(
                    z=rule.z,
                    confirm_s=rule.for_seconds,
                    hold_s=rule.hold_s,
                    rate_per_day=rule.target_false_per_device_day,
                ),
            )
        return d.update(t, values[rule.metric])  # None while calibrating: nothing to say

    def _multivariate(
        self,
        device_id: int,
        device_class: str,
        rule: LearnedRule,
        t: float,
        values: Mapping[str, float],
    ) -> bool | None:
        model = self.models.get(device_class)
        if model is None or any(f not in values for f in model.features):
            return None
        row = np.array([[values[f] for f in model.features]], dtype=np.float64)
        score = model.score(row) / model.threshold
        tracker = self.episodes.get((device_id, rule.code))
        if tracker is None:
            tracker = self.episodes[(device_id, rule.code)] = EpisodeTracker(
                max(rule.score_above, MIN_SCORE_ABOVE),
                confirm_s=rule.confirm_s,
                hold_s=rule.hold_s,
                columns=model.features,
            )
        # Only a row above the threshold can be an episode's peak, the row it is explained by.
        above = bool(score[0] > tracker.threshold)
        z = model.deviations(row) if above else np.full(row.shape, np.nan)
        for ep in tracker.update(np.array([t]), score, z):
            if ep.end is not None:
                seen = self.anomalies.get(device_class, ())[-(REMEMBERED - 1) :]
                self.anomalies[device_class] = (*seen, Span(device_id, ep.start, ep.end))
        held = self.held.setdefault((device_id, rule.code), Held())
        return held.step(tracker.open is not None, t, rule.for_seconds)


def explained(episode: Episode | None) -> dict[str, Any]:
    """An alarm's detail from its open episode: the features most out of line at its peak,
    signed (multivariate: positive when higher than the rest of the row says it should be;
    baseline: higher than the metric's own level and trend), and the peak score in units of the
    threshold."""
    if episode is None:
        return {}
    return {
        "contributions": [
            {"metric": m, "z": round(z, 2)} for m, z in episode.contributions[:EXPLAINED]
        ],
        "peak": round(episode.peak, 2),
        "peak_at": episode.peak_at,
    }
