"""MQTT over TLS end to end: a device publishes to the broker's TLS listener, ingest (connected
over TLS, with its own least-privilege database login) stores the reading; a client that does
not trust the broker's CA, or reaches it by a name its certificate does not carry, is refused,
and so are plain MQTT on the TLS port and a wrong password."""

from __future__ import annotations

import gc
import os
import secrets
import signal
import ssl
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from typer.testing import CliRunner

from core.db import Conn, connect
from core.mqtt import Tls, new_client
from core.roles import login
from core.wire import Channel, device_topic, encode_sample
from shouwang.cli import app
from simulators.county import County
from simulators.fleet import Fleet
from tests.conftest import (
    Broker,
    make_certificates,
    settings_env,
    settings_for,
    shouwang,
    start_broker,
    sync_broker,
)
from tests.mqtt_helpers import peer


@pytest.fixture(scope="module")
def tls_broker(
    tmp_path_factory: pytest.TempPathFactory,
    database_url: str,
    county: tuple[County, dict[str, str]],
) -> Iterator[Broker]:
    """A platform broker with a TLS listener whose certificate names 127.0.0.1 only (so that
    'localhost' is a name it does not carry), accounts synced from the test registry."""
    certs = make_certificates(tmp_path_factory.mktemp("certs"), "127.0.0.1")
    b = start_broker(tmp_path_factory.mktemp("tls-broker"), tls=certs)
    with connect(database_url, autocommit=True) as conn:
        sync_broker(conn, b)
    yield b
    b.proc.send_signal(signal.SIGTERM)
    b.proc.wait(10)


@pytest.fixture
def ingest_login(db: Conn, database_url: str) -> Iterator[str]:
    """The test database's URL as a login role of the ingest stage only."""
    role = f"test_ingest_{os.getpid()}"
    password = secrets.token_urlsafe(24)
    login(db, "ingest", password, role)
    params = conninfo_to_dict(database_url) | {"user": role, "password": password}
    yield make_conninfo(**params)  # type: ignore[arg-type]
    db.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def elevator(county: tuple[County, dict[str, str]]) -> tuple[str, str]:
    uid = next(d.uid for d in county[0].devices() if d.device_class == "elevator")
    return uid, county[1][uid]


def test_the_plain_listener_is_on_loopback_and_tls_needs_version_1_2(tls_broker: Broker) -> None:
    conf = (tls_broker.directory / "mosquitto.conf").read_text().splitlines()
    listeners = [line for line in conf if line.startswith("listener ")]
    assert listeners == [
        f"listener {tls_broker.port} 127.0.0.1",
        f"listener {tls_broker.tls_port} 127.0.0.1",
    ]
    assert "tls_version tlsv1.2" in conf


def test_a_reading_goes_over_tls_to_ingest_and_is_stored(
    db: Conn,
    tls_broker: Broker,
    county: tuple[County, dict[str, str]],
    ingest_login: str,
    tmp_path: Path,
) -> None:
    uid, password = elevator(county)
    s = settings_for(ingest_login, tls_broker, tmp_path, tls=True)
    log = tmp_path / "ingest.log"
    with log.open("wb") as out:
        ingest = subprocess.Popen(
            shouwang("ingest", "--client-id", "tls-test-ingest"),
            env=settings_env(s),
            stdout=out,
            stderr=out,
        )
    assert s.mqtt_ca_file is not None
    fleet = Fleet("127.0.0.1", s.mqtt_port, tls=Tls(s.mqtt_ca_file), client_prefix="tls-test")
    try:
        fleet.add(uid, password)
        assert fleet.wait_connected(10) == []
        # Ingest subscribes once connected: publish until a reading of this run is stored.
        sent: list[int] = []
        found: list[tuple[datetime]] = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            assert ingest.poll() is None, log.read_text(errors="replace")
            ts = int(time.time() * 1000)
            fleet.publish(
                uid, device_topic(uid, Channel.TELEMETRY), encode_sample(ts, {"floor": 7})
            )
            sent.append(ts)
            fleet.drain(10)
            for _ in range(5):
                fleet.pump(0.1)
            found = db.execute(
                "SELECT r.ts FROM readings r JOIN devices d ON d.id = r.device_id"
                " WHERE d.uid = %s AND r.ts = ANY(%s)",
                (uid, [datetime.fromtimestamp(t / 1000, UTC) for t in sent]),
            ).fetchall()
        assert found, f"nothing stored; ingest said:\n{log.read_text(errors='replace')}"
    finally:
        fleet.close()
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)
    said = log.read_text(errors="replace")
    assert "connected as tls-test-ingest" in said
    assert "permission denied" not in said and "retention failed" not in said, said


