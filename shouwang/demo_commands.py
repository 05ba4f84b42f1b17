"""The command line: ``shouwang demo roster``: the demo's duty roster (``simulators.demo``)
with a duty-page login for each person, printed with the duty page's address. The passwords
are new at every run and kept, for ``shouwang up`` to show again, in the state directory's
``demo-logins.txt`` (readable by its owner only)."""

from __future__ import annotations

import ipaddress
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import typer

from core.settings import Settings, load_settings
from core.wire import DUTY_PREFIX
from shouwang.console import console

app = typer.Typer(no_args_is_help=True, help="The demo: its duty roster and logins.")

LOGINS_FILE = "demo-logins.txt"


def duty_url(s: Settings) -> str:
    """The duty pages' address on this machine. Plain HTTP on loopback, where browsers keep
    the pages' Secure cookies (elsewhere they need HTTPS: docs/pages.md)."""
    host = s.api_host
    try:
        unspecified = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        unspecified = host == ""
    if unspecified:  # listening on every address: this machine's loopback
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{s.api_port}/duty"


def link_trouble(s: Settings) -> str:
    """Why the notifications' links would not open these pages, or "" (they would)."""
    if not s.notify_ack_secret.get_secret_value():
        return "SHOUWANG_NOTIFY_ACK_SECRET is empty: the notices carry no link"
    ack = urlsplit(s.notify_ack_url)
    if ack.port != s.api_port or ack.path.rstrip("/") != "/v1/ack":
        here = duty_url(s).removesuffix("/duty") + "/v1/ack"
        return (
            f"SHOUWANG_NOTIFY_ACK_URL is {s.notify_ack_url}, not this API's {here}:"
            " set it so that the notices' links open here"
        )
    return ""


def notices_command(s: Settings) -> str:
    """How to watch the notifications the demo's people get (the duty app's topics), each
    with its one-tap link."""
    return (
        f"mosquitto_sub -h {s.mqtt_host} -p {s.mqtt_port} -u {s.mqtt_admin_username}"
        f" -P <SHOUWANG_MQTT_ADMIN_PASSWORD> -t '{DUTY_PREFIX}/+/notifications' -v"
    )


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
    shown = [
        f"duty page  {duty_url(s)}  (in a browser on this machine; a phone-sized window)",
        f"console    {duty_url(s).removesuffix('/duty')}/console  (the firm manager's login)",
        *(f"login      {line}" for line in lines),
        f"notices    {notices_command(s)}",
        f"           (the password is in {s.state_dir / 'shouwang.env'}; each notice has its"
        " one-tap link)",
        f"logins in  {path}",
    ]
    if trouble := link_trouble(s):
        shown.append(f"warning    {trouble}")
    for line in shown:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
