"""``shouwang evaluate`` as a firm runs it: its own exports on disk, scored in a process of its own
with no database or broker to reach."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shouwang.launch import command
from simulators.recordings import loop_run
from simulators.recordings import write as write_recording
from tests.analytics.test_replay_cli import exported

DAY = 86_400.0


def run(tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    # Settings that point nowhere: the command must not need them.
    env = os.environ | {
        "SHOUWANG_STATE_DIR": str(tmp_path / "state"),
        "SHOUWANG_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "SHOUWANG_MQTT_PORT": "1",
        "COLUMNS": "200",
    }
    return subprocess.run(
        [*command(), "evaluate", *map(str, args)],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
    )


def scorecard(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    card: dict[str, Any] = json.loads(done.stdout)
    return card


def write(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def firm(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A day of data every 10 minutes in the firm's own time format, its alarm export (a time and
    a message, no end) and its incident records (ISO 8601, local time, with names)."""
    rows = ["time;pressure"] + [
        f"2026/03/01 {m // 60:02d}:{m % 60:02d};0.3" for m in range(0, 1440, 10)
    ]
    data = write(tmp_path / "data.csv", *rows)
    alarms = write(
        tmp_path / "alarms.csv",
        "time;device;message",
        "2026/03/01 14:05;pump 1;pressure low",  # nothing wrong then: flags the 14:00 row
        "2026/03/01 08:20;pump 2;pressure low",
    )
    labels = write(
        tmp_path / "labels.csv",
        "start;end;name",
        "2026-03-01 08:00;2026-03-01 09:00;pump 2 seal leak",  # rows 08:00..09:00: 7
        "2026-03-01 20:00;2026-03-01 20:30;pressure sensor drift",  # 4 rows
    )
    return data, alarms, labels


def test_a_firms_own_export_scored_per_row(tmp_path: Path, firm: tuple[Path, Path, Path]) -> None:
    data, alarms, labels = firm
    card = scorecard(
        run(
            tmp_path,
            alarms,
            labels,
            "--rows",
            data,
            "--sep",
            ";",
            "--time-format",
            "%Y/%m/%d %H:%M",
            "--early",
            "10m",
            "--deadline",
            "1h",
            "--json",
        )
    )
    assert card["span"]["start"] == "2026-03-01T00:00:00+08:00"
    assert card["span"]["end"] == "2026-03-01T23:50:00+08:00"
    assert (card["early_s"], card["deadline_s"]) == (600.0, 3600.0)
    assert (card["faults"], card["found"], card["recall"]) == (2, 1, 0.5)
    assert card["delays_s"] == [1200.0] and card["median_delay_s"] == 1200.0
    assert card["missed"] == [
        {
            "start": "2026-03-01T20:00:00+08:00",
            "end": "2026-03-01T20:30:00+08:00",
            "name": "pressure sensor drift",
        }
    ]
    assert (card["alarms"], card["false_alarms"]) == (2, 1)
    normal_days = (DAY - 600 - 3600 - 1800) / DAY
    assert card["normal_days"] == pytest.approx(normal_days)
    assert card["false_alarms_per_day"] == pytest.approx(1 / normal_days)
    # 144 rows: 11 in faults; the alarms flag 08:20 (faulty) and 14:00 (normal)
    assert card["pointwise"] == "rows"
    assert [card[k] for k in ("tp", "fp", "fn", "tn")] == [1, 1, 10, 132]
    assert card["point_precision"] == 0.5
    assert card["point_recall"] == pytest.approx(1 / 11)
    assert card["point_f1"] == pytest.approx(2 / 13)
    assert card["s_ttd"] == pytest.approx(1 - (1200 / 3600 + 1) / 2)
    assert card["s_cm"] == pytest.approx((1 / 11 + 132 / 133) / 2)


