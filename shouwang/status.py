"""Ingest: what the database holds now, for operators (``shouwang status``) and the demo."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from core.db import Conn


@dataclass(frozen=True, slots=True)
class Snapshot:
    devices: int
    readings_approx: int
    readings_last_minute: int
    devices_heard_last_minute: int
    devices_online: int
    rejects_last_hour: dict[str, int]
    open_alarms: int = 0
    open_work_orders: int = 0
    open_platform_alarms: int = 0  # the platform's own trouble (lifecycle.platform)
    alarms_today: int = 0  # opened in the last 24 hours, and of those:
    acknowledged_today: int = 0  # acknowledged (or cleared after an acknowledgement)
    work_orders_today: int = 0  # work orders opened in the last 24 hours, and of those:
    completed_today: int = 0  # completed on site


def snapshot(conn: Conn) -> Snapshot:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM devices WHERE active),"
        " (SELECT approximate_row_count('readings')),"
        " (SELECT count(*) FROM readings WHERE ts > now() - interval '1 minute'),"
        " (SELECT count(*) FROM device_presence WHERE last_seen > now() - interval '1 minute'),"
        " (SELECT count(*) FROM device_presence WHERE online)"
    ).fetchone()
    assert row is not None
    rejects: dict[str, int] = dict(
        conn.execute(
            "SELECT reason, count(*) FROM rejects WHERE received_at > now() - interval '1 hour'"
            " GROUP BY reason ORDER BY 2 DESC"
        ).fetchall()
    )
    open_ = conn.execute(
        "SELECT (SELECT count(*) FROM alarms WHERE state <> 'cleared'),"
        " (SELECT count(*) FROM work_orders WHERE closed_at IS NULL),"
        " (SELECT count(*) FROM platform_alarms WHERE state <> 'cleared')"
    ).fetchone() or (0, 0, 0)
    loop = conn.execute(
        "SELECT (SELECT count(*) FROM alarms WHERE opened_at > now() - interval '1 day'),"
        " (SELECT count(*) FROM alarms WHERE opened_at > now() - interval '1 day'"
        " AND acknowledged_at IS NOT NULL),"
        " (SELECT count(*) FROM work_orders WHERE opened_at > now() - interval '1 day'),"
        " (SELECT count(*) FROM work_orders WHERE opened_at > now() - interval '1 day'"
        " AND closed_reason = 'completed')"
    ).fetchone() or (0, 0, 0, 0)
    return Snapshot(
        int(row[0]),
        int(row[1]),
        int(row[2]),
        int(row[3]),
        int(row[4]),
        rejects,
        int(open_[0]),
        int(open_[1]),
        int(open_[2]),
        *(int(n) for n in loop),
    )


def status_line(s: Snapshot, *, clock: str, notes: Iterable[str] = ()) -> str:
    """The main job's status line (Rich markup): the figures, then a red ``! …`` marker for each
    of ``notes`` and for open platform alarms."""
    n = s.open_platform_alarms
    markers = [*notes, *([f"{n} platform alarm{'' if n == 1 else 's'} open"] if n else [])]
    return (
        f"{clock}  readings/min {s.readings_last_minute:>8,}"
        f"  devices heard {s.devices_heard_last_minute:>5,}/{s.devices:,}"
        f"  stored {s.readings_approx:>12,}"
        f"  rejects/h {sum(s.rejects_last_hour.values()):,}"
        f"  open alarms {s.open_alarms:,}  open work orders {s.open_work_orders:,}"
        f"  24h: alarms {s.alarms_today:,} acknowledged {s.acknowledged_today:,}"
        f" work orders {s.work_orders_today:,} completed {s.completed_today:,}"
        + "".join(f"  [bold red]! {m}[/]" for m in markers)
    )


def print_status(conn: Conn, console: Console) -> None:
    s = snapshot(conn)
    t = Table(title="shouwang", show_header=False)
    t.add_row("devices registered", f"{s.devices:,}")
    t.add_row("devices heard in the last minute", f"{s.devices_heard_last_minute:,}")
    t.add_row("devices saying they are online", f"{s.devices_online:,}")
    t.add_row("readings stored (approx.)", f"{s.readings_approx:,}")
    t.add_row("readings in the last minute", f"{s.readings_last_minute:,}")
    t.add_row("open alarms / open work orders", f"{s.open_alarms:,} / {s.open_work_orders:,}")
    n = s.open_platform_alarms
    t.add_row("open platform alarms", f"{n:,}" + (" (shouwang platform alarms)" if n else ""))
    t.add_row(
        "rejects in the last hour",
        ", ".join(f"{k}: {v}" for k, v in s.rejects_last_hour.items()) or "none",
    )
    console.print(t)
