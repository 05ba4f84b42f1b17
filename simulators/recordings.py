"""Simulators: labelled recordings for judging detectors offline (pure numpy, seeded).

Two kinds, shaped like the data detectors meet in the field:

- :func:`loop_run`: a pump and water loop sampled every second (pressure, flow, motor current,
  temperature, vibration), with the nuisances that fool naive detectors: the loop warming over the
  run (temperature, and with it current and pressure, drift), vibration noise bursts of a few
  seconds, slow demand changes, dropped rows, short gaps and timestamp jitter. Faults: a valve
  closing part way, a leak, cavitation (noise rising on pressure, flow and vibration) and rotor
  imbalance (vibration up).
- :func:`scada_series`: hourly water-distribution SCADA (two tank levels, two pump states and
  flows, a junction pressure) with a daily demand cycle, lower demand at weekends and gaps.
  Faults: a sensor offset, a pump failing, a tank level manipulated (reported flat while the tank
  drains).

- :func:`machine_temperature`: one machine's temperature every 5 minutes over months, with a
  daily and a slower cycle, wandering and dropped rows. Faults: a failure building up over hours
  (the temperature falling away, or climbing).

Each returns a :class:`Recording`: times, columns, labelled fault windows and the end of the
normal stretch meant for calibration. :func:`write` writes the data CSV (``time`` in ISO 8601 with
offset) and the labels CSV (``start,end,kind``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
T0 = 1_796_083_200.0  # 2026-12-01 00:00 UTC


@dataclass(frozen=True, slots=True)
class Label:
    start: float
    end: float
    kind: str


@dataclass(frozen=True, slots=True)
class Recording:
    ts: FloatArray
    columns: dict[str, FloatArray]
    labels: tuple[Label, ...]
    calibrate_until: float  # rows up to here are normal and meant for calibration


def _ramp(ts: FloatArray, start: float, end: float, rise: float) -> FloatArray:
    """0 before start, 1 inside (reached over ``rise`` seconds), back to 0 at end."""
    up = np.clip((ts - start) / max(rise, 1e-9), 0.0, 1.0)
    return np.asarray(np.where(ts < end, up, 0.0), dtype=np.float64)


def loop_run(  # noqa: PLR0915 (one story: the loop, its nuisances, its faults)
    seed: int = 0,
    *,
    duration_s: float = 3600.0,
    calibrate_s: float = 600.0,
    faults: int = 4,
    nuisance: bool = True,
) -> Recording:
    """One run of the loop at 1 s; ``faults`` faults of 60-150 s after ``calibrate_s``, at least
    120 s apart, one of each kind in turn."""
    rng = np.random.default_rng(seed)
    n = int(duration_s)
    ts = T0 + np.arange(n, dtype=np.float64)
    rel = ts - T0
    # Demand: slow ramps of a few percent, every 5 to 15 minutes.
    demand = np.ones(n)
    if nuisance:
        at = 0.0
        level = 1.0
        while at < duration_s:
            at += float(rng.uniform(300, 900))
            new = float(np.clip(level + rng.normal(0, 0.03), 0.9, 1.1))
            ramp = float(rng.uniform(60, 180))
            demand += (new - level) * np.clip((rel - at) / ramp, 0.0, 1.0)
            level = new
    warm = 8.0 * (1.0 - np.exp(-rel / 1500.0)) if nuisance else np.zeros(n)
    temp = 25.0 + warm + rng.normal(0, 0.05, n)
    flow = 10.0 * demand + rng.normal(0, 0.05, n)
    pressure = 3.0 - 0.4 * (demand - 1.0) - 0.01 * warm + rng.normal(0, 0.01, n)
    current = 5.0 + 2.0 * (demand - 1.0) + 0.02 * warm + rng.normal(0, 0.02, n)
    vib = 1.0 + 0.01 * warm + np.abs(rng.normal(0, 0.05, n))
    if nuisance:  # vibration noise bursts of a few seconds, a few an hour
        for _ in range(rng.poisson(duration_s / 900)):
            s0 = float(rng.uniform(0, duration_s))
            burst = (rel >= s0) & (rel < s0 + rng.uniform(2, 5))
            vib[burst] += np.abs(rng.normal(0, 0.15, int(burst.sum())))
    labels: list[Label] = []
    kinds = ("valve_closure", "leak", "cavitation", "imbalance")
    room = (duration_s - calibrate_s - 60.0) / max(faults, 1)
    for k in range(faults):
        length = float(rng.uniform(60, 150))
        lo = calibrate_s + k * room + 60.0
        start = float(T0 + rng.uniform(lo, max(lo, lo + room - length - 120.0)))
        end = start + length
        kind = kinds[(k + seed) % len(kinds)]
        on = _ramp(ts, start, end, 5.0)
        inside = (ts >= start) & (ts < end)
        m = int(inside.sum())
        if kind == "valve_closure":
            flow -= 1.5 * on
            pressure += 0.12 * on
            current -= 0.2 * on
        elif kind == "leak":
            pressure -= 0.06 * on
            current += 0.08 * on
            flow -= 0.25 * on
        elif kind == "cavitation":
            pressure[inside] += rng.normal(0, 0.05, m)
            flow[inside] += rng.normal(0, 0.2, m) - 0.2
            vib[inside] += np.abs(rng.normal(0, 0.3, m))
        else:
            vib += 0.35 * on
            current += 0.05 * on
        labels.append(Label(start, end, kind))
    keep = np.ones(n, dtype=bool)
    if nuisance:  # dropped rows, two short gaps, jitter
        keep &= rng.random(n) > 0.01
        for _ in range(2):
            g = float(rng.uniform(calibrate_s, duration_s))
            keep &= ~((rel >= g) & (rel < g + rng.uniform(10, 30)))
        ts = ts + rng.uniform(-0.05, 0.05, n)
    cols = {
        "pressure_bar": pressure,
        "flow_m3h": flow,
        "current_a": current,
        "temperature_c": temp,
        "vibration_mms": vib,
    }
    return Recording(
        ts[keep], {k: v[keep] for k, v in cols.items()}, tuple(labels), T0 + calibrate_s
    )


def scada_series(
    seed: int = 0,
    *,
    days: float = 42.0,
    calibrate_days: float = 21.0,
    faults: int = 6,
    nuisance: bool = True,
) -> Recording:
    """Hourly SCADA over ``days``; ``faults`` faults of 6-48 h after ``calibrate_days``."""
    rng = np.random.default_rng(seed)
    n = int(days * 24)
    ts = T0 + 3600.0 * np.arange(n, dtype=np.float64)
    hour = ((ts - T0) / 3600.0) % 24
    day = ((ts - T0) // 86400).astype(np.int64)
    cycle = (
        1.0
        + 0.35 * np.sin(2 * math.pi * (hour - 9) / 24)
        + 0.15 * np.cos(4 * math.pi * (hour - 7) / 24)
    )
    weekend = (day % 7 >= 5) & nuisance
    demand = cycle * np.where(weekend, 0.85, 1.0) * (1 + rng.normal(0, 0.03, n))
    pump1 = (demand > 0.6).astype(np.float64)
    pump2 = (demand > 1.15).astype(np.float64)
    f1 = pump1 * (60.0 + rng.normal(0, 1.0, n))
    f2 = pump2 * (40.0 + rng.normal(0, 1.0, n))
    use = 70.0 * demand
    tank1 = np.empty(n)
    level = 4.0
    for i in range(n):  # the tank fills with what the pumps give beyond the town's use
        level = float(np.clip(level + (f1[i] + f2[i] - use[i]) / 100.0, 0.5, 6.5))
        tank1[i] = level
    tank1 += rng.normal(0, 0.02, n)
    tank2 = 3.0 + 0.6 * (tank1 - 4.0) / 2.5 - 0.3 * (demand - 1.0) + rng.normal(0, 0.03, n)
    pressure = 40.0 + 2.0 * tank1 - 3.0 * (demand - 1.0) + rng.normal(0, 0.3, n)
    labels: list[Label] = []
    kinds = ("sensor_offset", "pump_failure", "level_manipulation")
    room = (days - calibrate_days) * 86400 / max(faults, 1)
    for k in range(faults):
        length = 3600.0 * float(rng.integers(6, 49))
        lo = T0 + calibrate_days * 86400 + k * room + 3600.0
        start = 3600.0 * round(float(rng.uniform(lo, lo + room - length - 7200.0)) / 3600.0)
        end = start + length
        kind = kinds[(k + seed) % len(kinds)]
        inside = (ts >= start) & (ts < end)
        if kind == "sensor_offset":
            pressure[inside] += 4.0
        elif kind == "pump_failure":
            f1[inside] = 0.0
            pump1[inside] = 0.0
            tank1[inside] -= np.cumsum(np.full(int(inside.sum()), 0.4))
            pressure[inside] -= 2.0 * np.cumsum(np.full(int(inside.sum()), 0.4))
        else:
            tank1[inside] = tank1[inside][0] + rng.normal(0, 0.02, int(inside.sum()))
            pressure[inside] -= 3.0
        labels.append(Label(start, end - 3600.0, kind))  # last labelled row
    keep = np.ones(n, dtype=bool)
    if nuisance:
        keep &= rng.random(n) > 0.02
    cols = {
        "tank1_m": tank1,
        "tank2_m": tank2,
        "pump1_on": pump1,
        "pump2_on": pump2,
        "flow1_ls": f1,
        "flow2_ls": f2,
        "junction_m": pressure,
    }
    return Recording(
        ts[keep],
        {k: v[keep] for k, v in cols.items()},
        tuple(labels),
        T0 + calibrate_days * 86400 - 1.0,
    )


def machine_temperature(
    seed: int = 0, *, days: float = 70.0, calibrate_days: float = 20.0, faults: int = 3
) -> Recording:
    """5-minute temperatures over ``days``; ``faults`` failures of 6-24 h after calibration,
    alternately a fall of 25 degrees and a climb of 8, each building up over its whole length."""
    rng = np.random.default_rng(seed)
    n = int(days * 288)
    ts = T0 + 300.0 * np.arange(n, dtype=np.float64)
    day = (ts - T0) / 86400.0
    temp = (
        80.0
        + 3.0 * np.sin(2 * math.pi * day)
        + 2.0 * np.sin(2 * math.pi * day / 23.0)
        + 0.2 * np.cumsum(rng.normal(0, 0.05, n))
        + rng.normal(0, 0.4, n)
    )
    labels = []
    room = (days - calibrate_days - 5.0) / max(faults, 1)
    for k in range(faults):
        start = T0 + (calibrate_days + 5.0 + k * room + rng.uniform(0, room - 2.0)) * 86400
        length = float(rng.uniform(6, 24)) * 3600
        inside = (ts >= start) & (ts < start + length)
        ramp = (ts[inside] - start) / length
        temp[inside] += -25.0 * ramp if k % 2 == 0 else 8.0 * ramp
        labels.append(Label(float(start), float(start + length), "failure"))
    keep = rng.random(n) > 0.01
    return Recording(
        ts[keep], {"temperature": temp[keep]}, tuple(labels), T0 + calibrate_days * 86400 - 1.0
    )


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def write(rec: Recording, data: Path, labels: Path) -> None:
    """The data CSV (``time`` + one column each, 6 significant digits) and the labels CSV."""
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        names = list(rec.columns)
        w.writerow(["time", *names])
        cols = [rec.columns[c] for c in names]
        for i, t in enumerate(rec.ts.tolist()):
            w.writerow([_iso(t), *(f"{c[i]:.6g}" for c in cols)])
    with labels.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start", "end", "kind"])
        for lab in rec.labels:
            w.writerow([_iso(lab.start), _iso(lab.end), lab.kind])
