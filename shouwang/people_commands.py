"""The command line: ``shouwang people set-password``: give a person on the duty roster a phone
number and password for the duty pages (docs/pages.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from core.errors import ConfigError
from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="People of the duty roster: their page logins.")


@app.command("set-password")
def people_set_password(
    person_id: Annotated[int, typer.Argument(help="the person's id (GET /v1/people)")],
    phone: Annotated[str, typer.Option(help="the phone number they sign in with")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from standard input")
    ] = False,
) -> None:
    """Set a person's phone number and password (asked twice, not echoed); their open sessions
    end and any lock is lifted."""
    from datetime import UTC, datetime

    from api.pages.passwords import PasswordRule
    from api.pages.sessions import set_password
    from core.audit import cli_actor
    from core.db import connect

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    with connect(load_settings().database_url, actor=cli_actor()) as conn:
        try:
            stored = set_password(conn, person_id, phone, password, datetime.now(UTC))
        except PasswordRule as e:
            raise ConfigError(f"person {person_id}", str(e)) from None
        conn.commit()
    console.print(f"person {person_id} signs in to the duty pages as {stored}")
