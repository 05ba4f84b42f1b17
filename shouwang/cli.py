"""The ``shouwang`` command. Each subcommand builds the settings once and hands values down.

Stages are imported inside their subcommands, so ``shouwang migrate`` does not load scikit-learn.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

from core.errors import ShouwangError
from core.settings import load_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="shouwang (守望): residential IoT telemetry."
)
broker_app = typer.Typer(no_args_is_help=True, help="Device credentials and the broker's ACL.")
app.add_typer(broker_app, name="broker")
app.add_typer(broker_app, name="gateway", hidden=True)  # the earlier spelling
bench_app = typer.Typer(
    no_args_is_help=True, help="Benchmarks that print their figures and ratios."
)
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
    )


@app.command()
def migrate() -> None:
    """Apply pending schema migrations and sync the metric catalogue."""
    from core.db import connect
    from core.db import migrate as run_migrations

    s = load_settings()
    with connect(s.database_url) as conn:
        applied = run_migrations(conn)
    console.print(f"schema up to date ({len(applied)} migration(s) applied)")


@broker_app.command("sync")
def broker_sync(
    no_reload: Annotated[
        bool, typer.Option("--no-reload", help="write the files, do not signal the broker")
    ] = False,
) -> None:
    """Write the broker's password file and ACL from the registry; the broker reloads them."""
    from broker.sync import platform_services, sync
    from core.db import connect

    s = load_settings()
    passwd, acl, pid = s.broker_files()
    with connect(s.database_url) as conn:
        n, changed = sync(
            conn,
            platform_services(s),
            passwd=passwd,
            acl=acl,
            pid_file=pid,
            share_group=s.ingest_share_group,
            signal_broker=not no_reload,
        )
    console.print(
        f"{n} broker accounts; files {'updated' if changed else 'unchanged'} ({passwd}, {acl})"
    )


@broker_app.command("broker-config")
def broker_broker_config(
    directory: Annotated[Path, typer.Option("--dir", help="where the broker's files live")],
    port: int = 18883,
    host: str = "127.0.0.1",
) -> None:
    """Print the Mosquitto configuration of a platform broker."""
    from broker.files import broker_config

    directory.mkdir(parents=True, exist_ok=True)
    print(broker_config(host=host, port=port, directory=directory.resolve()), end="")


@broker_app.command("issue")
def broker_issue(uid: str) -> None:
    """Issue (or rotate) the credential of a device or gateway; prints the password once."""
    from broker.accounts import issue
    from core.db import connect

    s = load_settings()
    with connect(s.database_url) as conn:
        password = issue(conn, uid)
    print(password, flush=True)  # before the reload, which may fail: the credential exists now
    broker_sync(no_reload=False)


@broker_app.command("issue-duty-app")
def broker_issue_duty_app(person_id: int) -> None:
    """Issue (or rotate) a person's duty-app credential: prints username, password and topic,
    and makes the person reachable there (an 'mqtt' contact channel)."""
    from broker.accounts import issue_person
    from core.db import connect
    from core.wire import duty_topic

    s = load_settings()
    with connect(s.database_url) as conn:
        username, password = issue_person(conn, person_id)
        conn.execute(
            "INSERT INTO contact_channels (person_id, kind, address) VALUES (%s, 'mqtt', %s)"
            " ON CONFLICT DO NOTHING",
            (person_id, username),
        )
    print(f"username {username}\npassword {password}\ntopic    {duty_topic(username)}", flush=True)
    broker_sync(no_reload=False)


@broker_app.command("revoke")
def broker_revoke(uid: str) -> None:
    """Revoke a device's or gateway's credential; the broker refuses it from now on."""
    from broker.accounts import revoke
    from core.db import connect

    s = load_settings()
    with connect(s.database_url) as conn:
        revoke(conn, uid)
    broker_sync(no_reload=False)


