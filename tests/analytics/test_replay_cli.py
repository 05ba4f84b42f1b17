"""``shouwang replay`` on files it was not developed on: the file's own time format and zone,
separate calibration files, settings from the command line and from a list entry, a readable
summary, and errors that say what to do."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from analytics.replay import EPISODE_FIELDS, replay
from shouwang.launch import command
from simulators.recordings import Recording, loop_run, write

WIDE = os.environ | {"COLUMNS": "200"}  # the summary's table unwrapped


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command("replay"), *args],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=WIDE,
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


def test_nothing_left_to_score_is_an_error_saying_what_to_do(
    files: tuple[Path, Path, datetime], tmp_path: Path
) -> None:
    src, _, _ = files
    with src.open() as f:
        rows = sum(1 for _ in f) - 1
    common = ["--time-column", "Zeit", "--sep", ";", "--time-format", "%d.%m.%Y %H:%M:%S"]
    for calibrate in (
        ["--calibrate-until", "02.12.2026 00:00:00"],  # after the file's last row, its format
        ["--calibrate-rows", str(rows + 10)],
    ):
        out = tmp_path / "e.csv"
        done = run(str(src), "--out", str(out), *common, *calibrate)
        text = " ".join(done.stderr.split())
        assert done.returncode == 2, done.stderr + done.stdout
        assert f"nothing is left to score: all {rows} rows went to calibration" in text
        assert "an earlier --calibrate-until" in text and "--calibrate-file" in text
        assert done.stdout == ""  # no summary of a run that judged nothing
        assert out.read_text().splitlines() == [",".join(EPISODE_FIELDS)]  # no episode claimed


def test_every_numeric_column_by_default(tmp_path: Path) -> None:
    """A text column, an empty one and one with a few bad cells among the numbers: the default
    is every column that is (nearly) all numbers, the same as naming them with --columns."""
    rec = loop_run(3)
    write(rec, tmp_path / "iso.csv", tmp_path / "labels.csv")
    src = tmp_path / "mixed.csv"
    with (tmp_path / "iso.csv").open() as fi, src.open("w", newline="") as fo:
        reader, w = csv.reader(fi), csv.writer(fo)
        head = next(reader)
        w.writerow([head[0], "status", *head[1:3], "note", *head[3:]])
        for i, row in enumerate(reader):
            flow = "n/a" if i % 50 == 7 else row[2]  # 2 % bad cells: still a numeric column
            w.writerow([row[0], "RUN" if i % 3 else "run", row[1], flow, "", *row[3:]])
    numeric = list(rec.columns)
    until = datetime.fromtimestamp(rec.calibrate_until, UTC).isoformat()
    done = run(str(src), "--out", str(tmp_path / "e.csv"), "--calibrate-until", until)
    assert done.returncode == 0, done.stderr + done.stdout
    shown = next(line for line in done.stdout.splitlines() if "columns" in line)
    assert shown.split("│")[2].strip() == ", ".join(numeric)
    named = run(
        str(src),
        "--out",
        str(tmp_path / "named.csv"),
        "--calibrate-until",
        until,
        "--columns",
        ",".join(numeric),
    )
    assert named.returncode == 0, named.stderr
    episodes = (tmp_path / "e.csv").read_text()
    assert episodes == (tmp_path / "named.csv").read_text()
    with (tmp_path / "e.csv").open() as f:
        found = list(csv.DictReader(f))
    assert len(found) >= 4
    assert {c.split(":")[0] for e in found for c in e["contributions"].split("|")} == set(numeric)
    # Nothing numeric: an error naming the option that picks columns.
    text_only = tmp_path / "text.csv"
    text_only.write_text(
        "time,status,note\n" + "".join(f"2026-12-01T08:{m:02d}:00,RUN,ok\n" for m in range(60))
    )
    none = run(str(text_only), "--out", str(tmp_path / "x.csv"), "--calibrate-rows", "30")
    assert none.returncode == 2 and none.stdout == ""
    assert "no numeric columns to replay; name them with --columns" in " ".join(none.stderr.split())


# --- interrupted runs ---------------------------------------------------------------------------

# Four chunks of the reader (100 000 rows): episodes are written per chunk, and a signal is only
# handled between chunks, so one sent once the first chunk's are out lands at the end of the
# second at the latest, with two chunks left to prove it cut the run short (with two chunks, a
# loaded machine let the run reach its end first).
LONG_S = 380_000.0
EPOCH = ("--time-format", "epoch_s", "--calibrate-rows", "600")


def epoch_export(rec: Recording, dest: Path) -> Path:
    """``rec`` as a logger exports it: epoch seconds, comma-separated (fast to write)."""
    names = list(rec.columns)
    table = np.column_stack([rec.ts, *(rec.columns[c] for c in names)])
    fmt = ["%.3f"] + ["%.6g"] * len(names)
    np.savetxt(dest, table, fmt=fmt, delimiter=",", header=",".join(["time", *names]), comments="")
    return dest


# Runs the command as from a terminal, with Ctrl-C's default: a suite started in the background
# by a shell (as CI may start it) has SIGINT ignored, which a child inherits and Python keeps.
WITH_SIGINT = (
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL);"
    " os.execvp(sys.argv[1], sys.argv[1:])",
)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[str]]]:
    """Four and a half days of the loop at 1 s with 50 faults, and the episodes an uninterrupted
    replay writes for it (header first)."""
    d = tmp_path_factory.mktemp("long")
    src = epoch_export(loop_run(5, duration_s=LONG_S, faults=50), d / "long.csv")
    replay(src, d / "all.csv", time_format="epoch_s", calibrate_rows=600)
    with (d / "all.csv").open(newline="") as f:
        return src, list(csv.reader(f))


@pytest.mark.parametrize(
    "sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: str(s.name)
)
def test_an_interrupted_run_keeps_the_episodes_closed_before(
    long_run: tuple[Path, list[list[str]]], tmp_path: Path, sig: signal.Signals
) -> None:
    src, everything = long_run
    assert len(everything) > 30 and everything[0] == list(EPISODE_FIELDS)
    out = tmp_path / "e.csv"
    proc = subprocess.Popen(
        [*WITH_SIGINT, *command("replay"), str(src), "--out", str(out), *EPOCH],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=WIDE,
    )
    try:
        deadline = time.monotonic() + 60
        seen = 0
        while seen < 1:  # the first chunk's episodes are out: the run is in the second
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no episode written in 60 s"
            time.sleep(0.02)
            seen = out.read_text().count("\n") - 1 if out.exists() else 0  # -1: no header yet
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    text = out.read_text()
    assert text.endswith("\n")  # no half-written line
    with out.open(newline="") as f:
        kept = list(csv.reader(f))
    assert all(len(row) == len(EPISODE_FIELDS) for row in kept)
    n = len(kept) - 1
    # exactly the episodes the whole run wrote first, in order: none still open written as closed
    assert kept == everything[: n + 1]
    assert seen <= n < len(everything) - 1
    assert all(row[-1] == "false" for row in kept[1:])
    assert stdout == ""  # no summary of a run that did not finish
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        return
    message = " ".join(stderr.split())
    assert proc.returncode == 128 + sig, stderr
    assert f"interrupted by {sig.name} after" in message
    assert f"{out} holds the {n} episodes that closed before" in message
    assert "episodes still open were not written. Run again to score the whole file." in message
