"""Analytics: the learned detectors in the stream (per-device baselines, per-class models).

Entries of the list whose filing names ``baseline`` or ``multivariate`` are served here. A
baseline condition holds while the device's metric is in a level-shift or drift episode, or its
values sit ``z`` robust scales from the time-of-day baseline for ``for_seconds``. A multivariate
condition holds while the class model's anomaly episode is open and its score, in units of the
model's calibrated threshold, is above ``score_above``. Pure: models are handed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from analytics.baseline import Baseline
from analytics.conditions import Held
from analytics.multivariate import Episodes, Model
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
                )
            else:
                continue
            out.setdefault(str(e.device_class), []).append(rule)
    return out


@dataclass(slots=True)
class Learned:
    rules: dict[str, list[LearnedRule]]
    models: dict[str, Model] = field(default_factory=dict)
    baselines: dict[tuple[int, str], Baseline] = field(default_factory=dict)
    episodes: dict[tuple[int, str], Episodes] = field(default_factory=dict)
    held: dict[tuple[int, str], Held] = field(default_factory=dict)

    def classes_with_models(self) -> set[str]:
        return {
            c for c, rules in self.rules.items() if any(r.detector == "multivariate" for r in rules)
        }

    def forget(self, device_id: int) -> None:
        """Drop a device's baselines, episodes and held conditions."""
        for table in (self.baselines, self.episodes, self.held):
            for key in [k for k in table if k[0] == device_id]:
                del table[key]

    def set_model(self, model: Model) -> None:
        self.models[model.device_class] = model
        for key in [k for k in self.episodes if k[1] == model.device_class]:
            del self.episodes[key]  # thresholds changed: start the evidence afresh

    def on_sample(
        self, device_id: int, device_class: str, t: float, values: Mapping[str, float]
    ) -> list[Observation]:
        out = []
        for rule in self.rules.get(device_class, ()):
            if rule.detector == "baseline":
                active = self._baseline(device_id, rule, t, values)
            else:
                active = self._multivariate(device_id, device_class, rule, t, values)
            if active is not None:
                out.append(Observation(device_id, rule.code, t, active, rule.detector))
        return out

    def _baseline(
        self, device_id: int, rule: LearnedRule, t: float, values: Mapping[str, float]
    ) -> bool | None:
        if rule.metric not in values:
            return None
        b = self.baselines.get((device_id, rule.metric))
        if b is None:
            b = self.baselines[(device_id, rule.metric)] = Baseline()
        scored = b.update(np.array([t]), np.array([values[rule.metric]]))
        z = float(scored.z[0])
        # Single values count only once the baseline judges on its own (its episodes do too);
        # before that a daily-periodic signal is scored against an all-day fallback.
        far = bool(np.isfinite(z) and abs(z) > rule.z and b.judging(t))
        held = self.held.setdefault((device_id, rule.code), Held())
        return held.step(far, t, rule.for_seconds) or b.episode != 0

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
        score = float(model.score(row)[0]) / model.threshold
        ep = self.episodes.get((device_id, device_class))
        if ep is None:
            ep = self.episodes[(device_id, device_class)] = Episodes(model.threshold)
        ep.update(np.array([t]), np.array([score * model.threshold]))
        held = self.held.setdefault((device_id, rule.code), Held())
        return held.step(ep.active and score > rule.score_above, t, rule.for_seconds)
