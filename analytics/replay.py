"""Analytics: replay a CSV of readings through the detectors and write the alarm episodes they open.

Calibration teaches, scoring judges. Calibration rows come from separate files of normal operation
(``calibrate_files``, e.g. other runs of the same loop) and/or the start of the scored file (rows up
to ``calibrate_until``, or the first ``calibrate_rows``). Of the calibration rows, the first part
fits the detectors and the last ``held_back`` fraction sets their thresholds: the smallest for which
the episode rules would have raised at most ``false_alarms_per_day`` there (shared between the two
detectors), times a safety margin. Calibration rows are held in memory; the scored rows stream
through in chunks, so the scored file's size is bounded by the disk, not by memory:

- ``robust_deviation``: :class:`~analytics.robust.RobustDetector`, each column against its own
  level, trend and noise (and daily profile, with several days of calibration);
- ``multivariate_anomaly``: :class:`~analytics.relations.RelationDetector`, the columns no longer
  agreeing with one another.

Each detector's scores go through an :class:`~analytics.episodes.EpisodeTracker`; every episode is
written to the output CSV as soon as it closes, and the file flushed, so an interrupted run keeps
what it found (stopped while scoring, :func:`replay` raises :class:`ReplayInterrupted`, which
says how many episodes the file holds). Columns: ``start,end,event,columns,peak,direction,contributions,open_at_end`` (times
ISO 8601 with offset; ``peak`` in multiples of the threshold; ``contributions`` the signed
per-column evidence at the peak, ``col:+3.2|col2:-1.1``). With ``scores`` a second CSV gets each
scored row's two scores, in multiples of their thresholds.
"""

from __future__ import annotations

import csv
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TextIO

import numpy as np

from analytics.episodes import Episode, EpisodeTracker
from analytics.exports import CST_TZ, FloatArray, numeric_columns, parse_times, read_chunks
from analytics.relations import RelationDetector
from analytics.robust import Calibrated, RobustDetector, RobustParams, calibrate_threshold
from core.errors import ConfigError
from responsibility.model import BaselineFiling, Entry, MultivariateFiling

