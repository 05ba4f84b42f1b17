"""The command line: ``shouwang broker`` (also ``gateway``, its earlier spelling): device and
duty-app credentials, and the broker's password file and ACL written from the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from core.settings import load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="Device credentials and the broker's ACL.")


@app.command("sync")
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
        done = sync(
            conn,
            platform_services(s),
            passwd=passwd,
            acl=acl,
            pid_file=pid,
            share_group=s.ingest_share_group,
            signal_broker=not no_reload,
        )
    for line in done.skipped:
        console.print(f"[yellow]![/] {escape(line)}")
    console.print(
        f"{done.accounts} broker accounts; files {'updated' if done.changed else 'unchanged'}"
        f" ({passwd}, {acl})"
    )


@app.command("broker-config")
def broker_broker_config(
    directory: Annotated[Path, typer.Option("--dir", help="where the broker's files live")],
    port: Annotated[int, typer.Option(help="the plain listener's port")] = 18883,
    host: Annotated[str, typer.Option(help="the plain listener's address: loopback only")] = (
        "127.0.0.1"
    ),
    tls_dir: Annotated[
        Path | None,
        typer.Option(help="add a TLS listener with ca.crt, server.crt, server.key from here"),
    ] = None,
    tls_port: Annotated[int, typer.Option(help="the TLS listener's port")] = 8883,
    tls_host: Annotated[str, typer.Option(help="the TLS listener's address")] = "127.0.0.1",
) -> None:
    """Print the Mosquitto configuration of a platform broker."""
    import ipaddress

    from broker.files import TlsListener, broker_config
    from core.errors import ConfigError

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"--host {host}",
            "the plain (unencrypted) listener listens on loopback only; give --tls-dir and "
            "--tls-host for the listener that devices and other hosts reach",
        )
    tls = (
        None if tls_dir is None else TlsListener.in_directory(tls_host, tls_port, tls_dir.resolve())
    )
    directory.mkdir(parents=True, exist_ok=True)
    print(broker_config(host=host, port=port, directory=directory.resolve(), tls=tls), end="")


@app.command("issue")
def broker_issue(uid: str) -> None:
    """Issue (or rotate) the credential of a device or gateway; prints the password once."""
    from broker.accounts import issue
    from core.audit import cli_actor
    from core.db import connect

    s = load_settings()
    with connect(s.database_url, actor=cli_actor()) as conn:
        password = issue(conn, uid)
    print(password, flush=True)  # before the reload, which may fail: the credential exists now
    broker_sync(no_reload=False)


@app.command("issue-duty-app")
def broker_issue_duty_app(person_id: int) -> None:
    """Issue (or rotate) a person's duty-app credential: prints username, password and topic,
    and makes the person reachable there (an 'mqtt' contact channel)."""
    from broker.accounts import issue_person
    from core.audit import cli_actor
    from core.db import connect
    from core.wire import duty_topic

    s = load_settings()
    with connect(s.database_url, actor=cli_actor()) as conn:
        username, password = issue_person(conn, person_id)
        conn.execute(
            "INSERT INTO contact_channels (person_id, kind, address) VALUES (%s, 'mqtt', %s)"
            " ON CONFLICT DO NOTHING",
            (person_id, username),
        )
    print(f"username {username}\npassword {password}\ntopic    {duty_topic(username)}", flush=True)
    broker_sync(no_reload=False)


@app.command("revoke")
def broker_revoke(uid: str) -> None:
    """Revoke a device's or gateway's credential; the broker refuses it from now on."""
    from broker.accounts import revoke
    from core.audit import cli_actor
    from core.db import connect

    s = load_settings()
    with connect(s.database_url, actor=cli_actor()) as conn:
        revoke(conn, uid)
    broker_sync(no_reload=False)
