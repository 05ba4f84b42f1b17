"""The command line: ``shouwang db``: the schema's upgrade (``db migrate``: the TimescaleDB
extension, then the migrations) and the stages' database login roles (least privilege)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="The schema's upgrade and the stages' database roles.")


@app.command("migrate")
def db_migrate(
    accept: Annotated[
        list[int] | None,
        typer.Option(
            help="record this applied migration's file as it is now (it was changed on purpose "
            "and the database made to match by hand); repeatable"
        ),
    ] = None,
) -> None:
    """Update the TimescaleDB extension to the server's version, apply pending schema
    migrations and sync the metric catalogue. Refuses, changing nothing, when an applied
    migration's file changed since."""
    from core.audit import cli_actor
    from core.db import connect, migrate
    from core.extension import upgrade

    url = load_settings().database_url
    console.print(upgrade(url).sentence())  # first: before the migrations load the extension
    with connect(url, actor=cli_actor()) as conn:
        applied = migrate(conn, accept=accept or [])
    console.print(f"schema up to date ({len(applied)} migration(s) applied)")


@app.command("login")
def db_login(
    stage: Annotated[str, typer.Argument(help="ingest, analytics, notify or api")],
    password_env: Annotated[
        str,
        typer.Option(
            help="the environment variable that holds the password (not on the command line)"
        ),
    ],
    role: Annotated[
        str | None, typer.Option(help="login role name (default shouwang_<stage>_login)")
    ] = None,
) -> None:
    """Create (or give a new password to) a stage's login role, a member of that stage's role
    only; run as the database owner after 'shouwang migrate'."""
    from core.db import connect
    from core.errors import ConfigError
    from core.roles import STAGE_ROLES, login

    password = os.environ.get(password_env, "")
    if not password:
        raise ConfigError(password_env, "not set or empty; set it to the stage's database password")
    with connect(load_settings().database_url, autocommit=True) as conn:
        name = login(conn, stage, password, role)
    console.print(f"{name}: login role of {STAGE_ROLES[stage]}")
