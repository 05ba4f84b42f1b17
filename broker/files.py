"""Gateway: hands the broker its password file and ACL, and makes it re-read them.

Mosquitto re-reads both files on SIGHUP, so credentials change without a restart: a revoked
device can no longer connect, and its publishes are refused by the ACL at once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from broker.acl import Account, render_acl, render_passwd
from core.errors import ConfigError


def write_atomically(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` unless it already holds it; return whether it changed."""
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return True


def write_files(accounts: list[Account], passwd: Path, acl: Path, share_group: str) -> bool:
    changed = write_atomically(passwd, render_passwd(accounts))
    return write_atomically(acl, render_acl(accounts, share_group)) or changed


def reload(pid_file: Path) -> int:
    """SIGHUP the broker named by ``pid_file``; return its pid."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError) as e:
        raise ConfigError(
            str(pid_file), f"cannot read the broker's pid ({e}); is the broker running?"
        ) from e
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ConfigError(
            str(pid_file), f"no broker runs as pid {pid}; start it with scripts/stack.sh up"
        ) from None
    return pid


def broker_config(*, host: str, port: int, directory: Path, persistence: bool = True) -> str:
    """Mosquitto configuration for a platform broker whose files live in ``directory``."""
    lines = [
        "# shouwang broker: no anonymous access; per-device credentials and ACL are written by",
        "# 'shouwang broker sync' from the registry and re-read on SIGHUP.",
        "per_listener_settings false",
        f"listener {port} {host}",
        "allow_anonymous false",
        f"password_file {directory / 'passwd'}",
        f"acl_file {directory / 'acl'}",
        # Ingest keeps persistent sessions: hold what it has not acknowledged, however long.
        "max_queued_messages 2000000",
        "max_queued_bytes 0",
        "max_inflight_messages 0",
        "max_packet_size 1048576",
        f"pid_file {directory / 'mosquitto.pid'}",
        f"log_dest file {directory / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection_messages false",
        "user root" if os.geteuid() == 0 else "",
    ]
    if persistence:
        (directory / "data").mkdir(parents=True, exist_ok=True)
        lines += [
            "persistence true",
            f"persistence_location {directory / 'data'}/",
            "autosave_interval 30",
        ]
    return "\n".join(line for line in lines if line) + "\n"