def test_naive_times_are_read_in_the_zone_given(tmp_path: Path) -> None:
    """Episodes as ``shouwang replay`` writes them (offset +08:00) against naive labels."""
    episodes = write(
        tmp_path / "episodes.csv",
        "start,end,event,columns,peak,direction,contributions,open_at_end",
        "2026-03-01T08:20:00+08:00,2026-03-01T08:40:00+08:00,multivariate_anomaly,a|b,3.1,up,"
        "a:+3.1|b:-1.2,false",
    )
    labels = write(tmp_path / "labels.csv", "start,end", "2026-03-01 08:00,2026-03-01 09:00")
    span = ("--from", "2026-03-01 00:00", "--until", "2026-03-02 00:00")
    shanghai = scorecard(run(tmp_path, episodes, labels, *span, "--json"))
    assert shanghai["found"] == 1 and shanghai["delays_s"] == [1200.0]
    assert shanghai["pointwise"] == "time" and shanghai["tp"] == 1200.0
    utc = scorecard(run(tmp_path, episodes, labels, *span, "--tz", "UTC", "--json"))
    # the label is now 08:00-09:00 UTC, 16:00-17:00 in Shanghai: the alarm is eight hours early
    assert utc["found"] == 0 and utc["false_alarms"] == 1
    assert utc["span"]["start"] == "2026-03-01T00:00:00+00:00"


