"""The command line: ``shouwang dashboards``: Grafana dashboards as code (publish, export) and the
read-only database roles they log in with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(
    no_args_is_help=True, help="Grafana dashboards as code: publish, export, database access."
)

Password = Annotated[
    str | None, typer.Option(help="default: SHOUWANG_GRAFANA_DB_PASSWORD, else a new one")
]


@app.command("publish")
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


@app.command("export")
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


def _grant(
    *, firm: str | None, role: str | None, password: str | None, township: str | None = None
) -> None:
    """Create (or rotate) a login role and print its data source credentials."""
    from dashboards.commands import credentials_text, grant

    creds = grant(load_settings(), firm=firm, township=township, role=role, password=password)
    print(credentials_text(creds), flush=True)


@app.command("grant-firm")
def dashboards_grant_firm(
    firm: Annotated[str, typer.Argument(help="firm code, e.g. F01")],
    role: Annotated[str | None, typer.Option(help="login role (default dash_firm_<code>)")] = None,
    password: Password = None,
) -> None:
    """Create (or rotate) a firm's read-only login role; prints the data source credentials."""
    _grant(firm=firm, role=role, password=password)


@app.command("grant-township")
def dashboards_grant_township(
    region: Annotated[str, typer.Argument(help="township or community centre code")],
    role: Annotated[
        str | None, typer.Option(help="login role (default dash_region_<code>)")
    ] = None,
    password: Password = None,
) -> None:
    """Create (or rotate) a township supervisor's read-only login role: its communities, the
    firms running them and their work orders; prints the data source credentials."""
    _grant(firm=None, township=region, role=role, password=password)


@app.command("grant-regulator")
def dashboards_grant_regulator(
    role: Annotated[str | None, typer.Argument(help="login role (default dash_regulator)")] = None,
    password: Password = None,
) -> None:
    """Create (or rotate) a read-only login role that reads every firm; prints the credentials."""
    _grant(firm=None, role=role, password=password)


@app.command("revoke")
def dashboards_revoke(role: Annotated[str, typer.Argument(help="login role name")]) -> None:
    """Drop a dashboards login role."""
    from dashboards.commands import drop

    console.print(f"{role}: {'dropped' if drop(load_settings(), role) else 'no such role'}")
