"""Gateway: brings the broker's credentials in line with the registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.accounts import active_accounts
from broker.acl import Account
from broker.credentials import hash_password, verify_password
from broker.files import reload, write_files
from core.db import Conn
from core.errors import ConfigError
from core.settings import Settings


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
        if not a.password:
            raise ConfigError(
                a.setting, f"the {a.kind} account {a.username!r} needs a password; set {a.setting}"
            )
        old = existing.get(a.username, "")
        hashed = old if old and verify_password(a.password, old) else hash_password(a.password)
        out.append(Account(a.username, a.kind, hashed))
    return out


def sync(
    conn: Conn,
    services: list[ServiceAccount],
    *,
    passwd: Path,
    acl: Path,
    pid_file: Path,
    share_group: str,
    signal_broker: bool = True,
) -> tuple[int, bool]:
    """Write the password file and ACL; SIGHUP the broker if they changed. Return (accounts, changed)."""
    accounts = active_accounts(conn)
    conn.commit()
    names = {a.username for a in accounts}
    for s in services:
        if s.username in names:
            raise ConfigError(
                s.setting, f"service account {s.username!r} collides with a device or gateway uid"
            )
    everyone = accounts + service_accounts(services, _existing_hashes(passwd))
    changed = write_files(everyone, passwd, acl, share_group)
    if changed and signal_broker:
        reload(pid_file)
    return len(everyone), changed


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
