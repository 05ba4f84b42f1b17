"""Gateway: hands the broker its password file and ACL, and makes it re-read them.

Mosquitto re-reads both files on SIGHUP, so credentials change without a restart: a revoked
device can no longer connect, and its publishes are refused by the ACL at once.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
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


# What the broker holds for a persistent session that is not taking its messages (ingest during a
# database outage stops reading at its own byte limit, IngestConfig.max_buffer_bytes). Per
# session; the byte limit counts the payload of every unacknowledged QoS 1 message, in flight or
# queued (a connected session also gets up to its receive maximum, 65,535, in flight whatever
# their size). Beyond a limit the broker still acknowledges the publisher and drops the message
# for that session.
# Measured (`shouwang drill backlog`; docs/benchmarks.md, "Outage drills"): the demo county (20
# communities, 1,990 devices) publishes 350,000 messages and 117 MB of payload an hour (59 KB
# per device-hour), and the broker holds 379 bytes of its own besides each payload. 256 MiB of
# payload is 2.3 hours of the demo county (a one-hour database outage loses nothing, held in
# about 240 MiB of broker memory), or one hour of about 4,500 such devices; what a flood can make
# one session hold stops at about 550 MiB of demo-sized messages, or 2,000,000 x 379 B (720 MiB)
# of tiny ones.
MAX_QUEUED_BYTES = 256 * 1024 * 1024
MAX_QUEUED_MESSAGES = 2_000_000
# Mosquitto writes its whole in-memory state (sessions, queued and retained messages) every
# AUTOSAVE_INTERVAL_S + 1 seconds (its own rounding), and on a clean stop. Killed (SIGKILL, OOM,
# power), it comes back with the last save: what it acknowledged since and had not delivered is
# lost, i.e. at most the last AUTOSAVE_INTERVAL_S + 1 s of messages held for a session that was
# not reading (ingest down or paused); with ingest reading, next to nothing (`shouwang drill
# broker-kill`). A save blocks the broker about 1.2 us per message held: nothing to speak of in
# normal running, 0.4 s (7 % of its time at 5 s) once it holds an hour of the demo county. 5 s
# keeps the window at 6 s (about 600 messages of the demo county) for that cost; 30 s, as
# before, was a 31 s window. Not autosave_on_changes: it saves every N queued messages, so a
# flood would have the broker writing its whole backlog back to back.
AUTOSAVE_INTERVAL_S = 5


@dataclass(frozen=True, slots=True)
class TlsListener:
    """The broker's TLS listener: where it listens, and the PEM files of its certificate
    (``certfile``, with the chain up to the CA), private key and CA."""

    host: str
    port: int
    cafile: Path
    certfile: Path
    keyfile: Path

    @classmethod
    def in_directory(cls, host: str, port: int, directory: Path) -> TlsListener:
        """The listener with ``ca.crt``, ``server.crt`` and ``server.key`` of ``directory``,
        each checked readable now: a broker that cannot read them would not start, and say
        so only in its own log."""
        files = [directory / n for n in ("ca.crt", "server.crt", "server.key")]
        for f in files:
            try:
                f.open("rb").close()
            except OSError as e:
                raise ConfigError(
                    str(f),
                    f"cannot read it ({e.strerror}); put the broker's CA certificate, certificate "
                    "and key in this directory as ca.crt, server.crt and server.key, readable by "
                    "the broker's user (docs/operations.md, 'MQTT over TLS')",
                ) from None
        return cls(host, port, *files)


def broker_config(
    *,
    host: str,
    port: int,
    directory: Path,
    persistence: bool = True,
    autosave_s: int = AUTOSAVE_INTERVAL_S,
    tls: TlsListener | None = None,
) -> str:
    """Mosquitto configuration for a platform broker whose files live in ``directory``
    (``autosave_s``: seconds between saves of its state, for drills that measure the window).

    ``host``:``port`` is the plain listener: give it a loopback address (the platform's own
    services on the same host) and let everything else connect to ``tls``, TLS 1.2 or later.
    Accounts and ACL are the same on both (per_listener_settings false).
    """
    listeners = [f"listener {port} {host}"]
    if tls is not None:
        listeners += [
            f"listener {tls.port} {tls.host}",
            f"cafile {tls.cafile}",
            f"certfile {tls.certfile}",
            f"keyfile {tls.keyfile}",
            "tls_version tlsv1.2",
        ]
    lines = [
        "# shouwang broker: no anonymous access; per-device credentials and ACL are written by",
        "# 'shouwang broker sync' from the registry and re-read on SIGHUP.",
        "per_listener_settings false",
        *listeners,
        "allow_anonymous false",
        f"password_file {directory / 'passwd'}",
        f"acl_file {directory / 'acl'}",
        # Ingest keeps persistent sessions: hold what it has not acknowledged, within bounds
        # (MAX_QUEUED_BYTES above).
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
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
            f"autosave_interval {autosave_s}",
        ]
    return "\n".join(line for line in lines if line) + "\n"
