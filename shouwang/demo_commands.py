"""The command line: ``shouwang demo roster``: the demo's duty roster (``simulators.demo``)
with a duty-page login for each person, printed with the duty page's address. The passwords
are new at every run and kept, for ``shouwang up`` to show again, in the state directory's
``demo-logins.txt`` (readable by its owner only)."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path

import typer

from core.settings import Settings, load_settings
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="The demo: its duty roster and logins.")

LOGINS_FILE = "demo-logins.txt"


def duty_url(s: Settings) -> str:
    return f"http://{s.api_host}:{s.api_port}/duty"


def logins_file(s: Settings) -> Path:
    return s.state_dir / LOGINS_FILE


def seed(s: Settings) -> list[str]:
    """Seed the roster, give everyone on it a fresh password; the lines to show (one login
    each, the duty staff first)."""
    from api.pages.sessions import set_password
    from core.audit import cli_actor
    from core.db import connect
    from simulators.demo import seed_roster

    now = datetime.now(UTC)
    lines = []
    with connect(s.database_url, actor=cli_actor()) as conn:
        for p in seed_roster(conn, now):
            password = "demo-" + secrets.token_urlsafe(9)
            phone = set_password(conn, p.person_id, p.phone, password, now)
            lines.append(f"{p.name} ({p.role}): phone {phone}  password {password}")
        conn.commit()
    return lines


@app.command("roster")
def demo_roster() -> None:
    """Seed the demo firm's duty roster (after `shouwang seed`) and print the duty page's
    address with a login for each person on it."""
    s = load_settings()
    lines = seed(s)
    if not lines:
        console.print("no property firm in the registry: run `shouwang seed` first")
        raise typer.Exit(1)
    path = logins_file(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    console.print(f"duty page  {duty_url(s)}  (on a phone-sized window)")
    for line in lines:
        console.print(f"login      {line}", markup=False, highlight=False)
