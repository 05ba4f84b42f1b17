"""The command line: ``shouwang gateway``, the site gateway program (``gateway/``).

``gateway`` used to be another spelling of ``shouwang broker``; those subcommands (sync, issue,
revoke, ...) stay reachable here, hidden, so existing scripts keep working.
"""

from __future__ import annotations

import copy
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
    from gateway.run import main

    setup_logging()
    main(config)


@app.command("check")
def gateway_check(config: ConfigPath) -> None:
    """Check a site config and the profiles it names, and show the read plan of each device."""
    from gateway.config import load_site_config

    cfg = load_site_config(config)
    console.print(f"gateway {escape(cfg.gateway)}: {len(cfg.devices)} device(s), config valid")
    for d in cfg.devices:
        reads = ", ".join(f"{r.function} {r.address}+{r.count}" for r in d.profile.reads)
        console.print(f"  {escape(d.uid)} ({escape(d.profile.model)}, unit {d.unit}): {reads}")


for _command in broker_commands.app.registered_commands:  # the earlier spelling, hidden
    _alias = copy.copy(_command)
    _alias.hidden = True
    app.registered_commands.append(_alias)
