"""``shouwang replay`` on files it was not developed on: the file's own time format and zone,
separate calibration files, settings from the command line and from a list entry, a readable
summary, and errors that say what to do."""

from __future__ import annotations

import csv
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shouwang.launch import command
from simulators.recordings import loop_run, write


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command("replay"), *args], capture_output=True, check=False, text=True, timeout=120
    )


def exported(iso: Path, dest: Path) -> Path:
    """``iso`` (a generated recording) as a firm exports it: ';', day-first local times (UTC+8)."""
    with iso.open() as fi, dest.open("w", newline="") as fo:
        reader, w = csv.reader(fi), csv.writer(fo, delimiter=";")
        w.writerow(["Zeit", *next(reader)[1:]])
        for row in reader:
            local = datetime.fromisoformat(row[0]).timestamp() + 8 * 3600
            when = datetime.fromtimestamp(local, UTC).strftime("%d.%m.%Y %H:%M:%S")
            w.writerow([when, *row[1:]])
    return dest


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, datetime]:
    """A loop run and a fault-free run, both as exported."""
    d = tmp_path_factory.mktemp("cli")
    rec = loop_run(3)
    write(rec, d / "iso.csv", d / "labels.csv")
    write(loop_run(8, faults=0), d / "normal_iso.csv", d / "none.csv")
    until = datetime.fromtimestamp(rec.calibrate_until, UTC)
    return (
        exported(d / "iso.csv", d / "export.csv"),
        exported(d / "normal_iso.csv", d / "normal.csv"),
        until,
    )


def test_own_time_format_zone_scores_and_settings(
    files: tuple[Path, Path, datetime], tmp_path: Path
) -> None:
    src, _, until = files
    out, scores = tmp_path / "e.csv", tmp_path / "s.csv"
    local_until = datetime.fromtimestamp(until.timestamp() + 8 * 3600, UTC)
    common = ["--time-column", "Zeit", "--sep", ";", "--time-format", "%d.%m.%Y %H:%M:%S"]
    done = run(
        str(src),
        "--out",
        str(out),
        *common,
        "--calibrate-until",
        local_until.strftime("%d.%m.%Y %H:%M:%S"),  # the file's own format, local time
        "--scores",
        str(scores),
        "--confirm",
        "10s",
        "--hold",
        "2m",
        "--false-alarms-per-day",
        "0.5",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    text = " ".join(done.stdout.split())
    assert "confirm 10 s, hold 2 min" in text and "robust_deviation" in text
    assert "ReplayStats(" not in text and "episodes written to" not in text
    with out.open() as f:
        episodes = list(csv.DictReader(f))
    assert len(episodes) >= 4 and all(e["start"].endswith("+08:00") for e in episodes)
    assert scores.read_text().startswith("time,robust_deviation,multivariate_anomaly")
    # The same instant in ISO with its offset, in another zone: the same calibration.
    iso = run(
        str(src),
        "--out",
        str(tmp_path / "e2.csv"),
        *common,
        "--tz",
        "Asia/Shanghai",
        "--calibrate-until",
        until.isoformat(),
        "--confirm",
        "10s",
        "--hold",
        "2m",
        "--false-alarms-per-day",
        "0.5",
    )
    assert iso.returncode == 0, iso.stderr
    assert (tmp_path / "e2.csv").read_text() == out.read_text()
    # Read as UTC, the file's local times fall 8 h late: the instant given is before its start.
    wrong = run(
        str(src),
        "--out",
        str(tmp_path / "e3.csv"),
        *common,
        "--tz",
        "UTC",
        "--calibrate-until",
        until.isoformat(),
    )
    assert wrong.returncode == 2 and "0 calibration rows" in " ".join(wrong.stderr.split())


def test_calibration_file_and_settings_from_a_list_entry(
    files: tuple[Path, Path, datetime], tmp_path: Path
) -> None:
    src, normal, _ = files
    common = ["--time-column", "Zeit", "--sep", ";", "--time-format", "%d.%m.%Y %H:%M:%S"]
    done = run(
        str(src),
        "--out",
        str(tmp_path / "e.csv"),
        *common,
        "--calibrate-file",
        str(normal),
        "--entry",
        "PR.ANOMALY",
    )
    assert done.returncode == 0, done.stderr + done.stdout
    text = " ".join(done.stdout.split())
    assert "confirm 2 min, hold 15 min" in text  # the entry's multivariate filing
    assert "rows of calibration files" in text
    bad = run(str(src), "--out", str(tmp_path / "x.csv"), *common, "--entry", "EL.TRAPPED")
    assert bad.returncode == 2
    assert "files no learned detector" in " ".join(bad.stderr.split())
    none = run(str(src), "--out", str(tmp_path / "x.csv"), *common)
    assert none.returncode == 2 and "--calibrate-file" in none.stderr
