"""Dashboards login roles against the real database: a firm's role reads its own firm's rows
and nothing else, no dashboards role can write, and the grants refuse what they must."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors

from core.db import Conn, connect
from core.errors import RegistryError
from dashboards.access import (
    AccessError,
    Credentials,
    grant_firm,
    grant_regulator,
    grant_township,
    revoke,
    scram_verifier,
)
from shouwang.launch import command
from tests.dashboards.demo_data import Summary
from tests.dashboards.panels import login_url

PID = os.getpid()
VIEWS = (
    "firms",
    "communities",
    "buildings",
    "devices",
    "readings",
    "readings_1m",
    "latest_readings",
    "events",
    "device_status",
    "alarms",
    "work_orders",
    "platform_alarms",
)


@pytest.fixture
def owner(demo: tuple[str, float, Summary]) -> Iterator[Conn]:
    with connect(demo[0], autocommit=True) as conn:
        yield conn


@pytest.fixture
def f01(owner: Conn) -> Iterator[Credentials]:
    role = f"dash_test_f01_{PID}"
    yield grant_firm(owner, "F01", role=role)
    revoke(owner, role)


def _rows(conn: Conn, sql: str) -> set[object]:
    return {r[0] for r in conn.execute(sql).fetchall()}


def test_a_firm_role_reads_its_own_firm_only(
    demo: tuple[str, float, Summary], owner: Conn, f01: Credentials, as_regulator: Conn
) -> None:
    own = _rows(
        owner,
        "SELECT c.code FROM communities c JOIN firms f ON f.id = c.firm_id WHERE f.code = 'F01'",
    )
    own_devices = _rows(
        owner,
        f"SELECT d.uid FROM devices d JOIN communities c ON c.id = d.community_id WHERE c.code IN ({', '.join(repr(c) for c in own)})",
    )
    assert own and own_devices
    with connect(login_url(demo[0], f01), autocommit=True) as conn:
        assert _rows(conn, "SELECT code FROM dash.firms") == {"F01"}
        assert _rows(conn, "SELECT firm_code FROM dash.communities") == {"F01"}
        assert _rows(conn, "SELECT community_code FROM dash.buildings") <= own
        assert _rows(conn, "SELECT uid FROM dash.devices") == own_devices
        for view in (
            "readings",
            "readings_1m",
            "latest_readings",
            "events",
            "alarms",
            "work_orders",
        ):
            seen = _rows(conn, f"SELECT DISTINCT device FROM dash.{view}")
            assert seen, f"dash.{view} shows F01 nothing"
            assert seen <= own_devices, f"dash.{view} shows other firms' devices"
        assert _rows(conn, "SELECT DISTINCT firm_code FROM dash.work_orders") == {"F01"}
    # the regulator sees both firms, so the checks above could have failed
    assert _rows(as_regulator, "SELECT firm_code FROM dash.communities") == {"F01", "F02"}
    assert len(_rows(as_regulator, "SELECT DISTINCT device FROM dash.readings")) > len(own_devices)


def test_a_role_without_a_firm_sees_nothing(demo: tuple[str, float, Summary], owner: Conn) -> None:
    role = f"dash_test_none_{PID}"
    creds = grant_firm(owner, "F02", role=role)
    owner.execute("DELETE FROM dash.firm_roles WHERE role_name = %s", (role,))
    try:
        with connect(login_url(demo[0], creds), autocommit=True) as conn:
            for view in VIEWS:
                assert conn.execute(f"SELECT count(*) FROM dash.{view}").fetchone() == (0,), view
    finally:
        revoke(owner, role)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM readings LIMIT 1",
        "SELECT * FROM devices LIMIT 1",
        "SELECT * FROM mqtt_accounts LIMIT 1",
        "SELECT * FROM dash.firm_roles",
        "SELECT * FROM dash.scope",
    ],
)
def test_a_firm_role_cannot_read_around_the_views(
    demo: tuple[str, float, Summary], f01: Credentials, sql: str
) -> None:
    with (
        connect(login_url(demo[0], f01), autocommit=True) as conn,
        pytest.raises(errors.InsufficientPrivilege),
    ):
        conn.execute(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO dash.firms (code, name) VALUES ('X1', 'x')",
        "UPDATE dash.firms SET name = 'x'",
        "DELETE FROM dash.firms",
        "INSERT INTO readings VALUES (now(), 1, 101, 1)",
        "UPDATE alarms SET state = 'cleared'",
        "CREATE TABLE public.grafana_scratch (x int)",
        "CREATE TABLE dash.grafana_scratch (x int)",
    ],
)
def test_dashboards_roles_cannot_write(
    demo: tuple[str, float, Summary], f01: Credentials, regulator: Credentials, sql: str
) -> None:
    for creds in (f01, regulator):
        with connect(login_url(demo[0], creds), autocommit=True) as conn:
            assert conn.execute("SHOW transaction_read_only").fetchone() == ("on",)
            with pytest.raises((errors.ReadOnlySqlTransaction, errors.InsufficientPrivilege)):
                conn.execute(sql)  # read-only by default ...
            conn.execute("SET default_transaction_read_only = off")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql)  # ... and without the privilege anyway


def test_granting_again_rotates_the_password(
    demo: tuple[str, float, Summary], owner: Conn, f01: Credentials
) -> None:
    again = grant_firm(owner, "F01", role=f01.role)
    assert again.password != f01.password
    with connect(login_url(demo[0], again), autocommit=True) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (f01.role,)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(login_url(demo[0], f01), connect_timeout=5).close()


def test_grants_refuse_what_they_must(owner: Conn, f01: Credentials) -> None:
    owner_role = owner.execute("SELECT current_user").fetchone()
    assert owner_role is not None
    with pytest.raises(AccessError, match="not a dashboards login"):
        grant_firm(owner, "F01", role=str(owner_role[0]))
    with pytest.raises(AccessError, match="already reads for firm F01"):
        grant_firm(owner, "F02", role=f01.role)
    with pytest.raises(AccessError, match="reads for a firm"):
        grant_regulator(owner, f01.role)
    with pytest.raises(RegistryError, match="no firm"):
        grant_firm(owner, "NOPE", role=f"dash_test_nope_{PID}")
    with pytest.raises(AccessError, match="not a usable role name"):
        grant_firm(owner, "F01", role="Robert'); DROP TABLE firms;--")


def test_credentials_name_the_database_as_this_connection_sees_it(
    owner: Conn, f01: Credentials
) -> None:
    assert f01.database == owner.info.dbname
    assert f01.port == owner.info.port
    assert f01.firm == "F01"
    creds = grant_firm(owner, "F01", role=f01.role, host="db.internal:5432")
    assert (creds.host, creds.port, creds.url) == ("db.internal", 5432, "db.internal:5432")


def test_the_password_reaches_the_server_as_a_scram_verifier(owner: Conn) -> None:
    v = scram_verifier(owner, "dash_x", "pencil")
    assert v.startswith("SCRAM-SHA-256$4096:") and "pencil" not in v
    stored, server = v.split("$")[2].split(":")
    assert len(stored) == len(server) == 44  # base64 of 32-byte keys
    assert scram_verifier(owner, "dash_x", "pencil") != v, "a new salt each time"


def test_the_grant_firm_command_prints_working_credentials(
    demo: tuple[str, float, Summary], owner: Conn, tmp_path: object
) -> None:
    role = f"dash_test_cli_{PID}"
    env = dict(os.environ, SHOUWANG_DATABASE_URL=demo[0], SHOUWANG_STATE_DIR=str(tmp_path))
    try:
        out = subprocess.run(
            command("dashboards", "grant-firm", "F02", "--role", role),
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        fields = dict(line.split(": ", 1) for line in out.strip().splitlines() if ": " in line)
        assert fields["user"] == role
        creds = Credentials(role, fields["password"], "", 0, "", "F02")
        with connect(login_url(demo[0], creds), autocommit=True) as conn:
            assert _rows(conn, "SELECT code FROM dash.firms") == {"F02"}
    finally:
        revoke(owner, role)


def test_the_grant_regulator_command_takes_the_password_it_is_given(
    demo: tuple[str, float, Summary], owner: Conn, tmp_path: object
) -> None:
    """As docker-compose's setup runs it on every start: the provisioned data source's role."""
    env = dict(os.environ, SHOUWANG_DATABASE_URL=demo[0], SHOUWANG_STATE_DIR=str(tmp_path))
    role = f"dash_test_reg_cli_{PID}"
    argv = command("dashboards", "grant-regulator", role)
    try:
        for password in ("first-demo", "second-demo"):
            subprocess.run(
                [*argv, "--password", password],
                env=env,
                capture_output=True,
                timeout=60,
                check=True,
            )
            creds = Credentials(role, password, "", 0, "", None)
            with connect(login_url(demo[0], creds), autocommit=True) as conn:
                assert _rows(conn, "SELECT code FROM dash.firms") == _rows(
                    owner, "SELECT code FROM firms"
                )
    finally:
        revoke(owner, role)


def test_a_township_role_reads_the_communities_under_its_township_only(
    demo: tuple[str, float, Summary], owner: Conn, as_regulator: Conn
) -> None:
    (township,) = owner.execute(
        "SELECT t.code FROM communities c JOIN regions t ON t.id = c.region_id WHERE c.code = 'C01'"
    ).fetchone() or ("",)
    under = _rows(
        owner,
        "SELECT c.code FROM communities c JOIN regions r ON r.id = c.region_id"
        f" WHERE r.code = '{township}' OR r.parent_id = (SELECT id FROM regions WHERE code = '{township}')",
    )
    role = f"dash_test_town_{PID}"
    creds = grant_township(owner, township, role=role)
    try:
        assert creds.township == township
        with connect(login_url(demo[0], creds), autocommit=True) as conn:
            assert _rows(conn, "SELECT code FROM dash.communities") == under == {"C01"}
            assert _rows(conn, "SELECT code FROM dash.firms") == {"F01"}
            devices = _rows(conn, "SELECT uid FROM dash.devices")
            assert devices and all(uid.startswith("C01-") for uid in devices)
            for view in ("readings", "readings_1m", "alarms", "work_orders"):
                seen = _rows(conn, f"SELECT DISTINCT device FROM dash.{view}")
                assert seen and seen <= devices, f"dash.{view}"
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM dash.region_roles")
        # the regulator sees the other township's community, so the checks above could fail
        assert "C02" in _rows(as_regulator, "SELECT code FROM dash.communities")
    finally:
        revoke(owner, role)
    assert owner.execute(
        "SELECT count(*) FROM dash.region_roles WHERE role_name = %s", (role,)
    ).fetchone() == (0,)
    with pytest.raises(AccessError, match="grant-regulator"):
        grant_township(owner, "DEMO", role=role)
    with pytest.raises(RegistryError, match="no region"):
        grant_township(owner, "T99", role=role)


def test_only_the_regulator_reads_platform_alarms(
    demo: tuple[str, float, Summary], f01: Credentials, owner: Conn, as_regulator: Conn
) -> None:
    """Nobody's community: a firm's or a township's login sees none of them."""
    seen = _rows(as_regulator, "SELECT kind FROM dash.platform_alarms")
    assert {"feed_silent", "stage_restarted", "detector_quarantined"} <= seen
    role = f"dash_test_town_p_{PID}"
    township = grant_township(owner, "T01", role=role)
    try:
        for creds in (f01, township):
            with connect(login_url(demo[0], creds), autocommit=True) as conn:
                assert conn.execute("SELECT count(*) FROM dash.platform_alarms").fetchone() == (0,)
                with pytest.raises(errors.InsufficientPrivilege):
                    conn.execute("SELECT * FROM platform_alarms")
    finally:
        revoke(owner, role)
