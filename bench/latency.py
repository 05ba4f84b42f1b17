"""Bench: latency figures. The median and p99 of what was measured, and how the latency
benchmarks print them against their target."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

TARGET_P99_MS = 1000.0  # publish → alarm and work order, publish → notification


def percentiles(latencies_ms: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 of the (sorted, non-empty) latencies; inclusive, so a percentile of what was
    measured, never beyond the largest sample."""
    p99 = (
        statistics.quantiles(latencies_ms, n=100, method="inclusive")[98]
        if len(latencies_ms) > 1
        else latencies_ms[0]
    )
    return statistics.median(latencies_ms), p99


@dataclass(frozen=True, slots=True)
class Latency:
    samples: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    def figures(self) -> str:
        return (
            f"p50 {self.p50_ms:.0f} ms, p99 {self.p99_ms:.0f} ms, max {self.max_ms:.0f} ms"
            f" (target p99 ≤ {TARGET_P99_MS:.0f} ms)"
        )


def summarise(latencies_ms: Sequence[float]) -> Latency:
    lat = sorted(latencies_ms)
    return Latency(len(lat), *percentiles(lat), lat[-1])
