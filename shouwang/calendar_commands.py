"""The command line: ``shouwang calendar``: working days, from the State Council's yearly holiday
schedules (check a file, load it, see where each year's working days come from)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(
    no_args_is_help=True, help="Working days: the State Council's yearly holiday schedules."
)

Schedule = Annotated[Path, typer.Argument(help="a year's schedule (YAML)")]


@app.command("check")
def calendar_check(file: Schedule) -> None:
    """Check a holiday schedule file; every problem is printed with its line. Nothing is stored."""
    from core.holiday_schedule import read_schedule

    _, schedule = read_schedule(file)
    console.print(
        f"{file}: {schedule.year} schedule is valid: {len(schedule.days_off)} day(s) off in"
        f" {len(schedule.holidays)} holiday(s), {len(schedule.workdays)} working weekend day(s);"
        f" source: {schedule.notice.title}"
    )


@app.command("load")
def calendar_load(
    file: Schedule,
    by: Annotated[str, typer.Option(help="who loads it, for the record")] = "county operator",
) -> None:
    """Load a year's holiday schedule (checked first); a changed schedule becomes a new version.
    Analytics takes it within 30 s, for work orders filed from then on."""
    from core.audit import cli_actor
    from core.db import connect
    from core.holiday_schedule import read_schedule
    from core.holiday_store import store

    text, schedule = read_schedule(file)
    with connect(load_settings().database_url, actor=cli_actor()) as conn:
        stored = store(conn, schedule, text, file.name, by)
    if stored.created:
        console.print(f"{stored.year} holiday schedule loaded as version {stored.version}")
    else:
        console.print(
            f"{stored.year} holiday schedule unchanged: version {stored.version} already has"
            " this content"
        )


@app.command("status")
def calendar_status() -> None:
    """Where working days come from for last, this and next year, and what is missing."""
    from core.db import connect
    from core.holiday_store import calendar_in_force

    s = load_settings()
    with connect(s.database_url) as conn:
        cal = calendar_in_force(conn, s.work_calendar)
        versions: dict[int, int] = dict(
            conn.execute(
                "SELECT year, max(version) FROM holiday_schedules GROUP BY year"
            ).fetchall()
        )
    today = datetime.now(cal.tz).date()
    said = {
        "schedule": "loaded schedule",
        "library": "chinese-calendar package",
        "weekdays": "MONDAY TO FRIDAY (no schedule)",
        "not used": "Monday to Friday (use_statutory: false)",
    }
    for year in range(today.year - 1, today.year + 2):
        source = cal.source(year)
        version = f" v{versions[year]}" if source == "schedule" else ""
        console.print(f"{year}: {said[source]}{version}")
    for w in cal.warnings(today):
        console.print(f"[bold red]warning:[/] {w}")
