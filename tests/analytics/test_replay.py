"""Replay of CSVs through the detectors: calibration from files or the file's start, episodes
written as they close, settings, errors and warnings, odd files and time formats."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from analytics.exports import numeric_columns
from analytics.replay import CST_TZ, EPISODE_FIELDS, ReplaySettings, parse_times, replay
from bench.replay import COLUMNS, TIME, TIME_FORMAT, bench, synthesise, write_csv
from core.errors import ConfigError
from simulators.recordings import loop_run, write

STEP = 30.0
ROWS = int(20 * 86400 / STEP)  # 20 days; faults at days 11, 14 and 18


def read_episodes(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def at(cell: str) -> float:
    return datetime.fromisoformat(cell).timestamp()


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, float]:
    """A 1 s loop run (calibration: its first 10 minutes) and a fault-free run to calibrate on."""
    d = tmp_path_factory.mktemp("loop")
    rec = loop_run(2)
    write(rec, d / "run.csv", d / "labels.csv")
    write(loop_run(7, faults=0), d / "normal.csv", d / "none.csv")
    return d / "run.csv", d / "normal.csv", rec.calibrate_until


def test_pump_room_export_level_shift_and_flow_without_current_found_little_else(
    tmp_path: Path,
) -> None:
    src, out = tmp_path / "泵房 export.csv", tmp_path / "episodes.csv"
    ts, columns, injected = synthesise(ROWS, step=STEP, seed=4)
    write_csv(src, ts, columns)
    stats = replay(
        src,
        out,
        time_column=TIME,
        columns=COLUMNS,
        sep=";",
        time_format=TIME_FORMAT,
        calibrate_rows=int(ROWS * 0.4),
    )
    episodes = read_episodes(out)
    assert stats.rows == ROWS and stats.calibration_rows == int(ROWS * 0.4)
    assert stats.scored_rows == ROWS - int(ROWS * 0.4) and stats.seasonal
    assert stats.episodes == len(episodes) == 2, episodes
    shift, flow = (i for i in injected if i.kind != "drift")  # a 2 %/day drift is left to baselines
    for inj, e in zip((shift, flow), episodes, strict=True):
        assert inj.start - 600 <= at(e["start"]) <= inj.start + 1800
        assert at(e["end"]) <= inj.end + 1800
        assert inj.column in e["columns"].split("|")
    # Explained: pump A draws too much current for its flow; then flow without its current.
    assert episodes[0]["contributions"].startswith("PumpA_Amps:+")
    assert episodes[1]["contributions"].startswith("Flow m3/h:+")
    assert "PumpA_Amps:-" in episodes[1]["contributions"]


def test_episode_file_format(loop: tuple[Path, Path, float], tmp_path: Path) -> None:
    run, _, until = loop
    out = tmp_path / "e.csv"
    stats = replay(run, out, calibrate_until=until)
    episodes = read_episodes(out)
    assert tuple(episodes[0]) == EPISODE_FIELDS and len(episodes) == stats.episodes >= 4
    for e in episodes:
        assert at(e["start"]) <= at(e["end"]) and e["start"].endswith("+08:00")
        assert e["event"] in {"robust_deviation", "multivariate_anomaly"}
        assert e["open_at_end"] in {"true", "false"} and e["direction"] in {"up", "down"}
        assert float(e["peak"]) >= 1.0
        parts = [p.rsplit(":", 1) for p in e["contributions"].split("|")]
        assert all(c in stats.columns and v[0] in "+-" for c, v in parts)
        assert set(e["columns"].split("|")) <= {c for c, _ in parts}
    assert [at(e["start"]) for e in episodes] == sorted(at(e["start"]) for e in episodes)


def test_calibrating_on_a_separate_file_of_normal_operation(
    loop: tuple[Path, Path, float], tmp_path: Path
) -> None:
    run, normal, until = loop
    out = tmp_path / "e.csv"
    stats = replay(run, out, calibrate_files=[normal])
    assert stats.calibration_rows == 0 and stats.calibration_file_rows > 3000
    assert stats.scored_rows == stats.rows
    # The fault-free run calibrates as well as the run's own start: the same faults come out.
    own = replay(run, tmp_path / "own.csv", calibrate_until=until)
    starts = [at(e["start"]) for e in read_episodes(out) if at(e["start"]) > until]
    for e in read_episodes(tmp_path / "own.csv"):
        assert any(abs(at(e["start"]) - s) < 60 for s in starts), e
    assert own.calibration_rows > 500


def test_every_numeric_column_by_default(tmp_path: Path) -> None:
    rec = loop_run(1, duration_s=900, calibrate_s=600, faults=1)
    src = tmp_path / "d.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "site", *rec.columns, "note"])
        for i, t in enumerate(rec.ts.tolist()):
            when = datetime.fromtimestamp(t, UTC).isoformat()
            w.writerow([when, "A-3", *(f"{c[i]:.5g}" for c in rec.columns.values()), "ok"])
    assert numeric_columns(src, "time", ",") == list(rec.columns)
    stats = replay(src, tmp_path / "e.csv", calibrate_until=rec.calibrate_until)
    assert stats.columns == tuple(rec.columns)


def test_nothing_left_to_score_is_a_clear_error_and_short_calibration_a_warning(
    loop: tuple[Path, Path, float], tmp_path: Path
) -> None:
    run, _, until = loop
    with pytest.raises(ConfigError, match="nothing is left to score"):
        replay(run, tmp_path / "e.csv", calibrate_until=until + 86400)
    with pytest.raises(ConfigError, match="nothing to calibrate on"):
        replay(run, tmp_path / "e.csv")
    with pytest.raises(ConfigError, match="too few"):
        replay(run, tmp_path / "e.csv", calibrate_rows=20)
    said: list[str] = []
    stats = replay(run, tmp_path / "e.csv", calibrate_rows=200, warn=said.append)
    assert said and "only 200 rows" in said[0] and stats.warnings == tuple(said)


def test_episodes_found_before_a_bad_row_are_kept(
    loop: tuple[Path, Path, float], tmp_path: Path
) -> None:
    run, _, until = loop
    lines = run.read_text().splitlines()
    cut = len(lines) * 3 // 4
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([*lines[:cut], "yesterday,1,2,3,4,5", *lines[cut:]]) + "\n")
    out = tmp_path / "e.csv"
    with pytest.raises(ConfigError, match="yesterday"):
        replay(broken, out, calibrate_until=until, chunk_rows=500)
    kept = read_episodes(out)
    assert len(kept) >= 2  # the faults before the bad row, each written as it closed
    assert all(at(e["end"]) < at(lines[cut].split(",")[0]) for e in kept)


def test_scores_file_and_settings(loop: tuple[Path, Path, float], tmp_path: Path) -> None:
    run, _, until = loop
    scores = tmp_path / "s.csv"
    stats = replay(run, tmp_path / "e.csv", calibrate_until=until, scores=scores)
    with scores.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == stats.scored_rows
    assert set(rows[0]) == {"time", "robust_deviation", "multivariate_anomaly"}
    high = [r for r in rows if float(r["robust_deviation"]) > 1.0]
    assert high and len(high) < len(rows) / 4
    assert (stats.confirm_s, stats.hold_s) == pytest.approx((5.0, 30.0), rel=0.05)  # from 1 s rows
    strict = replay(
        run,
        tmp_path / "e2.csv",
        calibrate_until=until,
        settings=ReplaySettings(confirm_s=20.0, hold_s=120.0, multivariate=False, min_z=30.0),
    )
    assert (strict.confirm_s, strict.hold_s) == (20.0, 120.0)
    assert set(strict.events) <= {"robust_deviation"} and strict.episodes < stats.episodes
    assert strict.thresholds["robust_deviation"] >= 30.0
    with pytest.raises(ConfigError, match="false-alarms-per-day"):
        ReplaySettings(false_alarms_per_day=0.0)
    with pytest.raises(ConfigError, match="both detectors are off"):
        ReplaySettings(per_column=False, multivariate=False)


def test_odd_csv_epoch_ms_quoted_names_gaps_and_short_rows(tmp_path: Path) -> None:
    ts, columns, _ = synthesise(8 * 2880, step=STEP, seed=1, faults=False)
    src = tmp_path / "odd.csv"
    mid, amps = "Zone-Mid (bar)", "PumpA_Amps"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Zeit (ms)", "Druck, Mitte", "Strom A", "unused"])
        for i, t in enumerate(ts.tolist()):
            cell = "" if i % 1000 == 7 else f"{columns[mid][i]:.4f}"
            w.writerow([int(t * 1000), cell, f"{columns[amps][i]:.2f}", "x"])
            if i == 5000:
                f.write("\n12345\n")  # a blank line and a truncated one
    stats = replay(
        src,
        tmp_path / "out.csv",
        time_column="Zeit (ms)",
        time_format="epoch_ms",
        calibrate_rows=6 * 2880,
    )
    assert stats.columns == ("Druck, Mitte", "Strom A")
    assert stats.rows == 8 * 2880 and stats.rows_skipped == 1
    assert stats.episodes == 0, read_episodes(tmp_path / "out.csv")
    with pytest.raises(ConfigError, match=r"no column \['Strom B'\] in the header"):
        replay(
            src, tmp_path / "x.csv", time_column="Zeit (ms)", columns=["Strom B"], calibrate_rows=1
        )
    with pytest.raises(ConfigError, match="no time column 'time'"):
        replay(src, tmp_path / "x.csv", calibrate_rows=100)


LOCAL = datetime(2027, 2, 28, 23, 59, 58, tzinfo=CST_TZ)


@pytest.mark.parametrize(
    ("fmt", "cell", "expected"),
    [
        ("iso", "2027-02-28T23:59:58", LOCAL),
        ("iso", "2027-02-28 23:59:58", LOCAL),
        ("iso", "2027-02-28T15:59:58Z", LOCAL),
        ("iso", "2027-02-28T23:59:58.250+08:00", LOCAL + timedelta(milliseconds=250)),
        ("%d.%m.%Y %H:%M:%S", "28.02.2027 23:59:58", LOCAL),
        ("%Y/%m/%d %H:%M", "2027/02/28 23:59", LOCAL - timedelta(seconds=58)),
        ("%d-%b-%Y %H:%M:%S", "28-Feb-2027 23:59:58", LOCAL),
        ("epoch_s", str(LOCAL.timestamp()), LOCAL),
        ("epoch_ms", str(int(LOCAL.timestamp() * 1000)), LOCAL),
    ],
)
def test_time_formats(fmt: str, cell: str, expected: datetime) -> None:
    got = parse_times([cell, cell], fmt, CST_TZ)
    assert got.tolist() == [expected.timestamp()] * 2


def test_fast_time_parsing_agrees_with_strptime_and_rejects_bad_dates() -> None:
    rng = np.random.default_rng(0)
    when = [
        datetime(1999, 1, 1, tzinfo=UTC) + timedelta(seconds=int(s))
        for s in rng.integers(0, 2_000_000_000, 500)
    ]
    cells = [w.strftime("%d/%m/%Y %H.%M.%S") for w in when]
    got = parse_times(cells, "%d/%m/%Y %H.%M.%S", UTC)
    assert got.tolist() == [w.timestamp() for w in when]
    with pytest.raises(ConfigError, match="cannot read the time"):
        parse_times(["31.02.2027 00:00:00"], "%d.%m.%Y %H:%M:%S", CST_TZ, "x.csv:2-2")
    with pytest.raises(ConfigError, match=r"x\.csv:2-2"):
        parse_times(["yesterday"], "iso", CST_TZ, "x.csv:2-2")


def test_replay_benchmark_reports_its_figures() -> None:
    # The speed target is checked by 'shouwang bench replay' (docs/benchmarks.md), not here:
    # a shared machine makes timed assertions flaky. This checks the command's workings.
    figures = bench(20_000)
    assert figures["rows"] == 20_000
    assert figures["s_per_million_rows"] > 0
