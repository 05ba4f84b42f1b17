"""Retiring a worker id (`shouwang ingest --retire`) ends its persistent session on the real
broker, so the broker stops keeping a share of the subscription (and its messages) for a worker
that will not return."""

from __future__ import annotations

import subprocess
import threading

from core.mqtt import new_client
from core.settings import Settings
from tests.conftest import Broker, settings_env, shouwang


def session_present(settings: Settings, client_id: str) -> bool:
    """Connect without a clean start as ``client_id``; whether the broker still had a session."""
    client, props = new_client(
        client_id,
        settings.mqtt_ingest_username,
        settings.mqtt_ingest_password.get_secret_value(),
        persistent=True,
    )
    got: dict[str, bool] = {}
    done = threading.Event()

    def on_connect(_c: object, _u: object, flags: object, _rc: object, _p: object) -> None:
        got["present"] = bool(getattr(flags, "session_present", False))
        done.set()

    client.on_connect = on_connect
    client.connect(settings.mqtt_host, settings.mqtt_port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return got["present"]


def retire(settings: Settings, client_id: str) -> None:
    subprocess.run(
        shouwang("ingest", "--retire", client_id),
        env=settings_env(settings),
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_retire_ends_a_worker_session(settings: Settings, broker: Broker) -> None:
    # A session without subscriptions: it never takes a share of other tests' messages.
    session_present(settings, "ingest-retire-test")  # makes the persistent session
    try:
        assert session_present(settings, "ingest-retire-test"), "the broker keeps the session"
        retire(settings, "ingest-retire-test")
        assert not session_present(settings, "ingest-retire-test"), "retired: no session left"
    finally:
        retire(settings, "ingest-retire-test")
