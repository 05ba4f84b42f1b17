"""``shouwang replay`` on a CSV it was not developed on: columns named on the command line."""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

from bench.replay import (
    BASELINE_COLUMNS,
    COLUMNS,
    TIME,
    TIME_FORMAT,
    synthesise,
    write_csv,
)
from shouwang.launch import command


def test_replay_command_writes_the_alarms_it_would_have_raised(tmp_path: Path) -> None:
    src, out = tmp_path / "export.csv", tmp_path / "alarms.csv"
    ts, columns, injected = synthesise(40 * 8640 // 6, step=60.0)
    write_csv(src, ts, columns)
    done = subprocess.run(
        [
            *command(),
            "replay",
            str(src),
            "--out",
            str(out),
            "--time-column",
            TIME,
            "--columns",
            ",".join(COLUMNS),
            "--sep",
            ";",
            "--time-format",
            TIME_FORMAT,
            "--calibrate-rows",
            str(20 * 1440),
            "--baseline-columns",
            ",".join(BASELINE_COLUMNS),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert rows, "the injected faults raise alarms"
    assert set(rows[0]) >= {"time", "columns", "event", "score"}
    found = {r["event"] for r in rows}
    assert "multivariate_anomaly" in found
    assert any(i.column in r["columns"] for i in injected for r in rows)
