"""The command line: ``shouwang db``: the stages' database login roles (least privilege)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="The stages' database roles.")


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
