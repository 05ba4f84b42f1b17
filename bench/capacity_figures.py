"""Bench: the capacity benchmark's figures (pure; no I/O). The device counts it steps through,
what one step measured, which service objectives it met, and how the table and result line
read."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.latency import percentiles

# The service objectives (issue 19): name -> (target, unit).
INGEST_LAG_S = 5.0  # publish → reading committed, the worst probe of the step
ALARM_P99_MS = 1000.0  # publish → alarm row committed (analytics)
NOTIFY_P99_MS = 1000.0  # publish → P0 notification received by the webhook double
API_P99_MS = 100.0  # 10 clients on typical routes
OBJECTIVES = ("ingest lag", "publish → alarm p99", "publish → P0 notification p99", "API p99")


def device_steps(start: int, factor: float, maximum: int) -> list[int]:
    """The device counts to try: ``start``, then ×``factor`` each step (rounded to 100), the
    last one ``maximum``."""
    if start <= 0 or maximum < start:
        raise SystemExit("--start must be above 0 and --max-devices at least --start")
    if not factor > 1.0:
        raise SystemExit("--factor must be above 1 (each step has more devices than the last)")
    out = [start]
    while out[-1] < maximum:
        nxt = max(out[-1] + 1, round(out[-1] * factor / 100.0) * 100)
        out.append(min(nxt, maximum))
    return out


def communities_for(sizes: Sequence[int], devices: int) -> int:
    """How many of the county's communities (``sizes``: devices each, in seeding order) hold at
    least ``devices`` devices."""
    total = 0
    for k, n in enumerate(sizes, 1):
        total += n
        if total >= devices:
            return k
    raise SystemExit(f"the generated county has only {total} devices, fewer than {devices}")


def p99(values: Sequence[float]) -> float:
    """p99 of ``values``, inclusive; NaN when nothing was measured."""
    return percentiles(sorted(values))[1] if values else math.nan


@dataclass
class Step:
    """What one step measured. Latencies in ms; a fault whose alarm or notification never came
    counts as ``missing`` (and breaks the objective)."""

    devices: int
    connections: int = 0
    seconds: float = 0.0
    readings_per_s: float = 0.0
    ingest_lag_ms: list[float] = field(default_factory=list)
    ingest_probes_lost: int = 0
    faults: int = 0
    alarm_ms: list[float] = field(default_factory=list)
    notify_ms: list[float] = field(default_factory=list)
    api_p50_ms: float = math.nan
    api_p99_ms: float = math.nan  # bench.api's phase: 10 paced clients over the step
    api_requests: int = 0
    api_errors: int = 0
    cpu: dict[str, float] = field(default_factory=dict)  # name -> share of the machine, 0..1
    note: str = ""
    attempt: int = 0  # 1: the step run again after it missed an objective

    @property
    def ingest_lag_s(self) -> float:
        return max(self.ingest_lag_ms, default=math.nan) / 1000.0

    def measured(self) -> dict[str, float]:
        """Each objective's figure, in the objective's unit."""
        return {
            "ingest lag": self.ingest_lag_s,
            "publish → alarm p99": p99(self.alarm_ms),
            "publish → P0 notification p99": p99(self.notify_ms),
            "API p99": self.api_p99_ms,
        }

    def broken(self) -> list[tuple[str, float]]:
        """The objectives this step missed, worst first, with how far over (figure / target;
        infinite when nothing, or not everything, was measured)."""
        targets = {
            "ingest lag": INGEST_LAG_S,
            "publish → alarm p99": ALARM_P99_MS,
            "publish → P0 notification p99": NOTIFY_P99_MS,
            "API p99": API_P99_MS,
        }
        incomplete = {
            "ingest lag": self.ingest_probes_lost > 0 or not self.ingest_lag_ms,
            "publish → alarm p99": len(self.alarm_ms) < self.faults or not self.faults,
            "publish → P0 notification p99": len(self.notify_ms) < self.faults or not self.faults,
            "API p99": self.api_errors > 0 or not self.api_requests,
        }
        out = []
        for name, value in self.measured().items():
            ratio = math.inf if incomplete[name] else value / targets[name]
            if ratio > 1.0:
                out.append((name, ratio))
        return sorted(out, key=lambda x: -x[1])

    @property
    def passed(self) -> bool:
        return not self.broken()


def shares(
    before: Mapping[str, float], after: Mapping[str, float], wall_s: float, cores: int
) -> dict[str, float]:
    """CPU seconds used between two readings of cumulative CPU times, as a share of the whole
    machine (``cores`` × ``wall_s``)."""
    budget = max(wall_s * cores, 1e-9)
    return {k: max(0.0, after[k] - before.get(k, 0.0)) / budget for k in after}


def _ms(v: float) -> str:
    return "—" if math.isnan(v) else f"{v:,.0f}"


def row(step: Step, cpu_names: Sequence[str]) -> list[str]:
    m = step.measured()
    broken = step.broken()
    lag = "—" if math.isnan(m["ingest lag"]) else f"{m['ingest lag']:.2f}"
    if step.ingest_lag_ms:
        lag += f" (p50 {percentiles(sorted(step.ingest_lag_ms))[0] / 1000:.2f})"
    if step.ingest_probes_lost:
        lag += f" ({step.ingest_probes_lost} lost)"
    return [
        f"{step.devices:,}",
        f"{step.readings_per_s:,.0f}",
        lag,
        f"{_ms(m['publish → alarm p99'])} ({len(step.alarm_ms)}/{step.faults})",
        f"{_ms(m['publish → P0 notification p99'])} ({len(step.notify_ms)}/{step.faults})",
        f"{_ms(m['API p99'])} (p50 {_ms(step.api_p50_ms)})"
        + (f" ({step.api_errors} err)" if step.api_errors else ""),
        *(f"{step.cpu.get(n, 0.0):.0%}" for n in cpu_names),
        ("pass" if not broken else "FAIL: " + ", ".join(n for n, _ in broken))
        + (" (run again)" if step.attempt else "")
        + (f" ({step.note})" if step.note else ""),
    ]


HEADERS = (
    "devices",
    "readings/s",
    "ingest lag max s",
    "alarm p99 ms",
    "P0 notif p99 ms",
    "API p99 ms",
)


def result_line(steps: Sequence[Step], cpu_names: Sequence[str], why_stopped: str) -> str:
    """The benchmark's result: the largest count that met every objective, which objective
    broke first (at the first step that missed one), and the CPU shares at the largest passing
    step."""
    passing = [s for s in steps if s.passed]
    passed_counts = {s.devices for s in passing}
    # a count breaks when every run of it missed an objective; the first run says what broke
    failing = next((s for s in steps if s.devices not in passed_counts), None)
    below = [s for s in passing if failing is None or s.devices < failing.devices]
    best = max(below, key=lambda s: s.devices) if below else None
    head = (
        f"capacity: {best.devices:,} devices met every objective"
        if best
        else "capacity: no step met every objective"
    )
    if failing is not None:
        name, ratio = failing.broken()[0]
        over = "not measured / incomplete" if math.isinf(ratio) else f"{ratio:.1f}× its target"
        head += f"; first broken at {failing.devices:,} devices: {name} ({over})"
    else:
        head += f"; none broken ({why_stopped})"
    at = best or failing
    if at is not None:
        cpu = ", ".join(f"{n} {at.cpu.get(n, 0.0):.0%}" for n in cpu_names)
        head += f"; CPU at {at.devices:,} devices: {cpu}"
    return head
