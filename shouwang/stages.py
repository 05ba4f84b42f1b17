"""The command line: the schema, the demo county, and the platform's stages as processes
(``shouwang migrate|seed|simulate|ingest|analytics|notify``)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Annotated

import typer

from core.metrics import STAGES
from core.settings import load_settings
from shouwang.broker_commands import broker_sync
from shouwang.console import console, run_logged, setup_logging

app = typer.Typer()


@app.command()
def migrate() -> None:
    """Update the TimescaleDB extension, apply pending schema migrations and sync the metric
    catalogue (as 'shouwang db migrate')."""
    from shouwang.db_commands import db_migrate

    db_migrate(accept=None)


@app.command()
def seed(
    communities: int = 20,
    buildings: int = 17,
    random_seed: Annotated[int, typer.Option("--seed")] = 7,
    report_interval: Annotated[int, typer.Option(help="seconds between a device's reports")] = 10,
    no_reload: Annotated[
        bool, typer.Option("--no-reload", help="write the broker's files, do not signal it")
    ] = False,
) -> None:
    """Load the demo county into the registry and issue its credentials (idempotent)."""
    from core.audit import cli_actor
    from core.db import connect
    from simulators.county import demo_county
    from simulators.seed import seed as run_seed

    s = load_settings()
    county = demo_county(
        communities=communities,
        buildings=buildings,
        seed=random_seed,
        report_interval_s=report_interval,
    )
    with connect(s.database_url, actor=cli_actor()) as conn:
        secrets = run_seed(conn, county, s.state_dir / "device-secrets.json")
    broker_sync(no_reload=no_reload)
    console.print(
        f"demo county: {len(county.communities)} communities, {len(county.devices())} devices, "
        f"{len(secrets)} credentials in {s.state_dir / 'device-secrets.json'}"
    )


@app.command()
def simulate(
    speed: Annotated[
        float, typer.Option(help="simulated seconds per wall second; 0 = as fast as possible")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="simulated seconds to run (default: until Ctrl-C)")
    ] = None,
    start_ago: Annotated[
        float | None, typer.Option(help="start the simulated clock this many seconds ago")
    ] = None,
    community: Annotated[list[str] | None, typer.Option(help="only these community codes")] = None,
    limit: Annotated[int | None, typer.Option(help="at most this many devices")] = None,
    record: Annotated[
        Path | None, typer.Option(help="append every published reading to this CSV")
    ] = None,
    random_seed: Annotated[int, typer.Option("--seed")] = 7,
    silence: Annotated[
        list[str] | None,
        typer.Option(help="this device publishes nothing from --silence-after on (repeatable)"),
    ] = None,
    silence_after: Annotated[
        float, typer.Option(help="simulated seconds into the stream when --silence devices stop")
    ] = 0.0,
) -> None:
    """Stream simulated devices to the broker with their own credentials."""
    from simulators.stream import main as sim_main

    run_logged(
        sim_main,
        speed=speed,
        duration=duration,
        start_ago=start_ago,
        communities=community or [],
        limit=limit,
        record=record,
        seed=random_seed,
        silent=silence or [],
        silent_after=silence_after,
    )


@app.command()
def ingest(
    workers: Annotated[int, typer.Option(help="worker processes sharing the subscription")] = 1,
    client_id: Annotated[
        str | None, typer.Option(help="MQTT client id (a persistent session)")
    ] = None,
    retire: Annotated[
        str | None,
        typer.Option(
            help="end this worker id's broker session instead (what it still holds is dropped)"
        ),
    ] = None,
    shared: Annotated[
        bool,
        typer.Option(help="share the subscription with other workers (what --workers sets)"),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=-1,
            max=65535,
            help="this worker's metrics port (default SHOUWANG_METRICS_PORT_INGEST; with"
            " --workers N, worker 0 gets it and the others the ports after it, skipping the"
            " other stages' ports; 0: any free port, -1: none)",
        ),
    ] = None,
) -> None:
    """Store every reading from the broker in TimescaleDB (runs until stopped)."""
    from ingest.__main__ import main as ingest_main
    from ingest.__main__ import retire_worker

    s = load_settings()
    setup_logging("ingest", fmt=s.log_format)
    if retire is not None:
        retire_worker(s, retire)
        return
    if workers > 1:
        from shouwang.supervisor import Supervisor, run_until_signalled

        base = s.metrics_port("ingest") if metrics_port is None else metrics_port
        others = {s.metrics_port(stage) for stage in STAGES if stage != "ingest"}
        ports = worker_ports(base, workers, others)
        run_until_signalled(
            Supervisor(
                {
                    f"shouwang-ingest-{i}": [
                        "ingest",
                        "--client-id",
                        f"shouwang-ingest-{i}",
                        "--shared",
                        "--metrics-port",
                        str(port),
                    ]
                    for i, port in enumerate(ports)
                }
            )
        )
        return
    ingest_main(s, client_id=client_id, shared=shared, metrics_port=metrics_port)


def worker_ports(base: int, workers: int, taken: Collection[int] = ()) -> list[int]:
    """Each ingest worker's metrics port (pure): worker 0 on ``base``, each next one on the
    next port up that is not ``taken`` (the other stages' ports): with the defaults 9461, 9466,
    9467, ... ``base`` 0 (any free port) and -1 (none) stay as they are for every worker."""
    if base <= 0:
        return [base] * workers
    ports = [base]
    while len(ports) < workers:
        port = ports[-1] + 1
        while port in taken:
            port += 1
        ports.append(port)
    if ports[-1] > 65535:
        raise typer.BadParameter(
            f"{workers} workers need metrics ports {base}..{ports[-1]}, beyond 65535;"
            " set SHOUWANG_METRICS_PORT_INGEST lower",
            param_hint="--workers",
        )
    return ports


@app.command()
def analytics(
    clock: Annotated[
        str, typer.Option(help="wall, or data: the newest reading's time (replays, fast-forward)")
    ] = "wall",
) -> None:
    """Detect faults and anomalies, keep alarms, file work orders (runs until stopped)."""
    from analytics.__main__ import main as analytics_main

    run_logged(analytics_main, clock=clock)


@app.command("notify")
@app.command("dispatch", hidden=True)  # the earlier spelling
def notify(
    name: Annotated[
        str, typer.Option(help="this notify process's name in the outbox claims")
    ] = "notify-0",
) -> None:
    """Deliver alarm notifications from the outbox to the people on duty (runs until stopped)."""
    from notify.__main__ import main as notify_main

    run_logged(notify_main, name=name)
