"""The command line: operating the platform (``shouwang train|replay|up|status|rollup|health``):
the detectors' models and a back-test of them, everything at once, and what is there now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.settings import load_settings
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
    src: Annotated[Path, typer.Argument(help="CSV of historical readings")],
    out: Annotated[Path, typer.Option(help="CSV of the alarms the detectors would have raised")],
    time_column: Annotated[str, typer.Option(help="name of the time column")],
    columns: Annotated[str, typer.Option(help="comma-separated numeric columns to use")],
    sep: Annotated[str, typer.Option(help="field separator")] = ",",
    time_format: Annotated[
        str, typer.Option(help="iso, epoch_s, epoch_ms or a strptime format")
    ] = "iso",
    calibrate_rows: Annotated[
        int | None, typer.Option(help="calibrate on the first N rows")
    ] = None,
    calibrate_until: Annotated[
        datetime | None, typer.Option(help="calibrate on rows up to this time (naive: UTC+8)")
    ] = None,
    baseline_columns: Annotated[
        str | None, typer.Option(help="columns for the per-column baselines (default all; '' none)")
    ] = None,
    multivariate_columns: Annotated[
        str | None, typer.Option(help="columns for the multivariate model (default all; '' none)")
    ] = None,
) -> None:
    """Back-test the learned detectors on exported data: stream a CSV through them, write alarms."""
    from analytics.replay import replay as run_replay

    if (calibrate_rows is None) == (calibrate_until is None):
        raise typer.BadParameter("give exactly one of --calibrate-rows and --calibrate-until")

    def names(text: str | None) -> list[str] | None:
        return None if text is None else [c for c in text.split(",") if c]

    stats = run_replay(
        src,
        out,
        time_column=time_column,
        columns=names(columns) or [],
        sep=sep,
        time_format=time_format,
        calibrate_rows=calibrate_rows,
        calibrate_until=calibrate_until,
        baseline_columns=names(baseline_columns),
        multivariate_columns=names(multivariate_columns),
    )
    console.print(stats)


@app.command()
def up(
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 1.0,
    workers: int = 1,
) -> None:
    """Run the platform's main job: ingest workers and the simulator, until Ctrl-C."""
    from shouwang.up import main as demo_main

    run_logged(demo_main, speed=speed, workers=workers)


@app.command()
def status() -> None:
    """What the database holds: devices, readings, rejects by reason, devices heard from."""
    from core.db import connect
    from shouwang.status import print_status

    with connect(load_settings().database_url) as conn:
        print_status(conn, Console())


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
) -> None:
    """Check what a service depends on (all of it without options); exit 1 if anything fails."""
    from core import health as checks

    s = load_settings()
    everything = not (db or broker or url)
    results = []
    if db or everything:
        results.append(checks.database(s.database_url))
    if broker or everything:
        results.append(checks.broker(s.mqtt_host, s.mqtt_port))
    results.extend(checks.http(u) for u in url or [])
    for ok, detail in results:
        console.print(f"[{'green' if ok else 'red'}]{'ok' if ok else 'FAIL'}[/] {detail}")
    if not all(ok for ok, _ in results):
        raise typer.Exit(1)
