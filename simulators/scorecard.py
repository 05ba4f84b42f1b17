"""Simulators: the scorer. Compares the platform's alarms and work orders with the ground truth
of injected faults: per scenario detected or not, delay, event code, responsible party; and
false alarms per device-day outside the fault windows."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from core.db import Conn
from simulators.faults import Fault


@dataclass(frozen=True, slots=True)
class Raised:
    device_uid: str
    code: str
    opened_at: float
    severity: str
    party: str | None  # the work order's responsible party
    detector: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    fault: Fault
    detected: bool
    code_ok: bool
    party_ok: bool
    delay_s: float | None
    codes_seen: tuple[str, ...]

    @property
    def passed(self) -> bool:
        if self.fault.expect is None:
            return not self.codes_seen
        return self.detected and self.code_ok and self.party_ok


@dataclass(frozen=True, slots=True)
class Scorecard:
    outcomes: tuple[Outcome, ...]
    false_alarms: tuple[Raised, ...]
    device_days: float

    @property
    def false_per_device_day(self) -> float:
        return len(self.false_alarms) / self.device_days if self.device_days else 0.0

    @property
    def p0_median_delay_s(self) -> float | None:
        delays = [
            o.delay_s for o in self.outcomes if o.fault.severity == "P0" and o.delay_s is not None
        ]
        return statistics.median(delays) if delays else None

    def render(self, console: Console) -> None:
        t = Table(title="fault-injection scorecard")
        for col in ("scenario", "device", "expected", "seen", "party", "delay s", "result"):
            t.add_column(col)
        for o in self.outcomes:
            f = o.fault
            t.add_row(
                f.scenario,
                f.device_uid,
                f.expect or "(none)",
                ", ".join(o.codes_seen) or "-",
                "ok" if o.party_ok else "WRONG" if f.party else "-",
                "-" if o.delay_s is None else f"{o.delay_s:.1f}",
                "[green]pass[/]" if o.passed else "[red]FAIL[/]",
            )
        console.print(t)
        p0 = self.p0_median_delay_s
        faults = [o for o in self.outcomes if o.fault.expect is not None]
        by_detector: dict[str, int] = {}
        for r in self.false_alarms:
            by_detector[r.detector or "-"] = by_detector.get(r.detector or "-", 0) + 1
        console.print(
            f"faults found with the right code and party: {sum(o.passed for o in faults)} of"
            f" {len(faults)}; false alarms by detector: "
            + (", ".join(f"{d} {n}" for d, n in sorted(by_detector.items())) or "none")
        )
        console.print(
            f"P0 median detection delay: {'-' if p0 is None else f'{p0:.1f} s'} (target < 10 s); "
            f"false alarms: {len(self.false_alarms)} over {self.device_days:.1f} device-days = "
            f"{self.false_per_device_day:.3f}/device-day (target ≤ 0.1)"
        )
        for r in self.false_alarms[:10]:
            console.print(f"  false alarm: {r.device_uid} {r.code} at {r.opened_at:.0f}")


def score(
    faults: list[Fault],
    raised: list[Raised],
    *,
    devices: int,
    span_s: float,
    margin_s: float = 600.0,
) -> Scorecard:
    outcomes = []
    explained: set[int] = set()
    for f in faults:
        hits = [
            (i, r)
            for i, r in enumerate(raised)
            if r.device_uid == f.device_uid and f.start - 1 <= r.opened_at <= f.end + margin_s
        ]
        explained.update(i for i, _ in hits)
        right = [r for _, r in hits if r.code == f.expect]
        first = min(right, key=lambda r: r.opened_at) if right else None
        outcomes.append(
            Outcome(
                f,
                bool(hits),
                first is not None,
                f.party is None or (first is not None and first.party == f.party),
                None if first is None else max(0.0, first.opened_at - f.start),
                tuple(
                    sorted(
                        {
                            f"{r.code} ({r.detector})" if r.code == f.expect else r.code
                            for _, r in hits
                        }
                    )
                ),
            )
        )
    false = tuple(r for i, r in enumerate(raised) if i not in explained)
    return Scorecard(tuple(outcomes), false, devices * span_s / 86400)


def load_raised(conn: Conn) -> list[Raised]:
    rows = conn.execute(
        "SELECT d.uid, a.event_code, extract(epoch FROM a.opened_at), a.severity, w.responsible_party, a.detector"
        " FROM alarms a JOIN devices d ON d.id = a.device_id LEFT JOIN work_orders w ON w.alarm_id = a.id"
        " ORDER BY a.opened_at"
    ).fetchall()
    return [Raised(u, c, float(t), s, p, det) for u, c, t, s, p, det in rows]
