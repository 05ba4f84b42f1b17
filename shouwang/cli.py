"""The ``shouwang`` command: the root, with each module's commands and groups registered on it.
Each subcommand builds the settings once and hands values down.

Stages are imported inside their subcommands, so ``shouwang migrate`` does not load scikit-learn.
"""

from __future__ import annotations

import sys

import typer

from core.errors import ShouwangError
from shouwang import (
    api_commands,
    backup_commands,
    bench_commands,
    broker_commands,
    calendar_commands,
    dashboards_commands,
    db_commands,
    demo_commands,
    drill_commands,
    evaluation_commands,
    gateway_commands,
    maintenance_commands,
    operations,
    people_commands,
    phone_commands,
    platform_commands,
    stages,
    storage_commands,
)
from shouwang.console import console

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="shouwang (守望): residential IoT telemetry."
)
# Listed in this order in --help: the stages' commands first, then the groups.
app.add_typer(stages.app)
app.add_typer(operations.app)
app.add_typer(evaluation_commands.app)
app.add_typer(broker_commands.app, name="broker")
app.add_typer(gateway_commands.app, name="gateway")
app.add_typer(bench_commands.app, name="bench")
app.add_typer(drill_commands.app, name="drill")
app.add_typer(dashboards_commands.app, name="dashboards")
app.add_typer(api_commands.app, name="api")
app.add_typer(calendar_commands.app, name="calendar")
app.add_typer(platform_commands.app, name="platform")
app.add_typer(db_commands.app, name="db")
app.add_typer(people_commands.app, name="people")
app.add_typer(maintenance_commands.app, name="maintenance")
app.add_typer(phone_commands.app, name="phone")
app.add_typer(demo_commands.app, name="demo")
app.add_typer(backup_commands.app, name="backup")
app.add_typer(storage_commands.app)


@app.callback()
def _connect_as_configured() -> None:
    """Every MQTT client of this command connects as the settings say (plain or TLS)."""
    from core.mqtt import tls_of, use_tls
    from core.settings import load_settings

    use_tls(tls_of(load_settings()))


def main() -> None:
    try:
        app()
    except ShouwangError as e:
        console.print(f"[bold red]error:[/] {e}")
        sys.exit(2)


if __name__ == "__main__":
    main()
