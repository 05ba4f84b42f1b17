"""API test fixtures: one token per role (and per scope) over the small demo county, an
in-process client, a live uvicorn server for the stream, and alarm / work-order factories.

The API tests create, change and delete registry records, and issue and revoke credentials, so
they run on a database and a Mosquitto of their own (the small demo county seeded the same way
as ``tests/conftest.py``'s), leaving the session's shared ones as the other suites expect them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal

from api.app import create_app
from api.tokens import issue
from broker.files import broker_config
from core.db import Conn, connect
from core.settings import Settings
from simulators.seed import seed
from tests.conftest import (
    SMALL,
    Broker,
    free_port,
    fresh_database,
    settings_for,
    sync_broker,
)
from tests.mqtt_helpers import peer


@contextmanager
def seeded_database(name: str, secrets_file: Path) -> Iterator[str]:
    """A fresh database ``name`` with the schema and the small demo county; dropped afterwards."""
    with fresh_database(name) as url:
        with connect(url, autocommit=True) as conn:
            seed(conn, SMALL, secrets_file)
        yield url


@pytest.fixture(scope="session")
def api_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    secrets_file = tmp_path_factory.mktemp("api-seed") / "device-secrets.json"
    with seeded_database(f"shouwang_api_test_{os.getpid()}", secrets_file) as url:
        yield url


@pytest.fixture(scope="session")
def api_broker(tmp_path_factory: pytest.TempPathFactory, api_database: str) -> Iterator[Broker]:
    """A Mosquitto of the API tests' own, with the accounts of their database."""
    d = tmp_path_factory.mktemp("api-broker")
    port = free_port()
    (d / "passwd").write_text("")
    (d / "acl").write_text("")
    conf = d / "mosquitto.conf"
    conf.write_text(broker_config(host="127.0.0.1", port=port, directory=d, persistence=False))
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("the API tests' mosquitto did not start")
            time.sleep(0.05)
    broker = Broker("127.0.0.1", port, d, proc)
    with connect(api_database, autocommit=True) as conn:
        sync_broker(conn, broker)
    yield broker
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


@dataclass(frozen=True)
class Ids:
    """Ids of the small county's records, by code."""

    communities: dict[str, int]
    firms: dict[str, int]
    regions: dict[str, int]
    units: dict[str, int]
    devices: dict[str, int]  # uid -> id
    device_info: dict[str, tuple[str, str]]  # uid -> (community code, device class)

    def device_in(self, community: str, device_class: str = "elevator", n: int = 0) -> str:
        """The ``n``-th device of this class in the community (by uid)."""
        return sorted(
            uid
            for uid, (c, cls) in self.device_info.items()
            if (c, cls) == (community, device_class)
        )[n]


@pytest.fixture(scope="session")
def ids(api_database: str) -> Ids:
    with connect(api_database) as db:

        def codes(table: str) -> dict[str, int]:
            return {str(c): int(i) for c, i in db.execute(f"SELECT code, id FROM {table}")}

        devices = db.execute(
            "SELECT d.uid, d.id, c.code, d.device_class FROM devices d"
            " JOIN communities c ON c.id = d.community_id"
        ).fetchall()
        return Ids(
            communities=codes("communities"),
            firms=codes("firms"),
            regions=codes("regions"),
            units=codes("maintenance_units"),
            devices={str(u): int(i) for u, i, _, _ in devices},
            device_info={str(u): (str(c), str(k)) for u, _, c, k in devices},
        )


# Who the tokens are for: the small county has C01 (township T01, firm F01, lifts by MU-EL1)
# and C02 (township T02, firm F02, lifts by MU-EL2).
TOKENS: dict[str, tuple[str, dict[str, str]]] = {
    "regulator": ("county_regulator", {}),
    "township_t01": ("township", {"region": "T01"}),
    "township_t02": ("township", {"region": "T02"}),
    "firm_f01": ("firm_admin", {"firm": "F01"}),
    "firm_f02": ("firm_admin", {"firm": "F02"}),
    "duty_c01": ("duty_staff", {"community": "C01"}),
    "duty_c02": ("duty_staff", {"community": "C02"}),
    "duty_f01": ("duty_staff", {"firm": "F01"}),
    "unit_el1": ("maintenance_unit", {"unit": "MU-EL1"}),
    "unit_el2": ("maintenance_unit", {"unit": "MU-EL2"}),
    "platform": ("platform_operator", {}),
    "platform_2": ("platform_operator", {}),
}


@pytest.fixture(scope="session")
def tokens(api_database: str) -> dict[str, str]:
    """A bearer token per entry of ``TOKENS``."""
    with connect(api_database, autocommit=True) as db:
        return {
            key: issue(db, role, f"api test {key}", scope).token
            for key, (role, scope) in TOKENS.items()
        }


# The suites write as fast as they can with a few shared tokens: no write limit in their way
# (tests/api/test_limits.py runs apps with small ones).
UNLIMITED_WRITES: dict[str, Any] = {"api_write_rate_per_s": 1e6, "api_write_burst": 1_000_000}


