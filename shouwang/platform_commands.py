"""The command line: ``shouwang platform``: the platform's own alarms (``lifecycle.platform``):
see the open ones, acknowledge one."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(
    no_args_is_help=True, help="The platform's own alarms: list the open ones, acknowledge one."
)


@app.command("alarms")
def platform_alarms() -> None:
    """The open platform alarms (active and acknowledged), oldest first."""
    from core.db import connect
    from lifecycle.platform import open_alarms

    with connect(load_settings().database_url) as conn:
        alarms = open_alarms(conn)
    out = Console()
    if not out.is_terminal:  # piped or logged: wide enough for every cell on one line
        out = Console(width=max(out.width, 160))
    if not alarms:
        out.print("no platform alarm is open")
        return
    t = Table(title=f"{len(alarms)} open platform alarm(s)")
    for column in ("id", "kind", "subject", "severity", "state", "opened", "triggers"):
        t.add_column(column, justify="right" if column in ("id", "triggers") else "left")
    t.add_column("acknowledged by")
    for c in t.columns:
        c.overflow = "fold"  # never cut: an id or a uid cut short is worse than a tall row
    for a in alarms:
        t.add_row(
            str(a.id),
            str(a.kind),
            a.subject or "—",
            str(a.severity),
            a.state,
            f"{a.opened_at:%Y-%m-%d %H:%M %Z}",
            str(a.triggers),
            a.acknowledged_by or "",
        )
    out.print(t)


@app.command("ack")
def platform_ack(
    alarm_id: Annotated[
        int, typer.Argument(min=1, help="the alarm's id (shouwang platform alarms)")
    ],
    by: Annotated[str, typer.Option(help="who takes it on, for the record")],
) -> None:
    """Acknowledge a platform alarm (who and when); the first acknowledgement stands."""
    from core.audit import cli_actor
    from core.db import connect
    from lifecycle.platform import acknowledge

    if not by.strip():
        raise typer.BadParameter(
            "say who acknowledges, e.g. --by '县信息中心 王工'", param_hint="--by"
        )
    with connect(load_settings().database_url, actor=cli_actor()) as conn:
        alarm = acknowledge(conn, alarm_id, by)
        conn.commit()
    if alarm.acknowledged_by == by.strip():
        console.print(f"platform alarm {alarm.id} ({alarm.kind}) acknowledged by {by.strip()}")
    else:
        console.print(
            f"platform alarm {alarm.id} ({alarm.kind}) was acknowledged already, by"
            f" {alarm.acknowledged_by} at {alarm.acknowledged_at:%Y-%m-%d %H:%M:%S}; unchanged"
        )
