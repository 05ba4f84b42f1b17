"""The command line: ``shouwang drill``: outage drills (``bench/drills``). Each runs the
platform's real processes on loopback (a private Mosquitto, ``shouwang ingest``, for the
database drill ``analytics`` and ``notify`` too, for the broker restart and the ingest stop
``analytics``, and the simulator) against the configured database and its registry, injects one
outage mid-stream and prints what was published, acknowledged, stored, duplicated and lost, each
process's peak RSS and the recovery time; with analytics watching, the OFFLINE and platform
alarms the outage caused and whether a device gone silent during it was detected; with notify,
the notifications that arrived at the drill's own webhook receiver. The exit status is 1 when
anything was lost outside the documented window, a stage died, or a check failed.

They need the registry's devices and their credentials: run ``shouwang seed`` first."""

from __future__ import annotations

from typing import Annotated

import typer

from shouwang.console import setup_logging

app = typer.Typer(no_args_is_help=True, help="Outage drills on the real processes, with figures.")

Communities = Annotated[int, typer.Option(help="communities streamed (the registry's first N)")]
Seconds = Annotated[
    float | None,
    typer.Option(
        help="wall seconds of streaming (default: warm-up + outage + 30, and with a silent device"
        " until it is detected)"
    ),
]
Speed = Annotated[float, typer.Option(help="simulated seconds per wall second")]
Warmup = Annotated[float, typer.Option(help="seconds of storing before the outage")]
Analytics = Annotated[
    bool,
    typer.Option(
        help="run analytics too: no device may be blamed for the outage, one device goes silent"
        " during it and must be detected after it"
    ),
]
Victim = Annotated[
    bool, typer.Option(help="with analytics: one device goes silent a third into the outage")
]
Grace = Annotated[
    float, typer.Option(help="with analytics: its offline grace for the drill (seconds)")
]
FeedSilent = Annotated[
    float,
    typer.Option(help="with analytics: its feed_silent_s (the offline silence floors it)"),
]
MassWindow = Annotated[
    float, typer.Option(help="with analytics: its mass-silence window for the drill (seconds)")
]


def _run(kind: str, **options: object) -> None:
    from bench.drills.run import Options, run
    from core.settings import load_settings

    setup_logging()
    figures = run(load_settings(), Options(kind=kind, **options))  # type: ignore[arg-type]
    if not figures.ok:
        raise typer.Exit(1)


@app.command("broker-restart")
def broker_restart(
    communities: Communities = 1,
    seconds: Seconds = None,
    outage_s: Annotated[float, typer.Option(help="seconds the broker is down")] = 5.0,
    speed: Speed = 1.0,
    warmup: Warmup = 10.0,
    analytics: Analytics = True,
    victim: Victim = True,
    grace_s: Grace = 20.0,
    feed_silent_s: FeedSilent = 30.0,
    mass_window_s: MassWindow = 10.0,
) -> None:
    """Stop the broker cleanly (SIGTERM) mid-stream: nothing lost, no device blamed for it."""
    _run(
        "broker-restart",
        communities=communities,
        seconds=seconds,
        outage_s=outage_s,
        speed=speed,
        warmup_s=warmup,
        stages=("ingest", "analytics") if analytics else ("ingest",),
        victim=victim,
        grace_s=grace_s,
        feed_silent_s=feed_silent_s,
        mass_window_s=mass_window_s,
    )


@app.command("ingest-stop")
def ingest_stop(
    communities: Communities = 1,
    seconds: Seconds = None,
    outage_s: Annotated[
        float, typer.Option(help="seconds ingest is stopped (its broker session kept)")
    ] = 65.0,
    speed: Speed = 1.0,
    warmup: Warmup = 10.0,
    analytics: Analytics = True,
    victim: Victim = True,
    grace_s: Grace = 20.0,
    feed_silent_s: FeedSilent = 30.0,
    mass_window_s: MassWindow = 10.0,
) -> None:
    """Stop ingest mid-stream: nothing lost, no device blamed, a silent one still found."""
    _run(
        "ingest-stop",
        communities=communities,
        seconds=seconds,
        outage_s=outage_s,
        speed=speed,
        warmup_s=warmup,
        stages=("ingest", "analytics") if analytics else ("ingest",),
        victim=victim,
        grace_s=grace_s,
        feed_silent_s=feed_silent_s,
        mass_window_s=mass_window_s,
    )


@app.command("broker-kill")
def broker_kill(
    communities: Communities = 1,
    seconds: Seconds = None,
    outage_s: Annotated[float, typer.Option(help="seconds the broker is down")] = 5.0,
    speed: Speed = 1.0,
    warmup: Warmup = 10.0,
    backlog_s: Annotated[
        float,
        typer.Option(
            help="stop ingest this long before the kill, so the broker holds a backlog (0: kill"
            " it while ingest reads)"
        ),
    ] = 15.0,
    autosave_s: Annotated[
        int | None,
        typer.Option(help="the drill broker's autosave_interval (default: the platform's)"),
    ] = None,
) -> None:
    """Kill the broker (SIGKILL) mid-stream: only its last autosave window may be lost."""
    from broker.files import AUTOSAVE_INTERVAL_S

    _run(
        "broker-kill",
        communities=communities,
        seconds=seconds,
        outage_s=outage_s,
        speed=speed,
        warmup_s=warmup,
        backlog_s=backlog_s,
        autosave_s=AUTOSAVE_INTERVAL_S if autosave_s is None else autosave_s,
    )


@app.command("db-outage")
def db_outage(
    communities: Communities = 1,
    seconds: Seconds = None,
    outage_s: Annotated[float, typer.Option(help="seconds the database is cut")] = 60.0,
    speed: Speed = 1.0,
    warmup: Warmup = 10.0,
    faults: Annotated[
        int, typer.Option(help="elevators pressing their alarm button in mid-outage")
    ] = 3,
    notify: Annotated[
        bool,
        typer.Option(
            help="run notify too, with a person of the drill's own on duty and a webhook"
            " receiver (refused if people on duty are off-machine)"
        ),
    ] = True,
    kill: Annotated[
        list[str] | None,
        typer.Option(
            help="SIGKILL this stage (analytics, notify, ingest) at three quarters of the cut"
            " and start it again after it (repeatable)"
        ),
    ] = None,
) -> None:
    """Cut the database under load: stages up, every reading once, every notification once."""
    _run(
        "db-outage",
        communities=communities,
        seconds=seconds,
        outage_s=outage_s,
        speed=speed,
        warmup_s=warmup,
        faults=faults,
        stages=("ingest", "analytics", "notify") if notify else ("ingest", "analytics"),
        kill=tuple(kill or ()),
    )


@app.command("backlog")
def backlog(
    communities: Annotated[int, typer.Option(help="the demo county's communities")] = 20,
    minutes: Annotated[float, typer.Option(help="simulated minutes the load is measured on")] = 10,
    held: Annotated[int, typer.Option(help="messages the measured broker holds")] = 100_000,
    outage_h: Annotated[float, typer.Option(help="the database outage to size for, hours")] = 1.0,
) -> None:
    """The demo county's load an hour, what the broker's backlog of it costs, and the limits."""
    from bench.drills.backlog import main

    setup_logging()
    main(communities=communities, minutes=minutes, held=held, outage_h=outage_h)
