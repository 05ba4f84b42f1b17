"""The command line: the readable summary ``shouwang replay`` prints when it is done."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path

from rich.console import Console
from rich.table import Table

from analytics.replay import ReplayStats


def _when(t: float | None, tz: tzinfo) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, tz).isoformat(timespec="seconds")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def print_summary(console: Console, stats: ReplayStats, out: Path, tz: tzinfo) -> None:
    table = Table(title="replay", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("columns", ", ".join(stats.columns))
    cal = f"{stats.calibration_rows:,} rows of the file"
    if stats.calibration_file_rows:
        cal += f" + {stats.calibration_file_rows:,} rows of calibration files"
    table.add_row("calibration", cal + f" (thresholds on {_span(stats.held_back_days * 86400)})")
    table.add_row(
        "scored",
        f"{stats.scored_rows:,} rows, {_when(stats.scored_from, tz)} to {_when(stats.scored_to, tz)}",
    )
    if stats.rows_skipped:
        table.add_row("skipped", f"{stats.rows_skipped:,} rows with too few fields")
    table.add_row(
        "rows every",
        f"{_span(stats.row_interval_s)}; confirm {_span(stats.confirm_s)}, "
        f"hold {_span(stats.hold_s)}; daily profile {'on' if stats.seasonal else 'off'}",
    )
    for event, thr in stats.thresholds.items():
        table.add_row(event, f"{stats.events.get(event, 0)} episodes (threshold {thr:.3g})")
    opened = f", {stats.open_at_end} still open at the end" if stats.open_at_end else ""
    table.add_row("episodes", f"{stats.episodes} written to {out}{opened}")
    table.add_row("took", f"{stats.seconds:.1f} s")
    console.print(table)
    for w in stats.warnings:
        console.print(f"[yellow]warning:[/] {w}")
