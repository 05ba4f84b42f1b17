"""The command line: ``shouwang maintenance``: maintenance windows (``lifecycle.maintenance``).

Alarms of a device that open inside one of its windows are shown but not notified, and do not
count against the firm. ``open`` checks the bounds (length per kind, at most 1 h backdated) and
says which option to change; the operator at the command line may open a window for any device.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="Maintenance windows: open, close early, list.")


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(2)


@app.command("open")
def maintenance_open(
    kind: Annotated[str, typer.Argument(help="service, annual_inspection, repair or fire_drill")],
    device: Annotated[list[str], typer.Option("--device", "-d", help="a device uid (repeat)")],
    performer: Annotated[str, typer.Option(help="who does the work")],
    hours: Annotated[
        float | None, typer.Option(help="how long (default: the kind's longest window)")
    ] = None,
    starts: Annotated[
        datetime | None,
        typer.Option(help="start, with a UTC offset (default now; at most 1 h ago)"),
    ] = None,
    work_done: Annotated[str, typer.Option(help="what is (or was) done")] = "",
    unit: Annotated[str | None, typer.Option(help="the maintenance unit's code")] = None,
) -> None:
    """Open a window for devices of one community."""
    from core.audit import cli_actor
    from core.db import connect
    from lifecycle import maintenance_windows as store
    from lifecycle.maintenance import KINDS, MAX_LENGTH, WindowError

    if kind not in KINDS:
        raise _fail(f"KIND: must be one of {', '.join(KINDS)}")
    now = datetime.now(UTC)
    start = starts or now
    if start.tzinfo is None:
        raise _fail("--starts: give a UTC offset, e.g. 2026-05-01T09:00+08:00")
    length = timedelta(hours=hours) if hours is not None else MAX_LENGTH[kind]
    actor = cli_actor()
    with connect(load_settings().database_url, actor=actor) as conn:
        rows = conn.execute("SELECT uid, id FROM devices WHERE uid = ANY(%s)", (device,)).fetchall()
        ids: dict[str, int] = {str(u): int(i) for u, i in rows}
        missing = [u for u in device if u not in ids]
        if missing:
            raise _fail(f"--device: no such device: {', '.join(missing)}")
        unit_id = None
        if unit is not None:
            row = conn.execute(
                "SELECT id FROM maintenance_units WHERE code = %s", (unit,)
            ).fetchone()
            if row is None:
                raise _fail(f"--unit: no maintenance unit {unit!r}")
            unit_id = int(row[0])
        try:
            wid = store.open_window(
                conn,
                kind=kind,
                starts_at=start,
                ends_at=start + length,
                device_ids=[int(ids[u]) for u in device],
                performer=performer,
                work_done=work_done,
                maintenance_unit_id=unit_id,
                opened_by=actor.name,
                now=now,
            )
        except WindowError as e:
            option = {"ends_at": "--hours", "starts_at": "--starts", "device_ids": "--device"}
            raise _fail(f"{option.get(e.field, '--' + e.field)}: {e.message}") from None
        w = store.get(conn, wid)
    assert w is not None
    console.print(
        f"maintenance window {w.id} ({w.kind}) open for {len(w.device_ids)} device(s)"
        f" from {w.starts_at.isoformat()} to {w.ends_at.isoformat()}"
    )


@app.command("close")
def maintenance_close(
    window: Annotated[int, typer.Argument(help="the window's id")],
    work_done: Annotated[str | None, typer.Option(help="what was done")] = None,
) -> None:
    """Close a window now (its devices' alarms are notified again from now)."""
    from core.audit import cli_actor
    from core.db import connect
    from lifecycle import maintenance_windows as store
    from lifecycle.maintenance import WindowError

    actor = cli_actor()
    with connect(load_settings().database_url, actor=actor) as conn:
        try:
            w = store.close(
                conn, window, closed_by=actor.name, now=datetime.now(UTC), work_done=work_done
            )
        except LookupError:
            raise _fail(f"WINDOW: no maintenance window {window}") from None
        except WindowError as e:
            raise _fail(f"WINDOW: {e.message}") from None
    console.print(f"maintenance window {w.id} closed; it ended at {w.ends_at.isoformat()}")


@app.command("list")
def maintenance_list(
    community: Annotated[int | None, typer.Option(help="a community's id")] = None,
    current: Annotated[bool, typer.Option(help="only windows open now")] = False,
) -> None:
    """Windows, newest first (at most 1000)."""
    from core.db import connect
    from lifecycle import maintenance_windows as store

    with connect(load_settings().database_url) as conn:
        rows = store.listing(
            conn, community_id=community, current_at=datetime.now(UTC) if current else None
        )
    if not rows:
        console.print("no maintenance windows")
    for w in rows:
        closed = f" closed by {w.closed_by}" if w.closed_by else ""
        console.print(
            f"{w.id}\t{w.kind}\tcommunity {w.community_id}\t{w.starts_at.isoformat()} →"
            f" {w.ends_at.isoformat()}\t{len(w.device_ids)} device(s)\t{w.performer}{closed}"
        )
