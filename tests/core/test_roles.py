"""The stages' database roles on the real database (migration 0021, ``core/roles.py``): each
stage's login may do what the stage does and is refused the rest by PostgreSQL itself."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.db import Conn, connect
from core.errors import ConfigError
from core.roles import STAGE_ROLES, login
from core.settings import Settings
from ingest.store import drop_old_chunks
from tests.conftest import settings_env, shouwang

# What each stage does, from its code: (table, privileges) it must have.
NEEDS: dict[str, list[tuple[str, str]]] = {
    "ingest": [
        ("devices", "SELECT"),
        ("gateways", "SELECT"),
        ("metrics", "SELECT"),
        ("event_codes", "SELECT"),
        ("readings", "INSERT"),
        ("events", "INSERT"),
        ("device_status", "INSERT"),
        ("rejects", "INSERT"),
        ("latest_readings", "INSERT, UPDATE"),
        ("device_presence", "INSERT, UPDATE"),
        ("rejects_counted", "INSERT, UPDATE"),
        ("rollup_dirty", "INSERT"),
        ("schema_migrations", "SELECT"),
        ("gateway_state", "SELECT, INSERT, UPDATE"),
        ("gateway_configs", "SELECT, UPDATE"),  # the gateways' answers to config pushes
        ("platform_alarms", "SELECT, INSERT, UPDATE"),  # gateway_dropped, gateway_clock
    ],
    "analytics": [
        ("readings", "SELECT"),
        ("devices", "SELECT"),
        ("responsibility_lists", "SELECT"),
        ("holiday_schedules", "SELECT"),
        ("alarms", "SELECT, INSERT, UPDATE"),
        ("work_orders", "SELECT, INSERT, UPDATE"),
        ("work_order_transitions", "INSERT"),
        ("work_order_breaches", "INSERT"),
        ("escalation_steps", "INSERT, UPDATE"),
        ("outbox", "INSERT"),
        ("change_log", "INSERT"),  # the alarms' and work orders' triggers
        ("detector_models", "SELECT, INSERT, UPDATE"),
        ("readings_1m", "SELECT, INSERT, DELETE"),
        ("rollup_state", "SELECT, INSERT, UPDATE"),
        ("rollup_dirty", "SELECT, DELETE"),
        ("platform_alarms", "SELECT, INSERT, UPDATE"),
    ],
    "notify": [
        ("outbox", "SELECT, INSERT, UPDATE"),
        ("deliveries", "INSERT"),
        ("notify_groups", "SELECT, INSERT, UPDATE"),
        ("escalation_steps", "SELECT, UPDATE"),
        ("platform_notices", "SELECT, INSERT, UPDATE"),
        ("platform_deliveries", "INSERT"),
        ("people", "SELECT"),
        ("contact_channels", "SELECT"),
        ("duty_shifts", "SELECT"),
        ("platform_shifts", "SELECT"),
        ("alarms", "SELECT"),
    ],
    "api": [
        ("devices", "SELECT, INSERT, UPDATE, DELETE"),
        ("communities", "SELECT, INSERT, UPDATE, DELETE"),
        ("people", "SELECT, INSERT, UPDATE, DELETE"),
        ("contact_channels", "SELECT, INSERT, UPDATE, DELETE"),
        ("api_tokens", "SELECT, INSERT, UPDATE"),
        ("mqtt_accounts", "SELECT, INSERT, UPDATE"),
        ("alarms", "SELECT, UPDATE"),
        ("work_orders", "SELECT, UPDATE"),
        ("work_order_comments", "INSERT"),
        ("ack_tokens_used", "INSERT"),
        ("change_log", "SELECT, INSERT, DELETE"),
        ("readings", "SELECT"),
        ("latest_readings", "SELECT"),
        ("gateway_configs", "SELECT, INSERT, DELETE"),  # config pushes
        ("gateway_state", "SELECT"),
    ],
}
# What each stage must not do.
REFUSED: dict[str, list[tuple[str, str]]] = {
    "ingest": [
        ("devices", "INSERT"),
        ("devices", "UPDATE"),
        ("devices", "DELETE"),
        ("gateways", "UPDATE"),
        ("mqtt_accounts", "SELECT"),
        ("api_tokens", "SELECT"),
        ("people", "SELECT"),
        ("alarms", "INSERT"),
    ],
    "analytics": [
        ("devices", "UPDATE"),
        ("readings", "INSERT"),
        ("api_tokens", "SELECT"),
        ("mqtt_accounts", "SELECT"),
        ("people", "SELECT"),
        ("contact_channels", "SELECT"),
    ],
    "notify": [
        ("alarms", "UPDATE"),
        ("devices", "UPDATE"),
        ("readings", "INSERT"),
        ("api_tokens", "SELECT"),
        ("mqtt_accounts", "SELECT"),
    ],
    "api": [
        ("readings", "INSERT"),
        ("readings", "DELETE"),
        ("readings", "TRUNCATE"),
        ("devices", "TRUNCATE"),
        ("latest_readings", "UPDATE"),
        ("schema_migrations", "INSERT"),
        ("metrics", "UPDATE"),
    ],
}


@pytest.fixture(scope="module")
def logins(database_url: str) -> Iterator[dict[str, str]]:
    """A login role of each stage, its URL to the test database."""
    urls: dict[str, str] = {}
    with connect(database_url, autocommit=True) as owner:
        for stage in STAGE_ROLES:
            role, password = f"test_{stage}_{os.getpid()}", secrets.token_urlsafe(24)
            login(owner, stage, password, role)
            params = conninfo_to_dict(database_url) | {"user": role, "password": password}
            urls[stage] = make_conninfo(**params)  # type: ignore[arg-type]
        yield urls
        for stage in STAGE_ROLES:
            role = f"test_{stage}_{os.getpid()}"
            owner.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.mark.parametrize("stage", sorted(STAGE_ROLES))
def test_each_stage_may_do_what_it_does_and_nothing_it_does_not(
    db: Conn, logins: dict[str, str], stage: str
) -> None:
    role = conninfo_to_dict(logins[stage])["user"]
    missing = [
        (table, privs)
        for table, privs in NEEDS[stage]
        if not db.execute(
            "SELECT has_table_privilege(%s, %s, %s)", (role, table, privs)
        ).fetchone()[0]  # type: ignore[index]
    ]
    allowed = [
        (table, priv)
        for table, priv in REFUSED[stage]
        if db.execute("SELECT has_table_privilege(%s, %s, %s)", (role, table, priv)).fetchone()[0]  # type: ignore[index]
    ]
    assert (missing, allowed) == ([], [])
    assert db.execute(
        "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls FROM pg_roles"
        " WHERE rolname = %s",
        (role,),
    ).fetchone() == (False,)


def refused(url: str, statement: str) -> bool:
    """Whether PostgreSQL refuses ``statement`` to this login (rolled back either way)."""
    with connect(url) as conn:
        try:
            conn.execute(statement)
        except psycopg.errors.InsufficientPrivilege:
            return True
        finally:
            conn.rollback()
    return False


def test_the_database_itself_refuses_what_a_stage_may_not_do(
    logins: dict[str, str], county: object
) -> None:
    assert refused(logins["ingest"], "UPDATE devices SET active = active")
    assert refused(logins["ingest"], "DELETE FROM gateways")
    assert refused(logins["ingest"], "SELECT password_hash FROM mqtt_accounts")
    assert not refused(logins["ingest"], "SELECT count(*) FROM devices")
    assert refused(logins["analytics"], "UPDATE devices SET active = active")
    assert refused(logins["notify"], "UPDATE alarms SET state = state")
    assert refused(logins["api"], "TRUNCATE readings")
    assert refused(logins["api"], "DELETE FROM readings")
    assert not refused(logins["api"], "UPDATE devices SET active = active")
    for stage in ("analytics", "notify", "api"):
        with connect(logins[stage]) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT drop_chunks('readings', older_than => now() - interval '1 year')")


def test_ingest_runs_retention_and_nobody_else_can(
    db: Conn, logins: dict[str, str], county: object
) -> None:
    old = datetime.now(UTC) - timedelta(days=500)
    device = db.execute("SELECT min(id) FROM devices").fetchone()
    assert device is not None and device[0] is not None, "no device: the county fixture seeds them"
    with connect(logins["ingest"], autocommit=True) as ingest:
        ingest.execute(
            "INSERT INTO readings (ts, device_id, metric_id, value)"
            " SELECT %s, %s, min(id), 1 FROM metrics",
            (old, device[0]),
        )
        assert drop_old_chunks(ingest, retention_days=400, rejects_retention_days=30) >= 1
    assert db.execute("SELECT count(*) FROM readings WHERE ts = %s", (old,)).fetchone() == (0,)


def test_tables_added_later_get_the_default_grants(db: Conn, logins: dict[str, str]) -> None:
    roles = {s: conninfo_to_dict(u)["user"] for s, u in logins.items()}
    with db.transaction(force_rollback=True):
        db.execute("CREATE TABLE later_added (id bigserial PRIMARY KEY, note text)")

        def may(stage: str, privs: str) -> bool:
            got = db.execute(
                "SELECT has_table_privilege(%s, 'later_added', %s)", (roles[stage], privs)
            ).fetchone()
            return bool(got and got[0])

        assert may("api", "SELECT, INSERT, UPDATE, DELETE")
        assert may("analytics", "SELECT") and not may("analytics", "INSERT")
        assert may("notify", "SELECT") and not may("notify", "UPDATE")
        assert not may("ingest", "SELECT")


def test_a_login_is_refused_for_anything_but_a_plain_member(db: Conn) -> None:
    owner = str(db.execute("SELECT current_user").fetchone()[0])  # type: ignore[index]
    with pytest.raises(ConfigError, match="not only a login of shouwang_ingest"):
        login(db, "ingest", secrets.token_urlsafe(24), owner)
    with pytest.raises(ConfigError, match="group role"):
        login(db, "api", secrets.token_urlsafe(24), "shouwang_api")
    with pytest.raises(ConfigError, match="no such stage"):
        login(db, "dashboards", secrets.token_urlsafe(24))
    with pytest.raises(ConfigError, match="at least 16"):
        login(db, "ingest", "short", f"test_short_{os.getpid()}")
    with pytest.raises(ConfigError, match="usable role name"):
        login(db, "ingest", secrets.token_urlsafe(24), "Robert'); DROP TABLE devices;--")


def rolled_up(db: Conn, at: datetime) -> bool:
    rolled = db.execute("SELECT count(*) FROM readings_1m WHERE bucket = %s", (at,)).fetchone()
    return rolled is not None and rolled[0] >= 1


@pytest.mark.parametrize("stage", ["analytics", "notify"])
def test_a_stage_runs_under_its_own_login(
    stage: str, logins: dict[str, str], settings: Settings, db: Conn, tmp_path: Path
) -> None:
    """Started with its own login, the stage reads what it reads at start and runs its loops
    (analytics: the rollup pass; notify: claims, groups, escalations) without a refusal."""
    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    db.execute("DELETE FROM readings_1m WHERE bucket = %s", (at,))
    db.execute(
        "INSERT INTO readings (ts, device_id, metric_id, value)"
        " SELECT %s, min(d.id), min(m.id), 1 FROM devices d, metrics m ON CONFLICT DO NOTHING",
        (at,),
    )
    # A late reading, as ingest records one: whatever the rollup has already passed (an earlier
    # test may have run analytics on this database), the minute is recomputed on the next pass.
    db.execute("INSERT INTO rollup_dirty (bucket) VALUES (%s) ON CONFLICT DO NOTHING", (at,))
    s = settings.model_copy(
        update={"database_url": logins[stage], "analytics_client_id": f"roles-{stage}"}
    )
    log = tmp_path / f"{stage}.log"
    args = ["analytics"] if stage == "analytics" else ["notify", "--name", "roles-notify"]
    with log.open("wb") as out:
        proc = subprocess.Popen(shouwang(*args), env=settings_env(s), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline or (stage == "analytics" and not rolled_up(db, at)):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline + 30, "the rollup pass wrote nothing in 38 s"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    said = log.read_text(errors="replace")
    assert "permission denied" not in said.lower() and "InsufficientPrivilege" not in said, said
    if stage == "analytics":
        assert "analytics running" in said, said
        assert rolled_up(db, at), "the rollup pass wrote nothing"


def test_ingest_archives_old_readings_and_the_api_reads_them(
    db: Conn, logins: dict[str, str], county: object
) -> None:
    from ingest.archive import archive_pass

    old = datetime(2024, 7, 1, 12, tzinfo=UTC)
    device = db.execute("SELECT min(id) FROM devices").fetchone()
    assert device is not None and device[0] is not None
    with connect(logins["ingest"], autocommit=True) as ingest:
        ingest.execute(
            "INSERT INTO readings (ts, device_id, metric_id, value)"
            " SELECT %s, %s, min(id), 1.5 FROM metrics",
            (old, device[0]),
        )
        done = archive_pass(ingest, now=old + timedelta(days=3), after_days=2)
        assert done.readings >= 1
    assert db.execute("SELECT count(*) FROM readings WHERE ts = %s", (old,)).fetchone() == (0,)
    with connect(logins["api"], autocommit=True) as api:
        assert api.execute(
            "SELECT value FROM readings_between(%s, %s) WHERE device_id = %s",
            (old, old + timedelta(seconds=1), device[0]),
        ).fetchall() == [(1.5,)]
    assert refused(logins["api"], "DELETE FROM readings_archive")
    assert refused(logins["analytics"], "DELETE FROM readings_archive")
