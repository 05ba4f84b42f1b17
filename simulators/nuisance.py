"""Simulators: what real equipment does that is not a fault (pure, seeded).

The same nuisances the generated recordings carry (``simulators/recordings.py``), for the running
county, so that detectors are judged on data that fools naive ones:

- **slow warming**: temperatures creep up over days (the season, a machine room warming), by up to
  ``warming_c`` with a time constant of ``warming_tau_s``;
- **noise bursts**: a few minutes of noisier readings (interference, a pump starting next door),
  ``bursts_per_day`` of them, ``burst_factor`` times each metric's own noise;
- **demand changes**: each local day's demand differs from the last (a random factor, more at
  weekends, much less on days the residents are away), for every class that follows demand;
- **sampling gaps**: single reports dropped (``drop``) and short gaps of up to ``gap_intervals``
  reporting intervals (``gaps_per_day``), never as long as the list's offline silence (six
  intervals).

A device's :class:`Nuisance` is advanced with non-decreasing simulated times, as its behaviour is.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simulators.behaviour import CST, demand

DAY = 86400.0

# Each noisy metric's own noise (one standard deviation, as simulators/behaviour.py draws it).
NOISE: dict[str, float] = {
    "vibration": 0.05,
    "machine_room_temp": 0.2,
    "sprinkler_pressure": 0.004,
    "hydrant_pressure": 0.004,
    "tank_static_pressure": 0.002,
    "residual_current": 3.0,
    "cable_temp": 0.3,
    "inlet_pressure": 0.003,
    "zone_low_pressure": 0.003,
    "zone_mid_pressure": 0.003,
    "zone_high_pressure": 0.004,
    "pump1_current": 0.2,
    "room_temp": 0.2,
    "room_humidity": 1.0,
    "voltage": 2.0,
    "flow": 1.0,
    "residual_chlorine": 0.01,
    "turbidity": 0.03,
    "ph": 0.03,
    "water_temp": 0.1,
}


@dataclass(frozen=True, slots=True)
class NuisanceParams:
    warming_c: float = 3.0
    warming_tau_s: float = 2 * DAY
    bursts_per_day: float = 2.0
    burst_s: tuple[float, float] = (60.0, 300.0)
    burst_factor: float = 2.5
    day_spread: float = 0.05  # standard deviation of a day's demand factor
    weekend: float = 1.08  # residents at home
    away_share: float = 0.1  # share of days most residents are away
    away: float = 0.75
    drop: float = 0.005  # share of reports dropped one at a time
    gaps_per_day: float = 1.0
    gap_intervals: int = 3  # longest gap, in reports missed

    def __post_init__(self) -> None:
        if not 0 <= self.drop < 0.5:
            raise ValueError(f"drop must be a share below 0.5, not {self.drop}")
        if not 1 <= self.gap_intervals <= 4:
            raise ValueError(
                f"gap_intervals must be 1 to 4 (the list's offline silence is six intervals), "
                f"not {self.gap_intervals}"
            )
        if self.warming_tau_s <= 0:
            raise ValueError(f"warming_tau_s must be positive, not {self.warming_tau_s}")


@dataclass(slots=True)
class Nuisance:
    rng: random.Random
    params: NuisanceParams = field(default_factory=NuisanceParams)
    seed: int = 0
    t0: float | None = None
    burst_until: float = -math.inf
    next_burst: float = math.nan
    gap_left: int = 0
    next_gap: float = math.nan
    dropped_last: bool = False

    def __post_init__(self) -> None:
        self.seed = self.rng.randrange(1 << 30)

    def day_factor(self, t: float) -> float:
        """The demand factor of ``t``'s local day: the same for every call on that day."""
        day = math.floor((t + CST) / DAY)
        r = random.Random(f"{self.seed}:{day}")
        p = self.params
        f = min(1.3, max(0.7, r.gauss(1.0, p.day_spread)))
        if r.random() < p.away_share:
            f *= p.away
        if day % 7 in (2, 3):  # 1970-01-01 was a Thursday: days 2 and 3 are Saturday and Sunday
            f *= p.weekend
        return f

    def demand(self, t: float) -> float:
        """Residential demand of ``t`` with this day's change, 0..1."""
        return min(1.0, demand(t) * self.day_factor(t))

    def warming(self, t: float) -> float:
        if self.t0 is None:
            self.t0 = t
        return self.params.warming_c * (1.0 - math.exp(-(t - self.t0) / self.params.warming_tau_s))

    def apply(self, t: float, values: dict[str, float]) -> dict[str, float]:
        """``values`` as reported at ``t``: warmer temperatures, and noisier in a burst."""
        p = self.params
        out = dict(values)
        warm = self.warming(t)
        for k, v in values.items():
            if k.endswith("_temp"):
                out[k] = round(v + warm, 2)
        if math.isnan(self.next_burst):
            self.next_burst = t + self._wait(p.bursts_per_day)
        if t >= self.next_burst:
            self.burst_until = t + self.rng.uniform(*p.burst_s)
            self.next_burst = self.burst_until + self._wait(p.bursts_per_day)
        if t < self.burst_until:
            for k, sd in NOISE.items():
                if k in out:
                    v = out[k] + self.rng.gauss(0.0, p.burst_factor * sd)
                    out[k] = round(max(0.0, v), 4)
            if "room_humidity" in out:
                out["room_humidity"] = min(100.0, out["room_humidity"])
        return out

    def skip(self, t: float) -> bool:
        """Whether the regular report at ``t`` is lost. At most ``gap_intervals`` in a row."""
        p = self.params
        if math.isnan(self.next_gap):
            self.next_gap = t + self._wait(p.gaps_per_day)
        lost = False
        if self.gap_left:
            self.gap_left -= 1
            lost = True
        elif self.dropped_last:
            lost = False
        elif t >= self.next_gap:
            self.gap_left = self.rng.randint(1, p.gap_intervals) - 1
            self.next_gap = t + self._wait(p.gaps_per_day)
            lost = True
        else:
            lost = self.rng.random() < p.drop
        self.dropped_last = lost
        return lost

    def _wait(self, per_day: float) -> float:
        return math.inf if per_day <= 0 else self.rng.expovariate(per_day / DAY)
