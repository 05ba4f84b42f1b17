"""Shared: health checks for containers and operators. Each check answers (ok, detail) quickly;
``shouwang health`` exits non-zero when any fails, which is what a compose health check wants."""

from __future__ import annotations

import os
import threading
import urllib.error
import urllib.request

import psycopg

from core.mqtt import new_client


def database(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    """The database answers and its schema is migrated."""
    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s))) as conn:
            row = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    except psycopg.Error as e:
        return False, f"database: {type(e).__name__}: {e}".strip()
    return True, f"database: {row[0] if row else 0} migrations applied"


def broker(host: str, port: int, timeout_s: float = 3.0) -> tuple[bool, str]:
    """The broker speaks MQTT: a CONNECT gets a CONNACK (whatever it says of our credentials)."""
    client, props = new_client(f"shouwang-health-{os.getpid()}", "", "")
    answered = threading.Event()
    client.on_connect = lambda *_: answered.set()
    try:
        client.connect(host, port, keepalive=5, properties=props)
    except OSError as e:
        return False, f"broker {host}:{port}: {e}"
    client.loop_start()
    try:
        ok = answered.wait(timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    return ok, f"broker {host}:{port}: {'answers' if ok else 'no CONNACK'}"


def http(url: str, timeout_s: float = 3.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 (our own URL)
            return 200 <= r.status < 300, f"{url}: HTTP {r.status}"
    except (urllib.error.URLError, OSError) as e:
        return False, f"{url}: {e}"
