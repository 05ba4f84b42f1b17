"""What the platform holds and how its stages are, for operators (``shouwang status``) and the
demo's status line (``shouwang up``).

The counts of recent readings (the last minute, the last hour) are exact: ``count(*)`` over the
newest chunk through the readings' time index (BRIN), about 1 ms for a minute and 15-60 ms for an
hour of 70,000 readings in a table of 5 million (measured on the local stack; the upper figure
before vacuum has summarised the newest pages). "Stored" is the estimate TimescaleDB keeps from
the planner's statistics (it stands still between analyses), marked as such.

Each stage's state comes from its metrics endpoint (``core.metrics``): ``scrape`` of
metrics_host at the stage's port, judged by ``liveness`` (running, idle, stuck or down, the one
rule ``shouwang health --stage`` and the alert rules use); ``unknown`` for a stage with no fixed
port (0 or -1). The site gateway runs at the sites: ``shouwang health --stage gateway`` there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.db import Conn
from core.metrics import STAGES, Liveness, liveness, scrape
from core.settings import Settings

CENTRAL = ("ingest", "analytics", "notify", "api")  # the stages of the central server
SCRAPE_TIMEOUT_S = 1.0
STATE_STYLE = {"running": "green", "idle": "cyan", "stuck": "bold red", "down": "bold red"}


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
    readings_last_hour: int = 0  # exact, like readings_last_minute


def snapshot(conn: Conn) -> Snapshot:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM devices WHERE active),"
        " (SELECT approximate_row_count('readings')),"
        " (SELECT count(*) FROM readings WHERE ts > now() - interval '1 minute'),"
        " (SELECT count(*) FROM device_presence WHERE last_seen > now() - interval '1 minute'),"
        " (SELECT count(*) FROM device_presence WHERE online),"
        " (SELECT count(*) FROM readings WHERE ts > now() - interval '1 hour')"
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
        alarms_today=int(loop[0]),
        acknowledged_today=int(loop[1]),
        work_orders_today=int(loop[2]),
        completed_today=int(loop[3]),
        readings_last_hour=int(row[5]),
    )


@dataclass(frozen=True, slots=True)
class StageState:
    """One stage (one ingest worker) as its endpoint says it is now."""

    name: str  # the stage, or "ingest 1" for a worker of several
    where: str  # host:port scraped, "" when it has no fixed port
    judged: Liveness


def stage_states(
    s: Settings,
    stages: Sequence[str] = CENTRAL,
    *,
    workers: int = 1,
    now: float | None = None,
) -> list[StageState]:
    """Each stage's state from its metrics endpoint, scraped in parallel (each waits at most
    :data:`SCRAPE_TIMEOUT_S`); ``workers``: how many ingest workers to look at."""
    from shouwang.stages import worker_ports

    targets: list[tuple[str, str, int]] = []  # (name, stage, port)
    out: dict[int, StageState] = {}
    for stage in stages:
        base = s.metrics_port(stage)
        if base <= 0:
            why = "no metrics endpoint (its port is -1)" if base < 0 else "its metrics port is 0"
            out[len(targets)] = StageState(
                stage, "", Liveness(stage, False, "unknown", f"{why}: set a fixed one")
            )
            targets.append((stage, stage, base))
            continue
        others = {s.metrics_port(n) for n in STAGES if n != stage}
        ports = worker_ports(base, workers, others) if stage == "ingest" else [base]
        for i, port in enumerate(ports):
            targets.append((stage if len(ports) == 1 else f"{stage} {i}", stage, port))
    at = time.time() if now is None else now

    def judge(target: tuple[str, str, int]) -> StageState:
        name, stage, port = target
        samples, error = scrape(s.metrics_host, port, stage, SCRAPE_TIMEOUT_S)
        judged = liveness(stage, samples, at, s.health_stuck_after_s, error)
        return StageState(name, f"{s.metrics_host}:{port}", judged)

    todo = [(i, t) for i, t in enumerate(targets) if i not in out]
    if todo:
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            for (i, _), state in zip(todo, pool.map(judge, [t for _, t in todo]), strict=True):
                out[i] = state
    return [out[i] for i in range(len(targets))]


def stages_text(states: Iterable[StageState]) -> str:
    """The stages' states for the status line (Rich markup)."""
    return "  ".join(
        f"{escape(st.name)} [{STATE_STYLE.get(st.judged.state, 'yellow')}]{st.judged.state}[/]"
        for st in states
    )


def status_line(
    s: Snapshot,
    *,
    clock: str,
    notes: Iterable[str] = (),
    stages: Sequence[StageState] = (),
) -> str:
    """The main job's status line (Rich markup): the figures (readings of the last minute and
    hour exact, the total stored an estimate), each stage's state, then a red ``! …`` marker
    for each of ``notes`` and for open platform alarms."""
    n = s.open_platform_alarms
    markers = [*notes, *([f"{n} platform alarm{'' if n == 1 else 's'} open"] if n else [])]
    return (
        f"{clock}  readings/min {s.readings_last_minute:>8,}"
        f"  readings/h {s.readings_last_hour:>10,}"
        f"  devices heard {s.devices_heard_last_minute:>5,}/{s.devices:,}"
        f"  stored ≈{s.readings_approx:>12,}"
        f"  rejects/h {sum(s.rejects_last_hour.values()):,}"
        f"  open alarms {s.open_alarms:,}  open work orders {s.open_work_orders:,}"
        f"  24h: alarms {s.alarms_today:,} acknowledged {s.acknowledged_today:,}"
        f" work orders {s.work_orders_today:,} completed {s.completed_today:,}"
        + (f"  stages {stages_text(stages)}" if stages else "")
        + "".join(f"  [bold red]! {m}[/]" for m in markers)
    )


def print_status(conn: Conn, console: Console, stages: Sequence[StageState] = ()) -> None:
    s = snapshot(conn)
    t = Table(title="shouwang", show_header=False)
    t.add_row("devices registered", f"{s.devices:,}")
    t.add_row("devices heard in the last minute", f"{s.devices_heard_last_minute:,}")
    t.add_row("devices saying they are online", f"{s.devices_online:,}")
    t.add_row("readings stored (estimate, from statistics)", f"≈{s.readings_approx:,}")
    t.add_row("readings in the last minute", f"{s.readings_last_minute:,}")
    t.add_row("readings in the last hour", f"{s.readings_last_hour:,}")
    t.add_row("open alarms / open work orders", f"{s.open_alarms:,} / {s.open_work_orders:,}")
    n = s.open_platform_alarms
    t.add_row("open platform alarms", f"{n:,}" + (" (shouwang platform alarms)" if n else ""))
    t.add_row(
        "rejects in the last hour",
        ", ".join(f"{k}: {v}" for k, v in s.rejects_last_hour.items()) or "none",
    )
    for st in stages:
        style = STATE_STYLE.get(st.judged.state, "yellow")
        where = f" ({st.where})" if st.where else ""
        t.add_row(
            f"stage {escape(st.name)}",
            f"[{style}]{st.judged.state}[/]: {escape(st.judged.detail + where)}",
        )
    console.print(t)