@pytest.fixture(scope="session")
def api_settings(
    tmp_path_factory: pytest.TempPathFactory, api_database: str, api_broker: Broker
) -> Settings:
    return settings_for(
        api_database,
        api_broker,
        tmp_path_factory.mktemp("api-state"),
        api_pool_size=4,
        **UNLIMITED_WRITES,
    )


class Api:
    """The in-process API, called as a given token holder: ``api.as_("firm_f01").get(...)``."""

    def __init__(self, client: Any, tokens: dict[str, str]) -> None:
        self.client = client
        self.tokens = tokens

    def as_(self, who: str) -> _As:
        return _As(self.client, {"Authorization": f"Bearer {self.tokens[who]}"})

    def anonymous(self) -> _As:
        return _As(self.client, {})


@dataclass
class _As:
    client: Any
    headers: dict[str, str]

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        headers = {**self.headers, **kw.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kw)  # type: ignore[no-any-return]

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def patch(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


class InProcess:
    """The app in-process with its lifespan run (pools open and close), called synchronously:
    requests go through httpx's ASGI transport on an event loop in a helper thread."""

    def __init__(self, portal: BlockingPortal, client: httpx.AsyncClient) -> None:
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        return self._portal.call(partial(self._client.request, method, url, **kw))


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c,
    ):
        yield c


@contextmanager
def in_process(settings: Settings) -> Iterator[InProcess]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(serving(settings)) as client,
    ):
        yield InProcess(portal, client)


@pytest.fixture(scope="session")
def api(api_settings: Settings, tokens: dict[str, str]) -> Iterator[Api]:
    with in_process(api_settings) as client:
        yield Api(client, tokens)


@pytest.fixture
def api_db(api_database: str) -> Iterator[Conn]:
    """An autocommit connection to the API tests' database."""
    with connect(api_database, autocommit=True) as conn:
        yield conn


@dataclass
class LiveServer:
    url: str


@contextmanager
def live(settings: Settings) -> Iterator[LiveServer]:
    """The API under uvicorn on a free loopback port, in a thread, until the block ends."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the API server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session")
def live_server(api_settings: Settings) -> Iterator[LiveServer]:
    with live(api_settings) as server:
        yield server


# Factories: alarms and work orders as analytics files them.


def make_alarm(
    db: Conn,
    device_id: int,
    *,
    code: str = "EL.TRAPPED",
    severity: str = "P0",
    work_order: bool = True,
    unit_id: int | None = None,
    opened: datetime | None = None,
) -> tuple[int, int | None]:
    """An active alarm on the device and (by default) its work order; (alarm id, work order id).
    Any earlier open alarm of the same device and code is cleared first."""
    opened = opened or datetime.now(UTC) - timedelta(minutes=5)
    db.execute(
        "UPDATE alarms SET state = 'cleared', cleared_at = now() WHERE device_id = %s"
        " AND event_code = %s AND state <> 'cleared'",
        (device_id, code),
    )
    row = db.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
        " last_triggered_at, list_version) VALUES (%s, %s, %s, 'active', 'test', %s, %s, 'test')"
        " RETURNING id",
        (device_id, code, severity, opened, opened),
    ).fetchone()
    assert row is not None
    alarm_id = int(row[0])
    if not work_order:
        return alarm_id, None
    wo = db.execute(
        "INSERT INTO work_orders (alarm_id, device_id, community_id, firm_id, maintenance_unit_id,"
        " event_code, severity, responsible_party, supervisor, status, opened_at, response_due,"
        " arrival_due, resolution_due, emergency_fund, notify_regulator, list_version)"
        " SELECT %(a)s, d.id, d.community_id, c.firm_id, coalesce(%(unit)s, d.maintenance_unit_id),"
        " %(code)s, %(sev)s, 'elevator_maintenance_unit', 'county_housing_bureau', 'occurred',"
        " %(t)s, %(t)s + interval '5 minutes', %(t)s + interval '30 minutes',"
        " %(t)s + interval '4 hours', false, false, 'test'"
        " FROM devices d JOIN communities c ON c.id = d.community_id WHERE d.id = %(d)s"
        " RETURNING id",
        {
            "a": alarm_id,
            "unit": unit_id,
            "code": code,
            "sev": severity,
            "t": opened,
            "d": device_id,
        },
    ).fetchone()
    assert wo is not None
    db.execute(
        "INSERT INTO work_order_transitions (work_order_id, at, actor, to_status)"
        " VALUES (%s, %s, 'system', 'occurred')",
        (wo[0], opened),
    )
    return alarm_id, int(wo[0])


def can_connect(broker: Broker, username: str, password: str) -> bool:
    p = peer(broker.host, broker.port, username, password)
    try:
        return p.connect_rc is not None and not p.connect_rc.is_failure
    finally:
        p.close()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether ``check`` holds within ``timeout`` (the broker reloads its files asynchronously)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


# The browser tests' Chromium (one per module that asks for it).
from tests.api.browser import chromium  # noqa: E402, F401