__all__ = [
    "CST_TZ",
    "ReplayInterrupted",
    "ReplaySettings",
    "ReplayStats",
    "parse_times",
    "replay",
]
EPISODE_FIELDS = (
    "start",
    "end",
    "event",
    "columns",
    "peak",
    "direction",
    "contributions",
    "open_at_end",
)
SHORT_CALIBRATION_ROWS = 300


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """Detector settings; durations in seconds, ``None``: from the median row interval ``dt``."""

    false_alarms_per_day: float = 1.0  # target on normal data, both detectors together
    confirm_s: float | None = None  # default 5 dt below a minute's rows, else 0
    hold_s: float | None = None  # default 30 dt below a minute's rows, else 3 dt
    max_gap_s: float | None = None  # a gap this long closes an episode (default: none)
    held_back: float = 0.3  # fraction of calibration that sets the thresholds
    margin: float = 1.5  # thresholds x this
    min_z: float = 6.0  # the robust threshold is never below this
    robust: RobustParams = field(default_factory=RobustParams)
    per_column: bool = True
    multivariate: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.false_alarms_per_day) and self.false_alarms_per_day > 0):
            raise ConfigError(
                "--false-alarms-per-day",
                f"must be a positive number, not {self.false_alarms_per_day}",
            )
        if not 0.05 <= self.held_back <= 0.8:
            raise ConfigError("--held-back", f"must be between 0.05 and 0.8, not {self.held_back}")
        for name in ("confirm_s", "hold_s", "max_gap_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"--{name[:-2].replace('_', '-')}", f"must be >= 0, not {v}")
        if self.hold_s is not None and self.hold_s <= 0:
            raise ConfigError("--hold", "must be more than 0 seconds")
        if not (self.per_column or self.multivariate):
            raise ConfigError("replay", "both detectors are off; turn at least one on")

    def timing(self, dt: float) -> tuple[float, float]:
        """(confirm_s, hold_s) for rows ``dt`` seconds apart."""
        fine = dt < 60.0
        confirm = self.confirm_s if self.confirm_s is not None else (5.0 * dt if fine else 0.0)
        hold = self.hold_s if self.hold_s is not None else (30.0 * dt if fine else 3.0 * dt)
        return confirm, max(hold, 1e-3)


def settings_from_entry(entry: Entry, base: ReplaySettings) -> ReplaySettings:
    """The settings a list entry's learned filings give: a multivariate filing's confirm and hold
    times and false-alarm budget, a baseline filing's ``z`` (lowest robust threshold) and
    ``for_seconds`` (confirm time). An entry without either is refused."""
    for f in entry.filing:
        if isinstance(f, MultivariateFiling):
            return replace(
                base,
                confirm_s=float(f.confirm_seconds),
                hold_s=float(f.hold_seconds),
                false_alarms_per_day=float(f.target_false_alarms_per_device_day),
            )
        if isinstance(f, BaselineFiling):
            return replace(base, min_z=float(f.z), confirm_s=float(f.for_seconds))
    raise ConfigError(
        "--entry",
        f"entry {entry.code} files no learned detector (baseline or multivariate); "
        "give the settings on the command line instead",
    )


@dataclass(frozen=True, slots=True)
class ReplayStats:
    columns: tuple[str, ...]
    rows: int  # rows read from the scored file
    calibration_rows: int  # of those, used for calibration
    calibration_file_rows: int
    scored_rows: int
    rows_skipped: int  # too few fields
    episodes: int
    events: dict[str, int]
    open_at_end: int
    thresholds: dict[str, float]
    held_back_days: float
    row_interval_s: float
    confirm_s: float
    hold_s: float
    seasonal: bool
    scored_from: float | None
    scored_to: float | None
    warnings: tuple[str, ...]
    seconds: float

    @property
    def alarms(self) -> int:
        return self.episodes


class ReplayInterrupted(KeyboardInterrupt):
    """Replay stopped while scoring (Ctrl-C, or a signal the caller turned into
    :class:`KeyboardInterrupt`). ``out`` holds the header and the ``episodes`` that closed before
    it, as whole rows; episodes still open were not written. ``scored_to``: the time of the last
    row scored (None if none was)."""

    def __init__(self, out: Path, episodes: int, scored_rows: int, scored_to: float | None) -> None:
        super().__init__(
            f"interrupted after {scored_rows} scored rows; {episodes} episodes in {out}"
        )
        self.out = out
        self.episodes = episodes
        self.scored_rows = scored_rows
        self.scored_to = scored_to


def replay(  # noqa: PLR0915 (calibrate, then stream: read top to bottom)
    src: Path,
    out: Path,
    *,
    time_column: str = "time",
    columns: Sequence[str] | None = None,
    sep: str = ",",
    time_format: str = "iso",
    tz: tzinfo = CST_TZ,
    calibrate_files: Sequence[Path] = (),
    calibrate_rows: int | None = None,
    calibrate_until: float | None = None,
    settings: ReplaySettings | None = None,
    scores: Path | None = None,
    chunk_rows: int = 100_000,
    warn: Callable[[str], None] | None = None,
) -> ReplayStats:
    """Replay ``src`` into ``out`` (see the module docstring). ``columns`` default to every numeric
    column; ``calibrate_until`` is epoch seconds; naive times in the files are in ``tz``."""
    started = time.perf_counter()
    cfg = settings or ReplaySettings()
    if calibrate_rows is not None and calibrate_until is not None:
        raise ConfigError("replay", "give at most one of --calibrate-rows and --calibrate-until")
    if calibrate_rows is not None and calibrate_rows < 0:
        raise ConfigError("--calibrate-rows", f"must be >= 0, not {calibrate_rows}")
    if not calibrate_files and calibrate_rows is None and calibrate_until is None:
        raise ConfigError(
            "replay",
            "nothing to calibrate on: give --calibrate-file (normal operation), "
            "--calibrate-until or --calibrate-rows",
        )
    cols = list(columns) if columns else numeric_columns(src, time_column, sep)
    if not cols:
        raise ConfigError(str(src), "no numeric columns to replay; name them with --columns")
    warnings: list[str] = []

    def note(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    def chunks(path: Path) -> Iterator[tuple[FloatArray, FloatArray, int]]:
        return read_chunks(path, time_column, cols, sep, time_format, tz, chunk_rows)

    # Calibration segments, one per file, then the start of the scored file.
    segments: list[tuple[FloatArray, FloatArray]] = []
    file_rows = 0
    for path in calibrate_files:
        parts = [(t, x) for t, x, _ in chunks(path)]
        if parts:
            seg = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            segments.append(seg)
            file_rows += len(seg[0])
    reader = chunks(src)
    rows = cal_rows = skipped = 0
    pending: list[tuple[FloatArray, FloatArray]] = []  # scored rows read while calibrating
    own_t: list[FloatArray] = []
    own_x: list[FloatArray] = []
    if calibrate_rows is not None or calibrate_until is not None:
        for ts, x, bad in reader:
            skipped += bad
            if calibrate_until is not None:
                beyond = np.flatnonzero(ts > calibrate_until)
                split = int(beyond[0]) if beyond.size else len(ts)
            else:
                split = min(len(ts), max(0, (calibrate_rows or 0) - rows))
            rows += len(ts)
            cal_rows += split
            own_t.append(ts[:split])
            own_x.append(x[:split])
            if split < len(ts):
                pending.append((ts[split:], x[split:]))
                break
        if own_t and sum(len(t) for t in own_t):
            segments.append((np.concatenate(own_t), np.concatenate(own_x)))
    cal_t, cal_x = _joined(segments, len(cols))
    if len(cal_t) < 30:
        raise ConfigError(
            "replay",
            f"{len(cal_t)} calibration rows are too few; give at least 30 rows of normal operation "
            "(a longer --calibrate-until, or --calibrate-file)",
        )
    if len(cal_t) < SHORT_CALIBRATION_ROWS:
        note(
            f"calibration holds only {len(cal_t)} rows; thresholds set on "
            f"{int(len(cal_t) * cfg.held_back)} held-back rows may let false alarms through. "
            f"Give at least {SHORT_CALIBRATION_ROWS} rows of normal operation."
        )
    k = int(len(cal_t) * (1.0 - cfg.held_back))
    dt = float(np.median(np.diff(cal_t))) if len(cal_t) > 1 else 1.0
    dt = dt if dt > 0 else 1.0
    confirm_s, hold_s = cfg.timing(dt)
    robust = RobustDetector(cols, cfg.robust)
    try:
        robust.fit(cal_t[:k], cal_x[:k])
    except ValueError as e:
        raise ConfigError("replay", f"cannot calibrate: {e}") from e
    relation: RelationDetector | None = None
    if cfg.multivariate and len(cols) >= 2:
        relation = RelationDetector(robust)
        try:
            relation.fit(cal_t[:k], cal_x[:k])
        except ValueError as e:
            raise ConfigError("replay", f"cannot train the multivariate model: {e}") from e
    hb_t, hb_x = cal_t[k:], cal_x[k:]
    hb_r, hb_z = robust.score(hb_t, hb_x)
    budget = cfg.false_alarms_per_day / (2 if relation is not None and cfg.per_column else 1)

    def calibrated(scores: FloatArray, floor: float) -> Calibrated:
        return calibrate_threshold(
            hb_t,
            scores,
            rate_per_day=budget,
            confirm_s=confirm_s,
            hold_s=hold_s,
            max_gap_s=cfg.max_gap_s,
            margin=cfg.margin,
            floor=floor,
        )

    cal_r = calibrated(hb_r, cfg.min_z)
    thresholds: dict[str, float] = {}
    trackers: dict[str, EpisodeTracker] = {}
    if cfg.per_column:
        thresholds["robust_deviation"] = cal_r.threshold
        trackers["robust_deviation"] = _tracker(cal_r.threshold, confirm_s, hold_s, cfg, cols)
    robust.arm(cal_r.threshold)
    if relation is not None:
        assert relation.model is not None
        hb_m, _ = relation.score(hb_z, hb_x)
        cal_m = calibrated(hb_m, relation.model.threshold)
        thresholds["multivariate_anomaly"] = cal_m.threshold
        trackers["multivariate_anomaly"] = _tracker(cal_m.threshold, confirm_s, hold_s, cfg, cols)
    if calibrate_rows is None and calibrate_until is None:
        robust.restart()  # the scored file is a run of its own

    counts: Counter[str] = Counter()
    open_at_end = scored = 0
    first: float | None = None
    last: float | None = None
    try:
        with out.open("w", newline="") as fo, _MaybeOpen(scores) as fs:
            writer = csv.writer(fo)
            writer.writerow(EPISODE_FIELDS)
            fo.flush()
            swriter = csv.writer(fs) if fs is not None else None
            if swriter is not None:
                swriter.writerow(["time", *thresholds])

            def emit(found: list[tuple[str, Episode]]) -> None:
                nonlocal open_at_end
                for event, e in sorted(found, key=lambda p: p[1].start):
                    writer.writerow(_episode_row(event, e, tz))
                    counts[event] += 1
                    open_at_end += e.open_at_end
                if found:
                    fo.flush()

            def score(ts: FloatArray, x: FloatArray) -> None:
                nonlocal scored, first, last
                if not len(ts):
                    return
                r, z = robust.score(ts, x)
                streams: dict[str, tuple[FloatArray, FloatArray]] = {"robust_deviation": (r, z)}
                if relation is not None:
                    streams["multivariate_anomaly"] = relation.score(z, x)
                found: list[tuple[str, Episode]] = []
                for event, tr in trackers.items():
                    s, c = streams[event]
                    found += [(event, e) for e in tr.update(ts, s, c) if e.end is not None]
                emit(found)
                scored += len(ts)  # counted once judged: what an interruption reports
                first = float(ts[0]) if first is None else first
                last = float(ts[-1])
                if swriter is not None:
                    cells = [[_iso(t, tz) for t in ts.tolist()]]
                    for event, thr in thresholds.items():
                        cells.append([f"{v / thr:.4g}" for v in streams[event][0].tolist()])
                    swriter.writerows(zip(*cells, strict=True))

            for ts, x in pending:
                score(ts, x)
            for ts, x, bad in reader:
                rows += len(ts)
                skipped += bad
                score(ts, x)
            if scored == 0:
                raise ConfigError(
                    str(src),
                    f"nothing is left to score: all {rows} rows went to calibration; calibrate on "
                    "fewer rows (an earlier --calibrate-until) or on a separate --calibrate-file",
                )
            ends = [(ev, tr.finish(last or 0.0)) for ev, tr in trackers.items()]
            emit([(ev, e) for ev, e in ends if e is not None])
    except KeyboardInterrupt as e:  # Ctrl-C, or a signal the caller turned into one
        raise ReplayInterrupted(out, _episodes_in(out), scored, last) from e
    return ReplayStats(
        columns=tuple(cols),
        rows=rows,
        calibration_rows=cal_rows,
        calibration_file_rows=file_rows,
        scored_rows=scored,
        rows_skipped=skipped,
        episodes=sum(counts.values()),
        events=dict(counts),
        open_at_end=open_at_end,
        thresholds=thresholds,
        held_back_days=cal_r.held_back_days,
        row_interval_s=dt,
        confirm_s=confirm_s,
        hold_s=hold_s,
        seasonal=robust.seasonal,
        scored_from=first,
        scored_to=last,
        warnings=tuple(warnings),
        seconds=time.perf_counter() - started,
    )


def _tracker(
    threshold: float, confirm_s: float, hold_s: float, cfg: ReplaySettings, cols: Sequence[str]
) -> EpisodeTracker:
    return EpisodeTracker(
        threshold, confirm_s=confirm_s, hold_s=hold_s, max_gap_s=cfg.max_gap_s, columns=cols
    )


def _episodes_in(out: Path) -> int:
    """The episode rows in ``out`` (whole rows: each was written in one piece)."""
    try:
        with out.open(newline="") as f:
            return max(sum(1 for _ in csv.reader(f)) - 1, 0)
    except OSError:
        return 0


def _joined(segments: list[tuple[FloatArray, FloatArray]], d: int) -> tuple[FloatArray, FloatArray]:
    """Calibration segments one after another: each (sorted by time) is moved in time to follow
    the previous one a row interval later, so separate runs never interleave."""
    ts: list[FloatArray] = []
    xs: list[FloatArray] = []
    end: float | None = None
    for seg_t, seg_x in segments:
        ok = np.isfinite(seg_t)
        order = np.argsort(seg_t[ok], kind="stable")
        t, x = seg_t[ok][order], seg_x[ok][order]
        if not len(t):
            continue
        step = float(np.median(np.diff(t))) if len(t) > 1 else 1.0
        if end is not None and t[0] <= end:
            t = t + (end + step - t[0])
        ts.append(t)
        xs.append(x)
        end = float(t[-1])
    if not ts:
        return np.empty(0), np.empty((0, d))
    return np.concatenate(ts), np.concatenate(xs)


def _iso(t: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat(timespec="milliseconds")


def _episode_row(event: str, e: Episode, tz: tzinfo) -> list[str]:
    top = max((abs(v) for _, v in e.contributions), default=0.0)
    named = [c for c, v in e.contributions if top and abs(v) >= 0.5 * top]
    lead = e.contributions[0][1] if e.contributions else 0.0
    direction = "up" if lead > 0 else "down" if lead < 0 else ""
    return [
        _iso(e.start, tz),
        _iso(e.end if e.end is not None else e.start, tz),
        event,
        "|".join(named),
        f"{e.peak:.3g}",
        direction,
        "|".join(f"{c}:{v:+.3g}" for c, v in e.contributions),
        "true" if e.open_at_end else "false",
    ]


class _MaybeOpen:
    """``open(path, 'w')`` or nothing, as a context manager."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.f: TextIO | None = None

    def __enter__(self) -> TextIO | None:
        if self.path is not None:
            self.f = self.path.open("w", newline="")
        return self.f

    def __exit__(self, *exc: object) -> None:
        if self.f is not None:
            self.f.close()
