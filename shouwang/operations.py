"""The command line: operating the platform (``shouwang train|replay|up|status|rollup|health``):
the detectors' models and a back-test of them, everything at once, and what is there now."""

from __future__ import annotations

import signal
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from core.settings import Settings, load_settings
from shouwang.console import console, run_logged

app = typer.Typer()


@app.command()
def train(
    device_class: Annotated[str, typer.Option(help="device class, e.g. pump_room")] = "pump_room",
    days: Annotated[
        float, typer.Option(help="train on this many days of stored history, up to now")
    ] = 14.0,
    until: Annotated[
        datetime | None, typer.Option(help="end of the training window (default now)")
    ] = None,
) -> None:
    """Train the class's multivariate model from stored history and make it the active version;
    running analytics picks it up without a restart."""
    from analytics.models import save, train_from_history
    from core.db import connect

    s = load_settings()
    end = (until or datetime.now(UTC)).astimezone(UTC)
    with connect(s.database_url, autocommit=True) as conn:
        model = train_from_history(conn, device_class, end - timedelta(days=days), end)
        save(conn, model)
    console.print(
        f"{device_class}: model {model.version} on {model.n_train} rows of {list(model.features)},"
        f" threshold {model.threshold:.3g}; active now"
    )


@app.command()
def replay(
    src: Annotated[Path, typer.Argument(help="CSV of readings to score")],
    out: Annotated[Path, typer.Option(help="CSV of the alarm episodes, written as they close")],
    time_column: Annotated[str, typer.Option(help="name of the time column")] = "time",
    columns: Annotated[
        str | None, typer.Option(help="comma-separated columns (default: every numeric column)")
    ] = None,
    sep: Annotated[str, typer.Option(help="field separator")] = ",",
    time_format: Annotated[
        str, typer.Option(help="iso, epoch_s, epoch_ms or a strptime format such as %d.%m.%Y %H:%M")
    ] = "iso",
    tz: Annotated[str, typer.Option(help="time zone of times without an offset")] = "Asia/Shanghai",
    calibrate_file: Annotated[
        list[Path] | None,
        typer.Option(help="CSV of normal operation to calibrate on (repeatable; same columns)"),
    ] = None,
    calibrate_until: Annotated[
        str | None,
        typer.Option(
            help="calibrate on the scored file's rows up to this time (its format or ISO)"
        ),
    ] = None,
    calibrate_rows: Annotated[
        int | None, typer.Option(help="calibrate on the scored file's first N rows")
    ] = None,
    scores: Annotated[
        Path | None, typer.Option(help="also write each scored row's scores to this CSV")
    ] = None,
    false_alarms_per_day: Annotated[
        float | None, typer.Option(help="target false alarms per day on normal data [1]")
    ] = None,
    confirm: Annotated[
        str | None, typer.Option(help="scores must stay high this long to open (90s, 2m, 1h)")
    ] = None,
    hold: Annotated[
        str | None, typer.Option(help="an episode closes after this long without high scores")
    ] = None,
    max_gap: Annotated[
        str | None, typer.Option(help="a data gap this long closes an open episode")
    ] = None,
    held_back: Annotated[
        float, typer.Option(help="fraction of calibration held back to set thresholds")
    ] = 0.3,
    min_z: Annotated[
        float | None, typer.Option(help="lowest per-column threshold, in robust z [6]")
    ] = None,
    per_column: Annotated[bool, typer.Option(help="the per-column robust detector")] = True,
    multivariate: Annotated[bool, typer.Option(help="the multivariate detector")] = True,
    entry: Annotated[
        str | None,
        typer.Option(
            help="take confirm, hold and false-alarm target from this list entry's filing"
        ),
    ] = None,
    list_file: Annotated[
        Path | None,
        typer.Option("--list", help="responsibility list for --entry (default shipped)"),
    ] = None,
) -> None:
    """Back-test the detectors on exported data: calibrate on normal operation, stream the rest of
    the CSV through them and write the alarm episodes (score them with ``shouwang evaluate``)."""
    from analytics.replay import ReplayInterrupted, ReplaySettings, settings_from_entry
    from analytics.replay import replay as run_replay
    from analytics.timeparse import parse_duration, parse_time, zone
    from core.errors import ConfigError
    from shouwang.replay_summary import print_summary

    zone_info = zone(tz)
    until = None
    if calibrate_until is not None:
        until = parse_time(calibrate_until, time_format, zone_info, "--calibrate-until")

    def seconds(text: str | None, what: str) -> float | None:
        return None if text is None else parse_duration(text, what)

    base = ReplaySettings(held_back=held_back, per_column=per_column, multivariate=multivariate)
    if entry is not None:
        from responsibility.loader import default_list, load_list

        listed = load_list(list_file) if list_file is not None else default_list()
        if entry not in listed.entries:
            raise ConfigError("--entry", f"no entry {entry!r} in the list {listed.source}")
        base = settings_from_entry(listed.entries[entry], base)
    confirm_s, hold_s = seconds(confirm, "--confirm"), seconds(hold, "--hold")
    gap_s = seconds(max_gap, "--max-gap")
    settings = replace(
        base,
        false_alarms_per_day=(
            base.false_alarms_per_day if false_alarms_per_day is None else false_alarms_per_day
        ),
        confirm_s=base.confirm_s if confirm_s is None else confirm_s,
        hold_s=base.hold_s if hold_s is None else hold_s,
        max_gap_s=base.max_gap_s if gap_s is None else gap_s,
        min_z=base.min_z if min_z is None else min_z,
    )
    interrupted_by = signal.SIGINT

    def stop(signum: int, _frame: object) -> None:
        nonlocal interrupted_by
        interrupted_by = signal.Signals(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)  # a service manager's stop: as Ctrl-C
    try:
        stats = run_replay(
            src,
            out,
            time_column=time_column,
            columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
            sep=sep,
            time_format=time_format,
            tz=zone_info,
            calibrate_files=calibrate_file or [],
            calibrate_rows=calibrate_rows,
            calibrate_until=until,
            settings=settings,
            scores=scores,
            warn=lambda msg: console.print(f"[yellow]warning:[/] {msg}"),
        )
    except ReplayInterrupted as e:
        upto = ""
        if e.scored_to is not None:
            last = datetime.fromtimestamp(e.scored_to, zone_info).isoformat(timespec="seconds")
            upto = f" (data up to {last})"
        console.print(
            f"[bold red]interrupted[/] by {interrupted_by.name} after {e.scored_rows:,} scored "
            f"rows{upto}: {escape(str(out))} holds the {e.episodes} episodes that closed before; "
            "episodes still open were not written. Run again to score the whole file."
        )
        raise typer.Exit(128 + interrupted_by) from None
    except KeyboardInterrupt:
        console.print(
            f"[bold red]interrupted[/] by {interrupted_by.name} while calibrating: "
            f"nothing was written to {escape(str(out))}"
        )
        raise typer.Exit(128 + interrupted_by) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_summary(Console(), stats, out, zone_info)  # the result on stdout, warnings on stderr


