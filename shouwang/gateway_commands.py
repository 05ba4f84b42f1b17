"""The command line: ``shouwang gateway``, the site gateway program (``gateway/``).

``gateway`` used to be another spelling of ``shouwang broker``; those subcommands (sync, issue,
revoke, ...) stay reachable here, hidden, so existing scripts keep working.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from shouwang import broker_commands
from shouwang.console import console, setup_logging

app = typer.Typer(no_args_is_help=True, help="The site gateway: polls Modbus devices, forwards.")

ConfigPath = Annotated[
    Path, typer.Argument(help="the site config (YAML); see docs/gateway.md", show_default=False)
]


@app.command("run")
def gateway_run(config: ConfigPath) -> None:
    """Poll the site's devices and forward their readings to the platform (runs until stopped)."""
    from core.settings import load_settings
    from gateway.run import main

    setup_logging("gateway", fmt=load_settings().log_format)
    main(config)


@app.command("check")
def gateway_check(config: ConfigPath) -> None:
    """Check a site config and the profiles it names, and show the read plan of each device."""
    from sites.config import load_site_config

    cfg = load_site_config(config)
    console.print(f"gateway {escape(cfg.gateway)}: {len(cfg.devices)} device(s), config valid")
    for d in cfg.devices:
        reads = ", ".join(f"{r.function} {r.address}+{r.count}" for r in d.profile.reads)
        console.print(f"  {escape(d.uid)} ({escape(d.profile.model)}, unit {d.unit}): {reads}")


Gateway = Annotated[
    str, typer.Argument(help="the gateway's uid, as registered", show_default=False)
]


@app.command("networks")
def gateway_networks(
    gateway: Gateway,
    networks: Annotated[
        list[str] | None,
        typer.Argument(help="its site's networks: 192.168.10.0/24, /dev/ttyUSB0 (none: show)"),
    ] = None,
) -> None:
    """Show, or declare, the networks a gateway's site has: what a pushed config may reach."""
    from broker.site_configs import declare_networks, registration
    from core.audit import cli_actor
    from core.db import connect
    from core.errors import RegistryError
    from core.settings import load_settings

    s = load_settings()
    with connect(s.database_url, actor=cli_actor()) as conn:
        if networks:
            try:
                shown = declare_networks(conn, gateway, networks)
            except ValueError as e:
                raise typer.BadParameter(str(e), param_hint="NETWORKS") from None
        else:
            reg = registration(conn, gateway)
            if reg is None:
                raise RegistryError(f"there is no gateway {gateway} in the registry")
            shown = reg.networks
    print(f"{gateway}: {', '.join(shown) or 'no networks declared'}")


@app.command("push-config")
def gateway_push_config(gateway: Gateway, config: ConfigPath) -> None:
    """Push a site config to a running gateway: checked here as 'check' does and against the
    site's declared networks, recorded as the gateway's next version, and sent; the gateway
    checks it again and answers (see 'shouwang gateway state')."""
    from broker.site_configs import PushRefused, record_push, registration, send_push, target_of
    from core.audit import cli_actor
    from core.db import connect
    from core.errors import RegistryError
    from core.settings import load_settings

    s = load_settings()
    actor = cli_actor()
    data = config.read_bytes()
    with connect(s.database_url, actor=actor) as conn:
        reg = registration(conn, gateway)
        if reg is None:
            raise RegistryError(f"there is no gateway {gateway} in the registry")
        try:
            pushed = record_push(conn, reg, data, actor.name)
        except PushRefused as e:
            print(f"{config}: not pushed to {gateway}:", file=sys.stderr)
            for line in e.errors:
                print(f"  {line}", file=sys.stderr)
            raise typer.Exit(1) from None
        conn.commit()
        try:
            send_push(target_of(s), pushed)
        except Exception:
            conn.execute(
                "DELETE FROM gateway_configs WHERE gateway_id = %s AND version = %s",
                (reg.id, pushed.version),
            )
            conn.commit()
            raise
    print(f"pushed version {pushed.version} to {gateway}; it answers on its own")


@app.command("state")
def gateway_state(
    gateway: Gateway,
    ask: Annotated[bool, typer.Option(help="ask the gateway to report first")] = True,
) -> None:
    """The state a gateway last reported (buffer, drops, clock, devices) and its pushed
    configs with their answers."""
    from broker.site_configs import configs, registration, send_state_request, target_of
    from core.db import connect
    from core.errors import RegistryError
    from core.settings import load_settings

    s = load_settings()
    with connect(s.database_url, autocommit=True) as conn:
        reg = registration(conn, gateway)
        if reg is None:
            raise RegistryError(f"there is no gateway {gateway} in the registry")
        if ask:
            asked = send_state_request(target_of(s), gateway)
            deadline = time.monotonic() + 5
            while (
                time.monotonic() < deadline
                and not conn.execute(
                    "SELECT 1 FROM gateway_state WHERE gateway_id = %s AND received_at"
                    " >= to_timestamp(%s / 1000.0)",
                    (reg.id, asked),
                ).fetchone()
            ):
                time.sleep(0.2)
        cur = conn.execute("SELECT * FROM gateway_state WHERE gateway_id = %s", (reg.id,))
        row = cur.fetchone()
        assert cur.description is not None
        print(f"{gateway}: networks {', '.join(reg.networks) or 'none declared'}")
        if row is None:
            print("  no state reported yet")
        for name, value in zip([d.name for d in cur.description], row or (), strict=False):
            if name != "gateway_id":
                print(f"  {name}: {value}")
        for c in configs(conn, reg.id, limit=5):
            errors = "; ".join(c["errors"])
            print(f"  config v{c['version']} {c['state']} ({c['pushed_by']}) {errors}".rstrip())


for _command in broker_commands.app.registered_commands:  # the earlier spelling, hidden
    _alias = copy.copy(_command)
    _alias.hidden = True
    app.registered_commands.append(_alias)
