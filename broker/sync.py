"""Broker: brings the broker's credentials in line with the registry.

One bad row never stops the sync: an account whose username breaks its namespace
(``core.namespaces``) or collides with a service account is left out of the broker's files and
reported, and everyone else's credentials still follow the registry (a revoked credential must
stop working even while some other row is wrong). Concurrent syncs (the API's, the command
line's) take one advisory lock, so the files have one writer at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.accounts import active_accounts
from broker.acl import Account
from broker.credentials import hash_password, verify_password
from broker.files import reload, write_files
from core.db import Conn
from core.errors import ConfigError
from core.namespaces import account_problem, service_username_problem
from core.settings import Settings

_LOCK_KEY = 0x5357_4252  # "SWBR": one writer of the broker's files at a time


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    username: str
    password: str
    kind: str  # ingest | admin
    setting: str  # the environment variable that holds its password


def service_accounts(accounts: list[ServiceAccount], existing: dict[str, str]) -> list[Account]:
    """Hash each service password, reusing the hash already on file when the password is the
    same, so that an unchanged configuration rewrites nothing and signals nobody."""
    out = []
    for a in accounts:
        if (problem := service_username_problem(a.username)) is not None:
            raise ConfigError(a.setting.replace("PASSWORD", "USERNAME"), problem)
        if not a.password:
            raise ConfigError(
                a.setting, f"the {a.kind} account {a.username!r} needs a password; set {a.setting}"
            )
        old = existing.get(a.username, "")
        hashed = old if old and verify_password(a.password, old) else hash_password(a.password)
        out.append(Account(a.username, a.kind, hashed))
    return out


@dataclass(frozen=True, slots=True)
class Synced:
    accounts: int  # in the broker's files
    changed: bool  # the files changed (and the broker was signalled, when asked to)
    skipped: tuple[str, ...] = ()  # registry accounts left out, each with what is wrong


def screen(
    accounts: list[Account], services: list[ServiceAccount]
) -> tuple[list[Account], list[str]]:
    """The registry's accounts that may go into the broker's files, and a line for each that
    may not (pure): a username outside its kind's namespace, or a service account's name."""
    taken = {s.username for s in services}
    good, skipped = [], []
    for a in accounts:
        problem = account_problem(a.username, a.kind)
        if problem is None and a.username in taken:
            problem = f"{a.username!r} is a service account's username"
        if problem is None:
            good.append(a)
        else:
            skipped.append(f"{a.kind} account {a.username[:80]!r} left out: {problem}")
    return good, skipped


def sync(
    conn: Conn,
    services: list[ServiceAccount],
    *,
    passwd: Path,
    acl: Path,
    pid_file: Path,
    share_group: str,
    signal_broker: bool = True,
) -> Synced:
    """Write the password file and ACL; SIGHUP the broker if they changed. Accounts that cannot
    be written are left out and reported (``Synced.skipped``), never the whole sync refused; a
    wrong service account (settings) is a ``ConfigError``."""
    conn.commit()
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        accounts, skipped = screen(active_accounts(conn), services)
        everyone = accounts + service_accounts(services, _existing_hashes(passwd))
        changed = write_files(everyone, passwd, acl, share_group)
        if changed and signal_broker:
            reload(pid_file)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
        conn.commit()
    return Synced(len(everyone), changed, tuple(skipped))


def _existing_hashes(passwd: Path) -> dict[str, str]:
    if not passwd.exists():
        return {}
    out = {}
    for line in passwd.read_text().splitlines():
        user, _, hashed = line.partition(":")
        out[user] = hashed
    return out


def platform_services(s: Settings) -> list[ServiceAccount]:
    """The platform's own broker accounts, as the settings name them."""
    return [
        ServiceAccount(
            s.mqtt_ingest_username,
            s.mqtt_ingest_password.get_secret_value(),
            "ingest",
            "SHOUWANG_MQTT_INGEST_PASSWORD",
        ),
        ServiceAccount(
            s.mqtt_analytics_username,
            s.mqtt_analytics_password.get_secret_value(),
            "analytics",
            "SHOUWANG_MQTT_ANALYTICS_PASSWORD",
        ),
        ServiceAccount(
            s.notify_mqtt_username,
            s.notify_mqtt_password.get_secret_value(),
            "notify",
            "SHOUWANG_NOTIFY_MQTT_PASSWORD",
        ),
        ServiceAccount(
            s.mqtt_admin_username,
            s.mqtt_admin_password.get_secret_value(),
            "admin",
            "SHOUWANG_MQTT_ADMIN_PASSWORD",
        ),
    ]
