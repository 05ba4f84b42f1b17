"""Drills: what a drill measured (``Figures``) and the table it prints (``report``). The run
that fills them in is ``bench.drills.run``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from broker.files import AUTOSAVE_INTERVAL_S


@dataclass
class Figures:
    kind: str
    communities: list[str]
    devices: int
    speed: float
    stream_s: float
    outage_s: float
    messages_published: int = 0
    readings_published: int = 0
    messages_acknowledged: int | None = None
    messages_routed: int = 0  # seen by the drill's observer
    ingest_messages: int = 0  # committed and acknowledged by ingest (all its runs)
    readings_stored: int = 0  # published readings found stored
    readings_extra: int = 0  # new readings of the drill's devices nobody published
    duplicates: int = 0
    lost: int = 0
    lost_outside_window: int = 0
    lost_span_s: float | None = None  # data span of the lost readings, in wall seconds
    window_s: float = 0.0
    autosave_s: int = AUTOSAVE_INTERVAL_S
    held_at_kill: int | None = None  # messages routed while ingest was away, at the kill
    readings_in_window: int = 0  # published within the window before the kill (may be lost)
    backlog_saved: int = 0  # published while ingest was away, before the window (saved)
    backlog_saved_stored: int = 0  # of them, stored
    first_stored_after_s: float | None = None
    all_stored_after_s: float | None = None
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    alive_after: dict[str, bool] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)  # stages SIGKILLed mid-outage, restarted
    log_counts: dict[str, int] = field(default_factory=dict)
    alarms: dict[str, int] = field(default_factory=dict)
    platform_alarms: list[str] = field(default_factory=list)
    # The platform's outage is not the devices' fault (analytics watching, ``Options.watch``).
    analytics_settings: dict[str, str] = field(default_factory=dict)  # set for the drill
    feed_gap_s: float | None = None  # last reading stored before the outage to the first after
    feed_silent_after_s: float | None = None  # analytics' threshold for feed_silent
    platform_expected: str = ""  # what the gap calls for
    offline_alarms_others: int = 0  # OFFLINE alarms filed for devices other than the victim
    offline_work_orders_others: int = 0
    victim: str | None = None  # the device made to go silent during the outage
    victim_silent_at_s: float | None = None  # into the outage (wall seconds)
    victim_detected_after_s: float | None = None  # its OFFLINE alarm, after the outage's end
    victim_work_order: bool = False
    # Notifications, end to end (``bench.drills.duty``).
    notifications: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    directory: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _fmt(x: float | None, unit: str = " s") -> str:
    return "—" if x is None else f"{x:,.1f}{unit}"


def report(console: Console, f: Figures) -> None:
    t = Table(title=f"shouwang drill {f.kind}: {', '.join(f.communities)}, {f.devices} devices")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("stream", f"{f.stream_s:.0f} s at speed {f.speed:g}; outage {f.outage_s:.0f} s")
    t.add_row("messages published", f"{f.messages_published:,}")
    t.add_row(
        "  acknowledged by the broker",
        "—" if f.messages_acknowledged is None else f"{f.messages_acknowledged:,}",
    )
    t.add_row("  routed (seen by the drill's observer)", f"{f.messages_routed:,}")
    t.add_row("  committed by ingest (with redeliveries, statuses)", f"{f.ingest_messages:,}")
    t.add_row("readings published", f"{f.readings_published:,}")
    t.add_row("  stored", f"{f.readings_stored:,}")
    t.add_row("  duplicates", f"{f.duplicates:,}")
    t.add_row("  lost (published − stored)", f"{f.lost:,}")
    if f.kind == "broker-kill":
        t.add_row(
            "  autosave / documented window",
            f"autosave_interval {f.autosave_s} s / {f.window_s:g} s before the kill",
        )
        t.add_row("  lost outside the window", f"{f.lost_outside_window:,}")
        t.add_row("  span of the lost readings", _fmt(f.lost_span_s))
        t.add_row("  readings published in the window", f"{f.readings_in_window:,}")
        if f.held_at_kill is not None:
            t.add_row("  messages held for ingest at the kill", f"{f.held_at_kill:,}")
            t.add_row(
                "  backlog before the window (saved): stored",
                f"{f.backlog_saved_stored:,} of {f.backlog_saved:,}",
            )
    if f.readings_extra:
        t.add_row("  stored, not published by the drill", f"{f.readings_extra:,}")
    t.add_row("first reading stored after the outage", _fmt(f.first_stored_after_s))
    t.add_row("everything before the outage's end stored", _fmt(f.all_stored_after_s))
    for name, mb in f.peak_rss_mb.items():
        t.add_row(f"peak RSS {name}", f"{mb:,.0f} MB")
    for name, alive in f.alive_after.items():
        t.add_row(f"{name} running after", "yes" if alive else "[red]NO[/]")
    if f.killed:
        t.add_row("SIGKILLed mid-outage, started after it", ", ".join(f.killed))
    for k, v in {**f.log_counts, **f.alarms}.items():
        t.add_row(k, f"{v:,}")
    if f.analytics_settings:
        _offline_rows(t, f)
    if f.kind in ("db-outage", "ingest-stop") or f.analytics_settings:
        t.add_row("platform alarms opened", ", ".join(f.platform_alarms) or "none")
    for k, v in f.notifications.items():
        t.add_row(k, f"{v:,}")
    console.print(t)
    for p in f.problems:
        console.print(f"[bold red]FAILED:[/] {p}")
    if f.directory is not None:
        console.print(f"logs kept in {f.directory}")
    if f.ok:
        console.print("[green]drill passed[/]")


def _offline_rows(t: Table, f: Figures) -> None:
    t.add_row(
        "analytics set for the drill",
        ", ".join(f"{k} {v}" for k, v in f.analytics_settings.items()),
    )
    t.add_row(
        "feed silent (last stored before → first after)",
        f"{_fmt(f.feed_gap_s)}; feed_silent after {_fmt(f.feed_silent_after_s)}",
    )
    t.add_row("  platform alarm expected", f.platform_expected or "—")
    t.add_row("OFFLINE alarms filed for other devices", f"{f.offline_alarms_others:,}")
    t.add_row("  work orders for them", f"{f.offline_work_orders_others:,}")
    if f.victim is not None:
        t.add_row("device gone silent during the outage", f.victim)
        t.add_row("  silent from (into the outage)", _fmt(f.victim_silent_at_s))
        t.add_row(
            "  detected offline after the outage's end",
            _fmt(f.victim_detected_after_s)
            + ("" if f.victim_detected_after_s is None else ", work order: ")
            + ("" if f.victim_detected_after_s is None else "yes" if f.victim_work_order else "no"),
        )
