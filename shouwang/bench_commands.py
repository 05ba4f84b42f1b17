"""The command line: ``shouwang bench``: the benchmark harnesses of ``bench/``. Each command is
only its options: it hands them to the harness's ``main`` through
:func:`shouwang.console.run_logged`. A harness prints its figures and ratios (and targets, where
it states them); a missed target shows there, not in the exit status (a harness that cannot run
raises ``SystemExit`` itself). ``replay`` needs neither the platform nor the settings."""

from __future__ import annotations

from typing import Annotated

import typer

from shouwang.console import console, run_logged

app = typer.Typer(no_args_is_help=True, help="Benchmarks that print their figures and ratios.")

Warmup = Annotated[float, typer.Option(help="seconds of nominal load before the first fault")]


@app.command("ingest")
def bench_ingest(
    seconds: Annotated[float, typer.Option(help="length of each measured phase")] = 10.0,
    batch: Annotated[int, typer.Option(help="readings per message in the batched phase")] = 50,
    devices: int = 200,
) -> None:
    """Broker pass-through vs raw COPY vs end-to-end ingest, in one run."""
    from bench.ingest import main

    run_logged(main, seconds=seconds, batch=batch, devices=devices)


@app.command("alarms")
def bench_alarms(
    triggers: Annotated[int, typer.Option(help="faults to raise, one per elevator")] = 200,
    warmup: Warmup = 20.0,
) -> None:
    """Publish-to-alarm-and-work-order latency under the demo county's nominal load."""
    from bench.alarms import main

    run_logged(main, triggers=triggers, warmup_s=warmup)


@app.command("notify")
def bench_notify(
    triggers: Annotated[int, typer.Option(help="P0 faults to raise, one per elevator")] = 100,
    warmup: Warmup = 20.0,
) -> None:
    """Publish-to-webhook latency of P0 notifications under the demo county's nominal load."""
    from bench.notify import main

    run_logged(main, triggers=triggers, warmup_s=warmup)


@app.command("replay")
def bench_replay(
    rows: Annotated[int, typer.Option(help="rows of the generated CSV")] = 1_000_000,
) -> None:
    """Replay speed on a generated CSV with its own column names, separator and time format."""
    from bench.replay import bench

    # Offline: no platform, no settings; the figures are what bench() returns.
    console.print(bench(rows))


@app.command("api")
def bench_api(
    seconds: Annotated[float, typer.Option(help="measured time per endpoint")] = 20.0,
    clients: Annotated[int, typer.Option(help="concurrent clients")] = 50,
    requests: Annotated[
        int | None, typer.Option(help="stop an endpoint's phase after this many requests")
    ] = None,
    interval: Annotated[
        float, typer.Option(help="each client sends one request every S seconds; 0: back to back")
    ] = 0.0,
    url: Annotated[
        str | None, typer.Option(help="a running API (same database); default: start one")
    ] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    firm: Annotated[str | None, typer.Option(help="firm code (default: the largest)")] = None,
) -> None:
    """HTTP API under concurrent clients: latest device state and open alarms, p50 / p99."""
    from bench.api import Load, main

    load = Load(clients=clients, seconds=seconds, max_requests=requests, interval=interval)
    run_logged(main, load, url=url, workers=workers, firm=firm)


@app.command("gateway")
def bench_gateway(
    devices: Annotated[int, typer.Option(help="Modbus devices the gateway polls")] = 500,
    interval: Annotated[float, typer.Option(help="seconds between polls of a device")] = 1.0,
    seconds: Annotated[float, typer.Option(help="length of the measured polling window")] = 20.0,
    outage: Annotated[float, typer.Option(help="seconds the broker is down")] = 60.0,
    per_port: Annotated[int, typer.Option(help="unit ids per Modbus TCP server port")] = 50,
    batch_interval: Annotated[
        float, typer.Option(help="the gateway's uplink.batch_interval_s")
    ] = 2.0,
    reference: Annotated[
        int, typer.Option(help="readings of the batched ingest reference phase")
    ] = 300_000,
    batch_bytes: Annotated[int, typer.Option(help="the gateway's uplink.batch_max_bytes")] = 128
    * 1024,
) -> None:
    """One gateway process: devices and registers polled per second, CPU, RSS, and the drain of
    an outage's backlog against the platform's batched ingest rate."""
    from bench.gateway import Plan, main

    plan = Plan(
        devices, interval, seconds, outage, per_port, batch_interval, reference, batch_bytes
    )
    run_logged(main, plan)


@app.command("pages")
def bench_pages(
    seconds: Annotated[float, typer.Option(help="measured time per page")] = 20.0,
    sessions: Annotated[int, typer.Option(min=1, help="concurrent signed-in officers")] = 50,
    requests: Annotated[
        int | None, typer.Option(help="stop a page's phase after this many requests")
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="a running API (same database); default: start one")
    ] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
    firm: Annotated[str | None, typer.Option(help="firm code (default: the largest)")] = None,
) -> None:
    """Duty pages under concurrent signed-in sessions: home and alarm pages, p50 / p99."""
    from bench.api import Load
    from bench.pages import main

    load = Load(clients=sessions, seconds=seconds, max_requests=requests)
    run_logged(main, load, url=url, workers=workers, firm=firm)


@app.command("capacity")
def bench_capacity(
    start: Annotated[int, typer.Option(help="devices in the first step")] = 2_000,
    factor: Annotated[float, typer.Option(help="each step has this many times the devices")] = 1.5,
    max_devices: Annotated[int, typer.Option(help="stop after the step with this many")] = 30_000,
    step_seconds: Annotated[float, typer.Option(help="measured seconds per step")] = 60.0,
    warmup: Annotated[
        float, typer.Option(help="seconds of streaming before each step's measurement")
    ] = 15.0,
    max_seconds: Annotated[
        float, typer.Option(help="time budget of the whole run; no step starts beyond it")
    ] = 900.0,
    fault_interval: Annotated[float, typer.Option(help="seconds between P0 faults")] = 1.0,
    retries: Annotated[
        int, typer.Option(min=0, help="runs again of a step that missed an objective")
    ] = 1,
    keep_going: Annotated[
        bool, typer.Option(help="step on to --max-devices past a broken objective (the curve)")
    ] = False,
) -> None:
    """Devices one machine carries with every stage running (scratch database and broker), step
    by step until a service objective breaks; each stage's CPU share."""
    from bench.capacity import Plan, main

    plan = Plan(
        start=start,
        factor=factor,
        max_devices=max_devices,
        step_seconds=step_seconds,
        warmup_seconds=warmup,
        max_seconds=max_seconds,
        fault_interval_s=fault_interval,
        retries=retries,
        keep_going=keep_going,
    )
    run_logged(main, plan)