def test_epoch_times_and_the_readable_table(tmp_path: Path) -> None:
    t0 = 1_772_323_200
    alarms = write(tmp_path / "a.csv", "start,end", f"{t0 + 100},{t0 + 400}")
    labels = write(tmp_path / "l.csv", "start,end", f"{t0},{t0 + 1000}")
    done = run(tmp_path, alarms, labels, "--time-format", "epoch")
    assert done.returncode == 0, done.stderr
    assert "the span is taken from the labels and alarms" in done.stderr
    lines = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if "│" in line}
    assert "1 of 1" in lines["faults found"] and "100.0%" in lines["faults found"]
    assert "1m 40s" in lines["detection delay"]
    assert "0.300" in lines["point-wise recall"] and "time-weighted" in lines["point-wise recall"]
    assert "1.000" in lines["point-wise precision"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tz", "Mars/Base"), "--tz: 'Mars/Base' is not a known IANA time zone"),
        (("--early", "5 minutes"), "--early: cannot read '5 minutes' as a duration"),
        (
            ("--from", "2026-03-02", "--until", "2026-03-01"),
            "--from/--until: the span ends before it starts",
        ),
        (("--from", "soon"), "--from: cannot read the time 'soon' as ISO 8601"),
        (("--sep", ";;"), "--sep: give one character"),
        (("--rows", "{tmp}/none.csv"), "{tmp}/none.csv: cannot be read: No such file"),
    ],
)
def test_bad_options_give_one_line_and_status_2(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    alarms = write(tmp_path / "a.csv", "start", "2026-03-01 08:00")
    labels = write(tmp_path / "l.csv", "start,end", "2026-03-01 08:00,2026-03-01 09:00")
    done = run(tmp_path, alarms, labels, *(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: " + message.format(tmp=tmp_path)), done.stderr
    assert "\n" not in done.stderr.strip()


@pytest.mark.parametrize(
    ("alarms", "labels", "message"),
    [
        (("start",), ("start,end",), "evaluate: there are no alarms and no labels; give --rows"),
        (("when", "x"), ("start,end",), "{a}: no column 'start' or 'time' in the header"),
        (("start",), ("start,end", "2026-03-01,[soon]"), "{l}:2: cannot read the time '[soon]'"),
        (("start", "x"), ("start,end",), "{a}:2: cannot read the time 'x'"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_line(
    tmp_path: Path, alarms: tuple[str, ...], labels: tuple[str, ...], message: str
) -> None:
    a, lb = write(tmp_path / "a.csv", *alarms), write(tmp_path / "l.csv", *labels)
    done = run(tmp_path, a, lb)
    expected = "error: " + message.format(a=a, l=lb)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(expected), done.stderr
    assert "\n" not in done.stderr.strip()


def test_replay_then_evaluate_on_a_firms_export(tmp_path: Path) -> None:
    """The two commands one after the other, as docs/analytics.md shows them: replay a firm's
    export (';', day-first local times), then score replay's episodes (written with ',') against
    the firm's incident records with the export's own --sep and --time-format."""
    rec = loop_run(3)
    write_recording(rec, tmp_path / "iso.csv", tmp_path / "generated_labels.csv")
    export = exported(tmp_path / "iso.csv", tmp_path / "export.csv")
    local = "%d.%m.%Y %H:%M:%S"

    def shown(t: float) -> str:  # the export's format: local time (UTC+8), whole seconds
        return datetime.fromtimestamp(t + 8 * 3600, UTC).strftime(local)

    incidents = write(
        tmp_path / "incidents.csv",
        "start;end;name",
        *(f"{shown(lab.start)};{shown(lab.end)};{lab.kind}" for lab in rec.labels),
    )
    fmt = ("--time-column", "Zeit", "--sep", ";", "--time-format", local)
    episodes, until = tmp_path / "episodes.csv", shown(rec.calibrate_until)
    replayed = subprocess.run(
        [*command("replay"), export, "--out", episodes, *fmt, "--calibrate-until", until],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert replayed.returncode == 0, replayed.stderr
    span = ("--rows", export, *fmt, "--from", until)
    card = scorecard(run(tmp_path, episodes, incidents, *span, "--json"))

    # What must come out, from the generated data and the episodes file alone.
    labels = [(float(int(lab.start)), float(int(lab.end))) for lab in rec.labels]
    with episodes.open(newline="") as f:
        alarms = [
            (datetime.fromisoformat(e["start"]).timestamp(), datetime.fromisoformat(e["end"]))
            for e in csv.DictReader(f)
        ]
    rows = [float(int(t)) for t in rec.ts.tolist() if int(t) >= rec.calibrate_until]

    def expect(card: dict[str, Any], faults: list[tuple[float, float]]) -> list[float]:
        delays = [min(a for a, _ in alarms if s <= a <= e) - s for s, e in faults]
        false = [a for a, b in alarms if not any(a <= e and b.timestamp() >= s for s, e in faults)]
        normal = (rows[-1] - rec.calibrate_until - sum(e - s for s, e in faults)) / DAY
        assert card["span"]["start"] == "2026-12-01T08:10:00+08:00"
        assert (card["faults"], card["found"], card["missed"]) == (len(faults), len(faults), [])
        assert card["delays_s"] == pytest.approx(delays, abs=1e-3)
        assert card["median_delay_s"] == pytest.approx(float(np.median(delays)), abs=1e-3)
        assert (card["alarms"], card["false_alarms"]) == (len(alarms), len(false))
        assert card["normal_days"] == pytest.approx(normal)
        assert card["false_alarms_per_day"] == pytest.approx(len(false) / normal)
        inside = sum(any(s <= t <= e for s, e in faults) for t in rows)
        assert card["pointwise"] == "rows" and card["tp"] + card["fn"] == inside
        assert card["tp"] + card["fp"] + card["fn"] + card["tn"] == len(rows)
        return delays

    delays = expect(card, labels)
    assert all(0 <= d <= 15 for d in delays)  # a 5 s ramp and a 5 s confirm time
    assert len(alarms) >= 8  # each fault: both detectors
    assert card["false_alarms"] <= 1  # the goal: at most 1 false alarm per hour
    false = card["false_alarms"]
    # The firm never recorded the leak: the episodes that found it are now false alarms.
    unrecorded = write(
        tmp_path / "some.csv",
        *(line for line in incidents.read_text().splitlines() if not line.endswith(";leak")),
    )
    fewer = scorecard(run(tmp_path, episodes, unrecorded, *span, "--json"))
    expect(fewer, [w for w, lab in zip(labels, rec.labels, strict=True) if lab.kind != "leak"])
    assert fewer["false_alarms"] >= false + 1 and fewer["false_alarms_per_day"] > 0
    # The same, readable.
    table = run(tmp_path, episodes, incidents, *span, "--early", "0")
    assert table.returncode == 0, table.stderr
    lines = {ln.split("│")[1].strip(): ln for ln in table.stdout.splitlines() if "│" in ln}
    assert "4 of 4" in lines["faults found"] and "100.0%" in lines["faults found"]
    assert f"{false} of {len(alarms)}" in lines["false alarms"]
    assert f"{card['false_alarms_per_day']:.2f} per day" in lines["false alarms"]
    assert f"{np.median(delays):.3g}s" in lines["detection delay"]