@app.command()
def up(
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 1.0,
    workers: int = 1,
) -> None:
    """Run the platform's main job: ingest workers and the simulator, until Ctrl-C."""
    from shouwang.up import main as demo_main

    run_logged(demo_main, speed=speed, workers=workers)


@app.command()
def status(
    workers: Annotated[
        int, typer.Option(min=1, help="ingest workers to look at (shouwang ingest --workers)")
    ] = 1,
) -> None:
    """What the database holds (devices, readings: the last minute and hour exact, rejects by
    reason, devices heard from) and each stage's state (running, idle, stuck, down) from its
    metrics endpoint."""
    from core.db import connect
    from shouwang.status import print_status, stage_states

    s = load_settings()
    with connect(s.database_url) as conn:
        print_status(conn, Console(), stage_states(s, workers=workers))


@app.command()
def rollup() -> None:
    """Bring the per-minute rollup of readings up to date now (analytics keeps it every 15 s)."""
    from analytics.rollup import catch_up
    from core.db import connect

    with connect(load_settings().database_url, autocommit=True) as conn:
        rows, passes = catch_up(conn, datetime.now(UTC))
    console.print(f"rollup up to date: {rows:,} rows written in {passes} pass(es)")


@app.command()
def health(
    db: Annotated[bool, typer.Option("--db", help="the database answers, schema migrated")] = False,
    broker: Annotated[bool, typer.Option("--broker", help="the broker answers MQTT")] = False,
    url: Annotated[list[str] | None, typer.Option(help="an HTTP URL that must answer 2xx")] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(
            help="a stage whose metrics endpoint must say it is running or idle, not stuck or"
            " down (repeatable): ingest, analytics, notify, api, gateway"
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="with --stage ingest: check this many ingest workers")
    ] = 1,
) -> None:
    """Check what a service depends on (all of it without options); exit 1 if anything fails.
    With ``--stage``: whether the stage is alive (its endpoint on metrics_host at its port),
    one line each: stage, state (running, idle, stuck, down) and why."""
    from rich.markup import escape

    from core import health as checks
    from core.metrics import STAGES

    s = load_settings()
    stages = stage or []
    unknown = [n for n in stages if n not in STAGES]
    if unknown:
        raise typer.BadParameter(
            f"no stage {', '.join(map(repr, unknown))}; the stages are {', '.join(STAGES)}",
            param_hint="--stage",
        )
    everything = not (db or broker or url or stages)
    results = []
    if db or everything:
        results.append(checks.database(s.database_url))
    if broker or everything:
        results.append(checks.broker(s.mqtt_host, s.mqtt_port))
    results.extend(checks.http(u) for u in url or [])
    for name in stages:
        results.extend(_stage_results(s, name, workers if name == "ingest" else 1))
    for ok, detail in results:
        console.print(f"[{'green' if ok else 'red'}]{'ok' if ok else 'FAIL'}[/] {escape(detail)}")
    if not all(ok for ok, _ in results):
        raise typer.Exit(1)


def _stage_results(s: Settings, stage: str, workers: int) -> list[tuple[bool, str]]:
    """The liveness of a stage (each of its ingest workers) as ``health`` prints it."""
    import time

    from core.metrics import STAGES, liveness, scrape
    from shouwang.stages import worker_ports

    base = s.metrics_port(stage)
    if base < 0:
        return [(False, f"{stage} down: it has no metrics endpoint (its port is -1)")]
    if base == 0:
        return [(False, f"{stage} down: its metrics port is 0 (any free port): set a fixed one")]
    others = {s.metrics_port(n) for n in STAGES if n != stage}
    ports = worker_ports(base, workers, others) if stage == "ingest" else [base]
    out = []
    for i, port in enumerate(ports):
        samples, error = scrape(s.metrics_host, port, stage)
        judged = liveness(stage, samples, time.time(), s.health_stuck_after_s, error)
        name = stage if len(ports) == 1 else f"{stage} worker {i}"
        out.append((judged.ok, f"{name} {judged.state}: {judged.detail} ({s.metrics_host}:{port})"))
    return out
