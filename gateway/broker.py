"""Gateway: hands the broker its password file and ACL, and makes it re-read them.

Mosquitto re-reads both files on SIGHUP, so credentials change without a restart: a revoked
device can no longer connect, and its publishes are refused by the ACL at once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from core.errors import ConfigError
from gateway.acl import Account, render_acl, render_passwd


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
        raise ConfigError(str(pid_file), f"cannot read the broker's pid ({e}); is the broker running?") from e
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise ConfigError(str(pid_file), f"no broker runs as pid {pid}; start it with scripts/stack.sh up") from None
    return pid
