"""The command line: ``shouwang api``: serve the HTTP API (the default) and manage its tokens
(``shouwang api token issue|revoke|list``)."""

from __future__ import annotations

from typing import Annotated

import typer

from core.settings import load_settings
from shouwang.console import console, run_logged

app = typer.Typer(
    invoke_without_command=True, help="The HTTP API: serve it (the default), manage its tokens."
)
token_app = typer.Typer(no_args_is_help=True, help="API tokens: issue, revoke, list.")
app.add_typer(token_app, name="token")


@app.callback()
def api_default(ctx: typer.Context) -> None:
    """Serve the HTTP API (`shouwang api` is `shouwang api serve`); docs at /docs."""
    if ctx.invoked_subcommand is None:
        api_serve()


@app.command("serve")
def api_serve(
    host: Annotated[str | None, typer.Option(help="default: SHOUWANG_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: SHOUWANG_API_PORT")] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="uvicorn worker processes (settings from the environment)")
    ] = 1,
) -> None:
    """Serve the HTTP API with uvicorn until stopped."""
    from api.__main__ import main as api_main

    run_logged(api_main, host=host, port=port, workers=workers)


@token_app.command("issue")
def api_token_issue(
    role: Annotated[
        str,
        typer.Option(
            help="county_regulator, township, firm_admin, duty_staff, maintenance_unit or"
            " platform_operator (no scope option)"
        ),
    ],
    name: Annotated[str, typer.Option(help="who holds the token")],
    firm: Annotated[str | None, typer.Option(help="firm code (firm_admin, duty_staff)")] = None,
    region: Annotated[str | None, typer.Option(help="region code (township)")] = None,
    community: Annotated[str | None, typer.Option(help="community code (duty_staff)")] = None,
    unit: Annotated[str | None, typer.Option(help="maintenance unit code")] = None,
) -> None:
    """Issue an API token; prints it once (only its hash is kept)."""
    from api.tokens import issue
    from core.audit import cli_actor
    from core.db import connect

    given = {"firm": firm, "region": region, "community": community, "unit": unit}
    with connect(load_settings().database_url, actor=cli_actor()) as conn:
        issued = issue(conn, role, name, {k: v for k, v in given.items() if v is not None})
        conn.commit()
    console.print(f"token {issued.id} for {name} ({role}); it is shown only now:")
    print(issued.token, flush=True)


@token_app.command("revoke")
def api_token_revoke(token_id: Annotated[int, typer.Argument(help="the token's id")]) -> None:
    """Revoke an API token; it stops working within SHOUWANG_API_TOKEN_CACHE_S (5 s)."""
    from api.tokens import revoke
    from core.audit import cli_actor
    from core.db import connect

    with connect(load_settings().database_url, actor=cli_actor()) as conn:
        revoke(conn, token_id)
        conn.commit()
    console.print(f"token {token_id} revoked")


@token_app.command("list")
def api_token_list() -> None:
    """The API tokens: id, role, scope, holder, issued, revoked (never the secrets)."""
    from api.tokens import list_tokens
    from core.db import connect

    with connect(load_settings().database_url) as conn:
        for t in list_tokens(conn):
            revoked = f"\trevoked {t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else ""
            created = f"{t.created_at:%Y-%m-%d}"
            scope = t.scope or ("platform" if t.role == "platform_operator" else "county")
            print(f"{t.id}\t{t.role}\t{scope}\t{t.name}\t{created}{revoked}")
