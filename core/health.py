"""Shared: health checks for containers and operators. Each check answers (ok, detail) quickly;
``shouwang health`` exits non-zero when any fails, which is what a compose health check wants."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import psycopg


def database(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """The database answers and its schema is migrated."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as conn:
            row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    except psycopg.Error as e:
        return False, f"database: {type(e).__name__}: {e}".strip()
    return True, f"database: {row[0] if row else 0} migrations applied"


def broker(host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    """The broker accepts TCP connections and speaks MQTT (a CONNECT gets a CONNACK)."""
    connect = (
        bytes([0x10, 0x0D, 0x00, 0x04])
        + b"MQTT"
        + bytes([0x05, 0x02, 0x00, 0x05, 0x00, 0x00, 0x00])
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(connect)
            answer = s.recv(1)
    except OSError as e:
        return False, f"broker {host}:{port}: {e}"
    if answer != b"\x20":
        return False, f"broker {host}:{port}: no CONNACK"
    return True, f"broker {host}:{port}: answers"


def http(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 (our own URL)
            return 200 <= r.status < 300, f"{url}: HTTP {r.status}"
    except (urllib.error.URLError, OSError) as e:
        return False, f"{url}: {e}"
