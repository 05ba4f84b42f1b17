"""The command line: ``shouwang phone``: the key that encrypts the SMS and voice accounts, and
each firm's account with its provider (docs/notifications.md). The access key secret is read
from standard input or a hidden prompt, never from the command line, and never printed."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from core.errors import ConfigError
from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="SMS and voice: the providers' accounts per firm.")


@app.command("key")
def phone_key() -> None:
    """Print a new key for SHOUWANG_NOTIFY_PHONE_KEY (accounts stored under an older key must be
    stored again)."""
    from notify.phone_accounts import new_key

    print(new_key())


@app.command("account")
def phone_account(
    firm_id: Annotated[int, typer.Argument(help="the property firm's id (GET /v1/firms)")],
    kind: Annotated[str, typer.Option(help="sms, or voice (a P0's call; aliyun only)")],
    provider: Annotated[str, typer.Option(help="aliyun or tencent")],
    access_key_id: Annotated[str, typer.Option(help="the provider's access key id")],
    template_code: Annotated[
        str, typer.Option(help="the approved template (Aliyun SMS_…/TTS_…, Tencent its id)")
    ],
    sign_name: Annotated[str, typer.Option(help="the approved sign name (签名), for SMS")] = "",
    app_id: Annotated[str, typer.Option(help="Tencent Cloud's SmsSdkAppId")] = "",
    region: Annotated[str, typer.Option(help="Tencent Cloud's region")] = "ap-guangzhou",
    secret_stdin: Annotated[
        bool,
        typer.Option("--secret-stdin", help="read the access key secret from standard input"),
    ] = False,
) -> None:
    """Store (or replace) a firm's SMS or voice account; the secret is encrypted with
    SHOUWANG_NOTIFY_PHONE_KEY."""
    from core.audit import cli_actor
    from core.db import connect
    from notify import phone_accounts
    from notify.phone_accounts import Account, AccountError

    if secret_stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = typer.prompt("access key secret", hide_input=True)
    s = load_settings()
    account = Account(
        firm_id, kind, provider, access_key_id, secret, sign_name, template_code, app_id, region
    )
    try:
        phone_accounts.check(account)
    except AccountError as e:
        raise ConfigError(f"firm {firm_id}'s {kind} account", str(e)) from None
    with connect(s.database_url, actor=cli_actor()) as conn:
        phone_accounts.save(conn, account, s.notify_phone_key.get_secret_value())
        conn.commit()
    console.print(
        f"firm {firm_id}: {kind} through {provider} ({access_key_id}), secret stored encrypted"
    )
