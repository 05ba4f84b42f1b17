"""The command line: ``shouwang storage``: what readings take on disk, in bytes per reading, by
table and day (ingest/footprint.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Column, Table

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer()

TABLES = ("readings", "readings_archive", "readings_1m")


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{size:,.0f} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"


@app.command("storage")
def storage(
    days: Annotated[
        bool, typer.Option("--days/--totals", help="a line per day, or one per table")
    ] = True,
) -> None:
    """Bytes on disk (table, TOAST and indexes) per reading, by table and by the day's age:
    recent readings, archived readings and the per-minute rollup (per reading it summarises)."""
    from core.db import connect
    from ingest.footprint import measure, total

    with connect(load_settings().database_url, autocommit=True) as conn:
        measured = measure(conn)
    today = datetime.now(UTC).date()
    # Never folded or cut: the figures are read by scripts and pasted into reports, so a narrow
    # console (a pipe counts as 80 columns) gets the whole table rather than "reading…".
    t = Table(
        *(
            Column(name, no_wrap=True, min_width=len(name))
            for name in ("table", "day", "age (days)", "rows", "readings", "bytes", "bytes/reading")
        )
    )
    for name in TABLES:
        lines = [d for d in measured if d.table == name] if days else []
        for d in lines:
            per = d.per_reading
            t.add_row(
                name,
                d.day.date().isoformat(),
                str((today - d.day.astimezone(UTC).date()).days),
                f"{d.rows:,}",
                f"{d.readings:,}",
                _bytes(d.bytes),
                "–" if per is None else f"{per:.2f}",
            )
        whole = total(measured, name)
        if whole is not None:
            per = whole.per_reading
            t.add_row(
                f"[bold]{name}[/bold]",
                "all",
                "",
                f"{whole.rows:,}",
                f"{whole.readings:,}",
                _bytes(whole.bytes),
                "–" if per is None else f"[bold]{per:.2f}[/bold]",
                end_section=True,
            )
    need = Measurement.get(console, console.options.update_width(1000), t).maximum
    wide = Console(
        file=console.file, width=max(console.width, need), force_terminal=console.is_terminal
    )
    wide.print(t)