@app.command()
def seed(
    communities: int = 20,
    buildings: int = 17,
    random_seed: Annotated[int, typer.Option("--seed")] = 7,
    report_interval: Annotated[int, typer.Option(help="seconds between a device's reports")] = 10,
) -> None:
    """Load the demo county into the registry and issue its credentials (idempotent)."""
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
    with connect(s.database_url) as conn:
        secrets = run_seed(conn, county, s.state_dir / "device-secrets.json")
    broker_sync(no_reload=False)
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
) -> None:
    """Stream simulated devices to the broker with their own credentials."""
    from simulators.stream import main as sim_main

    _setup_logging()
    sim_main(
        load_settings(),
        speed=speed,
        duration=duration,
        start_ago=start_ago,
        communities=community or [],
        limit=limit,
        record=record,
        seed=random_seed,
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
) -> None:
    """Store every reading from the broker in TimescaleDB (runs until stopped)."""
    from ingest.__main__ import main as ingest_main
    from ingest.__main__ import retire_worker

    _setup_logging()
    if retire is not None:
        retire_worker(load_settings(), retire)
        return
    if workers > 1:
        from shouwang.workers import run_workers

        ids = [f"shouwang-ingest-{i}" for i in range(workers)]
        run_workers("ingest", [["ingest", "--client-id", i] for i in ids])
        return
    ingest_main(load_settings(), client_id=client_id)


@app.command()
def analytics(
    clock: Annotated[
        str, typer.Option(help="wall, or data: the newest reading's time (replays, fast-forward)")
    ] = "wall",
) -> None:
    """Detect faults and anomalies, keep alarms, file work orders (runs until stopped)."""
    from analytics.__main__ import main as analytics_main

    _setup_logging()
    analytics_main(load_settings(), clock=clock)


@app.command("notify")
@app.command("dispatch", hidden=True)  # the earlier spelling
def notify(
    name: Annotated[
        str, typer.Option(help="this dispatcher's name in the outbox claims")
    ] = "notify-0",
) -> None:
    """Deliver alarm notifications from the outbox to the people on duty (runs until stopped)."""
    from notify.__main__ import main as notify_main

    _setup_logging()
    notify_main(load_settings(), name=name)


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

    _setup_logging()
    demo_main(load_settings(), speed=speed, workers=workers)


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
    from datetime import UTC, datetime

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


@bench_app.command("ingest")
def bench_ingest(
    seconds: Annotated[float, typer.Option(help="length of each measured phase")] = 10.0,
    batch: Annotated[int, typer.Option(help="readings per message in the batched phase")] = 50,
    devices: int = 200,
) -> None:
    """Broker pass-through vs raw COPY vs end-to-end ingest, in one run."""
    from bench.ingest import main as bench_main

    _setup_logging()
    bench_main(load_settings(), seconds=seconds, batch=batch, devices=devices)


@bench_app.command("alarms")
def bench_alarms(
    triggers: Annotated[int, typer.Option(help="faults to raise, one per elevator")] = 200,
    warmup: Annotated[
        float, typer.Option(help="seconds of nominal load before the first fault")
    ] = 20.0,
) -> None:
    """Publish-to-alarm-and-work-order latency under the demo county's nominal load."""
    from bench.alarms import main as bench_main

    _setup_logging()
    bench_main(load_settings(), triggers=triggers, warmup_s=warmup)


@bench_app.command("notify")
def bench_notify(
    triggers: Annotated[int, typer.Option(help="P0 faults to raise, one per elevator")] = 100,
    warmup: Annotated[
        float, typer.Option(help="seconds of nominal load before the first fault")
    ] = 20.0,
) -> None:
    """Publish-to-webhook latency of P0 notifications under the demo county's nominal load."""
    from bench.notify import main as bench_main

    _setup_logging()
    bench_main(load_settings(), triggers=triggers, warmup_s=warmup)


@bench_app.command("replay")
def bench_replay(
    rows: Annotated[int, typer.Option(help="rows of the generated CSV")] = 1_000_000,
) -> None:
    """Replay speed on a generated CSV with its own column names, separator and time format."""
    from bench.replay import bench

    console.print(bench(rows))


@bench_app.command("api")
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
    from bench.api import Load
    from bench.api import main as bench_main

    _setup_logging()
    load = Load(clients=clients, seconds=seconds, max_requests=requests, interval=interval)
    bench_main(load_settings(), load, url=url, workers=workers, firm=firm)


dashboards_app = typer.Typer(
    no_args_is_help=True, help="Grafana dashboards as code: publish, export, database access."
)
app.add_typer(dashboards_app, name="dashboards")


@dashboards_app.command("publish")
def dashboards_publish(
    audience: Annotated[
        list[str] | None, typer.Option(help="only these folders: firm, equipment, regulator")
    ] = None,
    update_password: Annotated[
        bool, typer.Option(help="write SHOUWANG_GRAFANA_DB_PASSWORD to an existing data source")
    ] = False,
) -> None:
    """Upsert the folders, the data source and the dashboards in Grafana (unchanged: skipped)."""
    from dashboards.commands import publish

    for change in publish(load_settings(), audience or [], update_password=update_password):
        console.print(str(change))


