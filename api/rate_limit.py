"""API: per-token rate limits, one token bucket per API token (pure).

A bucket holds at most ``burst`` permits and gains ``rate`` permits a second; each write takes
one. An empty bucket answers how long until the next permit (the ``Retry-After``). Buckets are
kept for the tokens heard from most recently, at most ``max_keys`` of them: the least recently
used one is forgotten first (it has refilled by then, unless ``max_keys`` tokens wrote within
``burst / rate`` seconds), so memory stays bounded whatever the callers do.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class Buckets:
    rate: float  # permits a second
    burst: int  # permits at most
    max_keys: int = 10_000
    _buckets: OrderedDict[Hashable, tuple[float, float]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_keys < 1:
            raise ValueError("a rate limit needs rate > 0, burst >= 1 and max_keys >= 1")

    def take(self, key: Hashable, now: float) -> float:
        """Take one permit from ``key``'s bucket at ``now`` (monotonic seconds): 0.0 if there
        was one, else the seconds until there is one (nothing is taken)."""
        permits, at = self._buckets.pop(key, (float(self.burst), now))
        permits = min(float(self.burst), permits + max(0.0, now - at) * self.rate)
        wait = 0.0
        if permits >= 1.0:
            permits -= 1.0
        else:
            wait = (1.0 - permits) / self.rate
        self._buckets[key] = (permits, now)  # last: the most recently used
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        return len(self._buckets)
