"""Test fixtures: a real PostgreSQL + TimescaleDB and a real Mosquitto, never mocks.

The database comes from the local stack (``scripts/stack.sh up``, which the test command runs);
each session gets a fresh database in it. The broker is the tests' own Mosquitto on a free
loopback port, with its own password file and ACL. A missing service fails the run loudly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import SecretStr

from broker.files import TlsListener, broker_config
from broker.sync import ServiceAccount, sync
from core.db import Conn, connect, migrate
from core.settings import Settings, load_settings
from shouwang.launch import command
from simulators.county import County, demo_county
from simulators.seed import seed

if TYPE_CHECKING:
    from ingest.consumer import Consumer

ROOT = Path(__file__).resolve().parent.parent
INGEST_PASSWORD = "ingest-test-password"
ADMIN_PASSWORD = "admin-test-password"
ANALYTICS_PASSWORD = "analytics-test-password"
NOTIFY_PASSWORD = "notify-test-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_database(name: str) -> Iterator[str]:
    """A new database ``name`` in the local cluster with the schema migrated; its URL. Dropped
    afterwards. Fails loudly when PostgreSQL is not there (CI must not skip)."""
    admin_url = load_settings().database_url
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url!r} ({e}); run 'scripts/stack.sh up'"
        )
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
        params = conninfo_to_dict(admin_url)
        params["dbname"] = name
        url = make_conninfo(**params)  # type: ignore[arg-type]
        try:
            with connect(url) as conn:
                migrate(conn)
            yield url
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database(f"shouwang_test_{os.getpid()}") as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Conn]:
    with connect(database_url, autocommit=True) as conn:
        yield conn


def make_certificates(directory: Path, *names: str) -> Path:
    """A CA and a broker certificate for ``names`` (default localhost, 127.0.0.1) in
    ``directory``, made by scripts/certs.sh as the local stack makes its own."""
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "certs.sh"), str(directory), *names],
        check=True,
        capture_output=True,
    )
    return directory


@dataclass
class Broker:
    host: str
    port: int
    directory: Path
    proc: subprocess.Popen[bytes]
    tls_port: int | None = None  # the TLS listener, with certificates
    certificates: Path | None = None  # ... from this directory (ca.crt: clients' trust)

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    @property
    def pid_file(self) -> Path:
        return self.directory / "mosquitto.pid"


def start_broker(
    directory: Path,
    *,
    persistence: bool = False,
    port: int | None = None,
    tls: Path | None = None,
) -> Broker:
    """A Mosquitto of the platform's configuration in ``directory`` (files kept if present),
    listening on loopback, and over TLS too with the certificates in ``tls``
    (:func:`make_certificates`); fails the test if it does not come up."""
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    for name in ("passwd", "acl"):
        if not (directory / name).exists():
            (directory / name).write_text("")
    listener = None if tls is None else TlsListener.in_directory("127.0.0.1", free_port(), tls)
    conf = directory / "mosquitto.conf"
    conf.write_text(
        broker_config(
            host="127.0.0.1",
            port=port,
            directory=directory,
            persistence=persistence,
            tls=listener,
        )
    )
    try:
        proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except FileNotFoundError:
        pytest.fail("mosquitto is not installed; run scripts/setup.sh")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if listener is not None:
                socket.create_connection(("127.0.0.1", listener.port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                log = directory / "mosquitto.log"
                pytest.fail(
                    f"mosquitto exited: {log.read_text(errors='replace') if log.exists() else ''}"
                )
            time.sleep(0.05)
    else:
        pytest.fail("mosquitto did not start listening within 10 s")
    if listener is None:
        return Broker("127.0.0.1", port, directory, proc)
    return Broker("127.0.0.1", port, directory, proc, listener.port, listener.cafile.parent)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = start_broker(tmp_path_factory.mktemp("broker"))
    yield b
    b.proc.send_signal(signal.SIGTERM)
    b.proc.wait(10)


SMALL = demo_county(communities=2, buildings=3, seed=11)


@pytest.fixture(scope="session")
def county(
    database_url: str, broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> tuple[County, dict[str, str]]:
    """A small county in the test database, its credentials live on the test broker."""
    secrets_file = tmp_path_factory.mktemp("state") / "device-secrets.json"
    with connect(database_url, autocommit=True) as conn:
        secrets = seed(conn, SMALL, secrets_file)
        sync_broker(conn, broker)
    return SMALL, secrets


def sync_broker(conn: Conn, broker: Broker) -> None:
    sync(
        conn,
        [
            ServiceAccount(
                "svc-ingest", INGEST_PASSWORD, "ingest", "SHOUWANG_MQTT_INGEST_PASSWORD"
            ),
            ServiceAccount(
                "svc-analytics", ANALYTICS_PASSWORD, "analytics", "SHOUWANG_MQTT_ANALYTICS_PASSWORD"
            ),
            ServiceAccount(
                "svc-notify", NOTIFY_PASSWORD, "notify", "SHOUWANG_NOTIFY_MQTT_PASSWORD"
            ),
            ServiceAccount("svc-admin", ADMIN_PASSWORD, "admin", "SHOUWANG_MQTT_ADMIN_PASSWORD"),
        ],
        passwd=broker.passwd,
        acl=broker.acl,
        pid_file=broker.pid_file,
        share_group="ingest",
    )
    time.sleep(0.3)  # the broker re-reads its files on SIGHUP, asynchronously


@pytest.fixture
def settings(
    database_url: str, broker: Broker, county: tuple[County, dict[str, str]], tmp_path: Path
) -> Settings:
    """Settings pointing every component at the test services (as environment variables would)."""
    secrets = tmp_path / "device-secrets.json"
    import json

    secrets.write_text(json.dumps(county[1]))
    return settings_for(
        database_url,
        broker,
        tmp_path,
        notify_ack_secret=SecretStr("ack-test-secret"),
    )


def settings_for(
    database_url: str, broker: Broker, state_dir: Path, *, tls: bool = False, **more: Any
) -> Settings:
    """Settings for this database and test broker, with the test services' passwords (``tls``:
    connecting to its TLS listener)."""
    if tls:
        assert broker.tls_port and broker.certificates, "start the broker with tls="
        more |= {"mqtt_tls": True, "mqtt_ca_file": broker.certificates / "ca.crt"}
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        state_dir=state_dir,
        database_url=database_url,
        mqtt_host=broker.host,
        mqtt_port=broker.tls_port if tls else broker.port,
        mqtt_ingest_password=SecretStr(INGEST_PASSWORD),
        mqtt_admin_password=SecretStr(ADMIN_PASSWORD),
        mqtt_analytics_password=SecretStr(ANALYTICS_PASSWORD),
        notify_mqtt_password=SecretStr(NOTIFY_PASSWORD),
        broker_password_file=broker.passwd,
        broker_acl_file=broker.acl,
        broker_pid_file=broker.pid_file,
        **more,
    )


def settings_env(s: Settings) -> dict[str, str]:
    """The environment that makes a ``shouwang`` subprocess use ``s``."""
    env = dict(os.environ)
    env.update(
        {
            "SHOUWANG_STATE_DIR": str(s.state_dir),
            "SHOUWANG_DATABASE_URL": s.database_url,
            "SHOUWANG_MQTT_HOST": s.mqtt_host,
            "SHOUWANG_MQTT_PORT": str(s.mqtt_port),
            "SHOUWANG_MQTT_TLS": str(s.mqtt_tls).lower(),
            "SHOUWANG_MQTT_INGEST_PASSWORD": s.mqtt_ingest_password.get_secret_value(),
            "SHOUWANG_MQTT_ADMIN_PASSWORD": s.mqtt_admin_password.get_secret_value(),
            "SHOUWANG_MQTT_ANALYTICS_PASSWORD": s.mqtt_analytics_password.get_secret_value(),
            "SHOUWANG_NOTIFY_MQTT_PASSWORD": s.notify_mqtt_password.get_secret_value(),
            "SHOUWANG_NOTIFY_ACK_SECRET": s.notify_ack_secret.get_secret_value(),
            "SHOUWANG_BROKER_PASSWORD_FILE": str(s.broker_password_file),
            "SHOUWANG_BROKER_ACL_FILE": str(s.broker_acl_file),
            "SHOUWANG_BROKER_PID_FILE": str(s.broker_pid_file),
        }
    )
    if s.mqtt_ca_file is not None:
        env["SHOUWANG_MQTT_CA_FILE"] = str(s.mqtt_ca_file)
    return env


def clear_people(db: Conn) -> None:
    """Remove everyone on the roster, their channels, shifts, duty-app accounts, page logins,
    sessions and field records, and every notification; device credentials stay (TRUNCATE people
    CASCADE would take them too)."""
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, notify_groups, duty_shifts, contact_channels,"
        " person_logins, page_sessions, work_order_arrivals, work_order_handovers CASCADE"
    )
    db.execute("DELETE FROM mqtt_accounts WHERE kind = 'person'")
    db.execute("DELETE FROM people")


def shouwang(*args: str) -> list[str]:
    return command(*args)


@pytest.fixture
def ingest_worker(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Consumer]:
    """An ingest worker running in a thread of the test process, against the test services
    (``request.param``: overrides of its config, for an indirect parametrisation)."""
    from ingest.__main__ import config_from
    from ingest.consumer import Consumer, retire_session
    from tests.background import running

    cfg = config_from(settings, f"test-ingest-{request.node.name}"[:60])
    overrides = getattr(request, "param", {})
    if overrides:
        cfg = replace(cfg, **overrides)
    consumer = Consumer(cfg, settings.database_url)
    try:
        with running(consumer.run, consumer.stop, "ingest"):
            assert consumer._connected.wait(10), "ingest did not connect"
            yield consumer
    finally:
        retire_session(cfg)
        consumer.conn.close()