def handshake_error(tls_broker: Broker, host: str, tls: Tls) -> str:
    """Why the TLS handshake to the broker as ``host`` failed (the verification message)."""
    client, props = new_client(f"tls-refused-{time.monotonic_ns()}", "x", "y", tls=tls)
    assert tls_broker.tls_port is not None
    with warnings.catch_warnings():  # paho drops the refused socket unclosed: let it go quietly
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            client.connect(host, tls_broker.tls_port, properties=props)
        why = str(refused.value.verify_message)
        del refused
        gc.collect()
    return why


def test_a_client_without_the_ca_is_refused(tls_broker: Broker) -> None:
    why = handshake_error(tls_broker, "127.0.0.1", Tls(None))  # the system's trust store only
    assert "certificate" in why, why


def test_a_name_the_certificate_does_not_carry_is_refused(tls_broker: Broker) -> None:
    assert tls_broker.certificates is not None
    why = handshake_error(tls_broker, "localhost", Tls(tls_broker.certificates / "ca.crt"))
    assert "Hostname mismatch" in why, why


def test_plain_mqtt_on_the_tls_port_and_a_wrong_password_are_refused(
    tls_broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    uid, password = elevator(county)
    assert tls_broker.tls_port is not None and tls_broker.certificates is not None
    tls = Tls(tls_broker.certificates / "ca.crt")
    good = peer("127.0.0.1", tls_broker.tls_port, uid, password, tls=tls)
    assert good.connect_rc is not None and not good.connect_rc.is_failure
    good.close()
    bad = peer("127.0.0.1", tls_broker.tls_port, uid, "not-the-password", tls=tls)
    assert bad.connect_rc is not None and bad.connect_rc.is_failure
    bad.close()

    plain, props = new_client(f"plain-{time.monotonic_ns()}", uid, password, tls=None)
    answered = threading.Event()
    codes: list[ReasonCode] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        codes.append(rc)
        answered.set()

    plain.on_connect = on_connect
    plain.connect("127.0.0.1", tls_broker.tls_port, properties=props)
    plain.loop_start()
    try:
        assert not answered.wait(3), f"a plain CONNECT got a CONNACK on the TLS port: {codes}"
    finally:
        plain.disconnect()
        plain.loop_stop()


def test_broker_config_refuses_a_plain_listener_beyond_loopback(tmp_path: Path) -> None:
    runner = CliRunner()
    wide = runner.invoke(
        app, ["broker", "broker-config", "--dir", str(tmp_path), "--host", "0.0.0.0"]
    )
    assert wide.exit_code != 0 and "loopback only" in str(wide.exception)
    missing = runner.invoke(
        app, ["broker", "broker-config", "--dir", str(tmp_path), "--tls-dir", str(tmp_path / "no")]
    )
    assert missing.exit_code != 0 and "ca.crt" in str(missing.exception)
    certs = make_certificates(tmp_path / "certs")
    ok = runner.invoke(
        app,
        [
            "broker",
            "broker-config",
            "--dir",
            str(tmp_path / "b"),
            "--tls-dir",
            str(certs),
            "--tls-host",
            "0.0.0.0",
            "--tls-port",
            "8883",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "listener 18883 127.0.0.1\n" in ok.output and "listener 8883 0.0.0.0\n" in ok.output
    assert f"keyfile {certs.resolve() / 'server.key'}\n" in ok.output