@dashboards_app.command("export")
def dashboards_export(
    directory: Annotated[Path, typer.Argument(help="Grafana's provisioning directory")],
    db_name: Annotated[str, typer.Option(help="the database the data source reads")] = "shouwang",
    db_user: Annotated[
        str | None, typer.Option(help="its login role (default: grant-regulator's)")
    ] = None,
) -> None:
    """Write the data source, the dashboard providers and the dashboards for file provisioning."""
    from dashboards.commands import export_files

    for path in export_files(load_settings(), directory, database=db_name, user=db_user):
        console.print(str(path))


@dashboards_app.command("grant-firm")
def dashboards_grant_firm(
    firm: Annotated[str, typer.Argument(help="firm code, e.g. F01")],
    role: Annotated[str | None, typer.Option(help="login role (default dash_firm_<code>)")] = None,
    password: Annotated[
        str | None, typer.Option(help="default: SHOUWANG_GRAFANA_DB_PASSWORD, else a new one")
    ] = None,
) -> None:
    """Create (or rotate) a firm's read-only login role; prints the data source credentials."""
    from dashboards.commands import credentials_text, grant

    creds = grant(load_settings(), firm=firm, role=role, password=password)
    print(credentials_text(creds), flush=True)


@dashboards_app.command("grant-township")
def dashboards_grant_township(
    region: Annotated[str, typer.Argument(help="township or community centre code")],
    role: Annotated[
        str | None, typer.Option(help="login role (default dash_region_<code>)")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="default: SHOUWANG_GRAFANA_DB_PASSWORD, else a new one")
    ] = None,
) -> None:
    """Create (or rotate) a township supervisor's read-only login role: its communities, the
    firms running them and their work orders; prints the data source credentials."""
    from dashboards.commands import credentials_text, grant

    creds = grant(load_settings(), firm=None, township=region, role=role, password=password)
    print(credentials_text(creds), flush=True)


@dashboards_app.command("grant-regulator")
def dashboards_grant_regulator(
    role: Annotated[str | None, typer.Argument(help="login role (default dash_regulator)")] = None,
    password: Annotated[
        str | None, typer.Option(help="default: SHOUWANG_GRAFANA_DB_PASSWORD, else a new one")
    ] = None,
) -> None:
    """Create (or rotate) a read-only login role that reads every firm; prints the credentials."""
    from dashboards.commands import credentials_text, grant

    creds = grant(load_settings(), firm=None, role=role, password=password)
    print(credentials_text(creds), flush=True)


@dashboards_app.command("revoke")
def dashboards_revoke(role: Annotated[str, typer.Argument(help="login role name")]) -> None:
    """Drop a dashboards login role."""
    from dashboards.commands import drop

    console.print(f"{role}: {'dropped' if drop(load_settings(), role) else 'no such role'}")


api_app = typer.Typer(
    invoke_without_command=True, help="The HTTP API: serve it (the default), manage its tokens."
)
app.add_typer(api_app, name="api")
api_token_app = typer.Typer(no_args_is_help=True, help="API tokens: issue, revoke, list.")
api_app.add_typer(api_token_app, name="token")


@api_app.callback()
def api_default(ctx: typer.Context) -> None:
    """Serve the HTTP API (`shouwang api` is `shouwang api serve`); docs at /docs."""
    if ctx.invoked_subcommand is None:
        api_serve()


@api_app.command("serve")
def api_serve(
    host: Annotated[str | None, typer.Option(help="default: SHOUWANG_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: SHOUWANG_API_PORT")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="uvicorn worker processes (settings from the environment)")
    ] = 1,
) -> None:
    """Serve the HTTP API with uvicorn until stopped."""
    from api.__main__ import main as api_main

    _setup_logging()
    api_main(load_settings(), host=host, port=port, workers=workers)


