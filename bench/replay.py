"""Analytics: the replay benchmark. Writes a pump-room-like CSV with odd column names, a ';'
separator and a day-first time format, with three faults injected, replays it, and reports
the rate (and which faults were found).

The data follow ``simulators.behaviour.PumpRoom`` (the same demand curve, noise and relations), with
pressures in bar instead of MPa, generated with numpy so a million rows take about a second.
Run: ``python -m bench.replay [rows]``.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analytics.baseline import CST, FloatArray
from analytics.replay import CST_TZ, replay
from simulators.behaviour import demand

TIME, TIME_FORMAT = "Timestamp", "%d.%m.%Y %H:%M:%S"
PUMP_A, PUMP_B, FLOW = "PumpA_Amps", "PumpB_Amps", "Flow m3/h"
LOW, MID, HIGH, TANK = "Zone-Low (bar)", "Zone-Mid (bar)", "Zone-High (bar)", "Tank.Level_m"
COLUMNS = (PUMP_A, PUMP_B, FLOW, LOW, MID, HIGH, TANK)
# Bimodal (the standby pump) and cyclic (the float valve) columns go to the model only.
BASELINE_COLUMNS = (PUMP_A, FLOW, LOW, MID, HIGH)
T0 = 1_798_732_800  # 2027-01-01 00:00 in UTC+8


@dataclass(frozen=True, slots=True)
class Injected:
    column: str
    kind: str  # what was done: "level_shift", "drift", "flow_without_current"
    start: float
    end: float


def synthesise(
    rows: int, *, step: float = 10.0, seed: int = 0, faults: bool = True
) -> tuple[FloatArray, dict[str, FloatArray], list[Injected]]:
    """Times, columns and the faults injected (unless not ``faults``), each repaired after a while:
    pump A +1.5 A at the same flow for two days from 55 % of the span; zone-mid pressure drifting
    down 0.03 bar/day for two days from 70 %; flow +12 m³/h without current for an hour at 90 %."""
    rng = np.random.default_rng(seed)
    ts = T0 + np.arange(rows) * step
    tod = np.round((ts + CST) % 86400, 3)
    uniq, inv = np.unique(tod, return_inverse=True)
    dem = np.array([demand(float(u) - CST) for u in uniq])[inv]
    flow = np.maximum(8 + 60 * dem + rng.normal(0, 1.0, rows), 0.0)
    pump_a = 12 + 0.35 * np.minimum(flow, 50) + rng.normal(0, 0.2, rows)
    pump_b = np.where(flow > 50, 12 + 0.35 * (flow - 50) + rng.normal(0, 0.2, rows), 0.0)
    dip = 0.3 * dem
    low = 3.0 - dip + rng.normal(0, 0.03, rows)
    mid = 4.5 - dip + rng.normal(0, 0.03, rows)
    high = 6.0 - dip + rng.normal(0, 0.04, rows)
    tank = _tank(flow, step)
    span = ts[-1] - ts[0]
    shift_at, drift_at, flow_at = (ts[0] + f * span for f in (0.55, 0.70, 0.90))
    shift_end, drift_end, flow_end = shift_at + 2 * 86400, drift_at + 2 * 86400, flow_at + 3600
    if not faults:
        shift_at = drift_at = flow_at = shift_end = drift_end = flow_end = math.inf
    pump_a += 1.5 * ((ts >= shift_at) & (ts < shift_end))
    mid -= 0.03 * np.clip(ts - drift_at, 0, None) / 86400 * (ts < drift_end)
    flow[(ts >= flow_at) & (ts < flow_end)] += 12.0
    columns: dict[str, FloatArray] = {
        PUMP_A: pump_a,
        PUMP_B: np.maximum(pump_b, 0.0),
        FLOW: flow,
        LOW: low,
        MID: mid,
        HIGH: high,
        TANK: tank,
    }
    injected = [
        Injected(PUMP_A, "level_shift", shift_at, shift_end),
        Injected(MID, "drift", drift_at, drift_end),
        Injected(FLOW, "flow_without_current", flow_at, flow_end),
    ]
    if not faults:
        injected = []
    return ts.astype(np.float64), columns, injected


def _tank(flow: FloatArray, step: float) -> FloatArray:
    out = np.empty(len(flow))
    level, refilling, area = 3.0, False, 40.0
    for i, f in enumerate(flow.tolist()):
        level += ((90.0 if refilling else 0.0) - f) * step / 3600 / area
        refilling = level <= 2.0 or (refilling and level < 3.5)
        out[i] = level
    return out


def write_csv(path: Path, ts: FloatArray, columns: dict[str, FloatArray]) -> None:
    """``columns`` to ``path`` with a ';' separator and ``TIME_FORMAT`` times in UTC+8."""
    names = list(columns)
    with path.open("w") as f:
        f.write(";".join([TIME, *names]) + "\n")
        for lo in range(0, len(ts), 100_000):
            iso = (ts[lo : lo + 100_000] + CST).astype("datetime64[s]").astype(str).tolist()
            cells = [[f"{s[8:10]}.{s[5:7]}.{s[:4]} {s[11:19]}" for s in iso]]
            for n in names:
                fmt = "%.2f" if "Amps" in n or "Flow" in n else "%.4f"
                cells.append(np.char.mod(fmt, columns[n][lo : lo + 100_000]).tolist())
            f.write("\n".join(map(";".join, zip(*cells, strict=True))) + "\n")


def bench(rows: int = 1_000_000, *, directory: Path | None = None) -> dict[str, Any]:
    """Generate ``rows`` rows (10 s apart), replay them (calibrating on the first 20 days), and
    return the figures."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        src, out = Path(tmp) / "pump room.csv", Path(tmp) / "alarms.csv"
        ts, columns, injected = synthesise(rows)
        write_csv(src, ts, columns)
        stats = replay(
            src,
            out,
            time_column=TIME,
            columns=COLUMNS,
            sep=";",
            time_format=TIME_FORMAT,
            calibrate_rows=min(rows // 2, 20 * 8640),
            tz=CST_TZ,
        )
        size = src.stat().st_size
    return {
        "rows": stats.rows,
        "csv_mb": round(size / 1e6, 1),
        "seconds": round(stats.seconds, 2),
        "rows_per_s": round(stats.rows / stats.seconds),
        "s_per_million_rows": round(stats.seconds / stats.rows * 1e6, 2),
        "alarms": stats.alarms,
        "events": stats.events,
        "injected": [(i.column, i.kind) for i in injected],
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    print(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