@api_token_app.command("issue")
def api_token_issue(
    role: Annotated[str, typer.Option(help="county_regulator, township, firm_admin, ...")],
    name: Annotated[str, typer.Option(help="who holds the token")],
    firm: Annotated[str | None, typer.Option(help="firm code (firm_admin, duty_staff)")] = None,
    region: Annotated[str | None, typer.Option(help="region code (township)")] = None,
    community: Annotated[str | None, typer.Option(help="community code (duty_staff)")] = None,
    unit: Annotated[str | None, typer.Option(help="maintenance unit code")] = None,
) -> None:
    """Issue an API token; prints it once (only its hash is kept)."""
    from api.tokens import issue
    from core.db import connect

    given = {"firm": firm, "region": region, "community": community, "unit": unit}
    with connect(load_settings().database_url) as conn:
        issued = issue(conn, role, name, {k: v for k, v in given.items() if v is not None})
        conn.commit()
    console.print(f"token {issued.id} for {name} ({role}); it is shown only now:")
    print(issued.token, flush=True)


@api_token_app.command("revoke")
def api_token_revoke(token_id: Annotated[int, typer.Argument(help="the token's id")]) -> None:
    """Revoke an API token; it stops working within SHOUWANG_API_TOKEN_CACHE_S (5 s)."""
    from api.tokens import revoke
    from core.db import connect

    with connect(load_settings().database_url) as conn:
        revoke(conn, token_id)
        conn.commit()
    console.print(f"token {token_id} revoked")


@api_token_app.command("list")
def api_token_list() -> None:
    """The API tokens: id, role, scope, holder, issued, revoked (never the secrets)."""
    from api.tokens import list_tokens
    from core.db import connect

    with connect(load_settings().database_url) as conn:
        for t in list_tokens(conn):
            revoked = f"\trevoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else ""
            created = f"{t.created_at:%Y-%m-%d}"
            print(f"{t.id}\t{t.role}\t{t.scope or 'county'}\t{t.name}\t{created}{revoked}")


calendar_app = typer.Typer(
    no_args_is_help=True, help="Working days: the State Council's yearly holiday schedules."
)
app.add_typer(calendar_app, name="calendar")


@calendar_app.command("check")
def calendar_check(file: Annotated[Path, typer.Argument(help="a year's schedule (YAML)")]) -> None:
    """Check a holiday schedule file; every problem is printed with its line. Nothing is stored."""
    from core.holiday_schedule import read_schedule

    _, schedule = read_schedule(file)
    console.print(
        f"{file}: {schedule.year} schedule is valid: {len(schedule.days_off)} day(s) off in"
        f" {len(schedule.holidays)} holiday(s), {len(schedule.workdays)} working weekend day(s);"
        f" source: {schedule.notice.title}"
    )


@calendar_app.command("load")
def calendar_load(
    file: Annotated[Path, typer.Argument(help="a year's schedule (YAML)")],
    by: Annotated[str, typer.Option(help="who loads it, for the record")] = "county operator",
) -> None:
    """Load a year's holiday schedule (checked first); a changed schedule becomes a new version.
    Analytics takes it within 30 s, for work orders filed from then on."""
    from core.db import connect
    from core.holiday_schedule import read_schedule
    from core.holiday_store import store

    text, schedule = read_schedule(file)
    with connect(load_settings().database_url) as conn:
        stored = store(conn, schedule, text, file.name, by)
    if stored.created:
        console.print(f"{stored.year} holiday schedule loaded as version {stored.version}")
    else:
        console.print(
            f"{stored.year} holiday schedule unchanged: version {stored.version} already has"
            " this content"
        )


@calendar_app.command("status")
def calendar_status() -> None:
    """Where working days come from for last, this and next year, and what is missing."""
    from core.db import connect
    from core.holiday_store import calendar_in_force

    s = load_settings()
    with connect(s.database_url) as conn:
        cal = calendar_in_force(conn, s.work_calendar)
        versions: dict[int, int] = dict(
            conn.execute(
                "SELECT year, max(version) FROM holiday_schedules GROUP BY year"
            ).fetchall()
        )
    today = datetime.now(cal.tz).date()
    said = {
        "schedule": "loaded schedule",
        "library": "chinese-calendar package",
        "weekdays": "MONDAY TO FRIDAY (no schedule)",
        "not used": "Monday to Friday (use_statutory: false)",
    }
    for year in range(today.year - 1, today.year + 2):
        source = cal.source(year)
        version = f" v{versions[year]}" if source == "schedule" else ""
        console.print(f"{year}: {said[source]}{version}")
    for w in cal.warnings(today):
        console.print(f"[bold red]warning:[/] {w}")


def main() -> None:
    try:
        app()
    except ShouwangError as e:
        console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
