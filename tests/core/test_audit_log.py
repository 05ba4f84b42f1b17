"""The audit log in the database (migration 0022, ``core/audit.py``): every audited table has its
trigger, whoever changes it is recorded (a named actor, else the login role), an update keeps only
what it changed, secrets never enter it, analytics' own alarm changes stay out, only the
triggers write it and retention keeps at least 180 days."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from core import audit
from core.audit import Actor
from core.db import Conn, connect
from core.settings import Settings
from core.severity import Severity
from lifecycle.platform import PlatformKind, acknowledge, clear_alarm, raise_alarm
from lifecycle.work_orders import transition

SECRET_COLUMN = re.compile(
    r"(^|_)(password|passwd|secret|hash|passphrase|private_key|api_key)(_|$)", re.IGNORECASE
)


def entries(db: Conn, after: int, **where: Any) -> list[dict[str, Any]]:
    """The log's entries after id ``after`` matching ``where`` (column = value), oldest first."""
    clause = "".join(f" AND {k} = %({k})s" for k in where)
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT * FROM audit_log WHERE id > %(after)s{clause} ORDER BY id",
            {"after": after, **where},
        )
        return cur.fetchall()


def last_id(db: Conn) -> int:
    row = db.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def named(database_url: str) -> Iterator[Conn]:
    """An autocommit connection of an operator at the command line."""
    with connect(database_url, autocommit=True, actor=Actor("cli:tester", "cli")) as conn:
        yield conn


def test_every_audited_table_has_its_trigger_and_names_its_secret_columns(db: Conn) -> None:
    rows = db.execute(
        "SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid),"
        " encode(t.tgargs, 'escape')"
        " FROM pg_trigger t WHERE t.tgname IN ('audit', 'audit_truncate')"
    ).fetchall()
    tables = {table for table, name, _, _ in rows if name == "audit"}
    assert tables == set(audit.RESOURCES)
    assert {table for table, name, _, _ in rows if name == "audit_truncate"} == tables
    for table, name, definition, args in rows:
        assert ("WHEN" in definition) == (table in audit.NAMED_ONLY), definition
        if name != "audit":
            continue
        # tgargs: the arguments, each ended by a NUL byte: key, secrets, urls, texts.
        secrets = set(filter(None, args.split("\\000")[1].split(",")))
        columns = {
            str(c)
            for (c,) in db.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped",
                (table,),
            )
        }
        # A migration that adds a secret column to an audited table calls audit_attach again.
        assert secrets == {c for c in columns if SECRET_COLUMN.search(c)}, table
    assert {t for t, _, _, a in rows if "address" in a.split("\\000")[2]} == {"contact_channels"}


def test_who_changed_what_before_and_after(db: Conn, named: Conn, county: object) -> None:
    start = last_id(db)
    row = db.execute(
        "INSERT INTO maintenance_units (code, kind, name_zh, phone)"
        " VALUES ('AUD-MU', 'elevator', '审计维保', '0359-1') RETURNING id"
    ).fetchone()
    assert row is not None
    unit = str(row[0])
    named.execute(
        "UPDATE maintenance_units SET phone = '0359-2', name_en = '' WHERE id = %s", (unit,)
    )
    named.execute("UPDATE maintenance_units SET phone = '0359-2' WHERE id = %s", (unit,))  # no-op
    db.execute("DELETE FROM maintenance_units WHERE id = %s", (unit,))

    got = entries(db, start, resource="maintenance_units", resource_id=unit)
    role = str(db.execute("SELECT session_user").fetchone()[0])  # type: ignore[index]
    assert [(e["action"], e["actor"], e["via"]) for e in got] == [
        ("insert", f"sql:{role}", "sql"),
        ("update", "cli:tester", "cli"),
        ("delete", f"sql:{role}", "sql"),
    ]
    inserted, updated, deleted = got
    assert inserted["before"] is None and inserted["after"]["phone"] == "0359-1"
    # Only what changed: name_en was '' already.
    assert (updated["before"], updated["after"]) == ({"phone": "0359-1"}, {"phone": "0359-2"})
    assert deleted["after"] is None and deleted["before"]["code"] == "AUD-MU"
    assert all(e["db_role"] == role and e["token_id"] is None for e in got)
    assert inserted["xact"] != updated["xact"]


def test_a_row_is_placed_in_its_firm_community_and_region(db: Conn, county: object) -> None:
    start = last_id(db)
    firm, community, region = db.execute(
        "SELECT c.firm_id, c.id, c.region_id FROM communities c WHERE c.firm_id IS NOT NULL"
        " ORDER BY c.id LIMIT 1"
    ).fetchone()  # type: ignore[misc]
    other = db.execute(
        "INSERT INTO firms (code, name_zh) VALUES ('AUD-F2', '审计二号') RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    building = db.execute(
        "INSERT INTO buildings (community_id, code, name, floors) VALUES (%s, 'AUD-B', 'b', 3)"
        " RETURNING id",
        (community,),
    ).fetchone()[0]  # type: ignore[index]
    # A community handed to another firm: both firms' admins read the change.
    db.execute("UPDATE communities SET firm_id = %s WHERE id = %s", (other, community))
    db.execute("UPDATE communities SET firm_id = %s WHERE id = %s", (firm, community))
    db.execute("DELETE FROM buildings WHERE id = %s", (building,))
    db.execute("DELETE FROM firms WHERE id = %s", (other,))
    b = entries(db, start, resource="buildings")
    assert {(e["community_id"], tuple(e["firm_ids"])) for e in b} == {(community, (firm,))}
    handed = entries(db, start, resource="communities", resource_id=str(community))
    assert [sorted(e["firm_ids"]) for e in handed] == [sorted([firm, other])] * 2
    assert {e["region_id"] for e in handed} == {region}
    assert [tuple(e["firm_ids"]) for e in entries(db, start, resource="firms")] == [(other,)] * 2
    # A person's login is placed in the person's firm (audit_placement, 0033).
    person = db.execute(
        "INSERT INTO people (firm_id, name, role) VALUES (%s, 'aud', 'duty_staff') RETURNING id",
        (firm,),
    ).fetchone()[0]  # type: ignore[index]
    db.execute(
        "INSERT INTO person_logins (person_id, phone, password_hash) VALUES (%s, '13900009999', 'x')",
        (person,),
    )
    db.execute("DELETE FROM person_logins WHERE person_id = %s", (person,))
    db.execute("DELETE FROM people WHERE id = %s", (person,))
    logins = entries(db, start, resource="person_logins")
    assert [tuple(e["firm_ids"]) for e in logins] == [(firm,)] * 2


def test_secrets_never_enter_the_log(db: Conn, named: Conn, county: object) -> None:
    start = last_id(db)
    person = named.execute(
        "INSERT INTO people (name, role, firm_id) SELECT '审计', 'duty_staff', min(id) FROM firms"
        " RETURNING id"
    ).fetchone()[0]  # type: ignore[index]
    robot = "https://bot:pa55@qyapi.weixin.qq.com/cgi-bin/webhook/send?key=ROBOTKEY-123"
    channels = [
        ("wecom", robot, "SIGNSECRET-1"),
        ("webhook", "http://hooks.example.cn:8443/in/TOKEN-XYZ", None),
        ("dingtalk", "https://ding:k@ey@oapi.dingtalk.com/robot/send?access_token=DT", None),
        ("email", "duty@example.cn", None),
    ]
    for kind, address, secret in channels:
        named.execute(
            "INSERT INTO contact_channels (person_id, kind, address, secret) VALUES (%s, %s, %s, %s)",
            (person, kind, address, secret),
        )
    named.execute(
        "UPDATE contact_channels SET secret = 'SIGNSECRET-2', address = %s WHERE address = %s",
        (robot.replace("123", "456"), robot),
    )
    named.execute(
        "INSERT INTO mqtt_accounts (username, kind, person_id, password_hash)"
        " VALUES ('duty-audit', 'person', %s, 'PBKDF2-HASH-VALUE')",
        (person,),
    )
    named.execute(
        "INSERT INTO api_tokens (token_hash, role, name) VALUES (sha256('tok'), 'county_regulator',"
        " 'audit')"
    )
    got = entries(db, start)
    text = str([(e["before"], e["after"]) for e in got])
    for secret in (
        "pa55",
        "ROBOTKEY",
        "SIGNSECRET",
        "TOKEN-XYZ",
        "PBKDF2",
        "/in/",
        "cgi-bin",
        "ding:",
        "k@",
        "ey@",
        "access_token",
    ):
        assert secret not in text
    after = {
        e["after"]["kind"]: e["after"]
        for e in got
        if e["resource"] == "contact_channels" and e["action"] == "insert"
    }
    assert after["wecom"]["address"] == "https://qyapi.weixin.qq.com/…"
    assert after["wecom"]["secret"] == "(redacted)"
    assert after["webhook"]["address"] == "http://hooks.example.cn:8443/…"
    assert after["webhook"]["secret"] is None  # none set: nothing to hide
    assert after["email"]["address"] == "duty@example.cn"
    assert after["dingtalk"]["address"] == "https://oapi.dingtalk.com/…"
    rotated = [e for e in got if e["resource"] == "contact_channels" and e["action"] == "update"]
    assert [(e["before"], e["after"]) for e in rotated] == [
        (
            {"secret": "(redacted)", "address": "https://qyapi.weixin.qq.com/…"},
            {"secret": "(redacted)", "address": "https://qyapi.weixin.qq.com/…"},
        )
    ]  # a rotation shows, its values do not
    account = next(e for e in got if e["resource"] == "mqtt_accounts")
    assert account["after"]["password_hash"] == "(redacted)"
    token = next(e for e in got if e["resource"] == "api_tokens")
    assert token["after"]["token_hash"] == "(redacted)" and token["after"]["name"] == "audit"
    db.execute("DELETE FROM api_tokens WHERE name = 'audit' AND token_hash = sha256('tok')")
    db.execute("DELETE FROM mqtt_accounts WHERE username = 'duty-audit'")
    db.execute("DELETE FROM contact_channels WHERE person_id = %s", (person,))
    db.execute("DELETE FROM people WHERE id = %s", (person,))


def test_analytics_alarm_changes_stay_out_and_a_persons_are_in(
    db: Conn, named: Conn, database_url: str, county: object
) -> None:
    start = last_id(db)
    device = db.execute("SELECT min(id) FROM devices").fetchone()[0]  # type: ignore[index]
    opened = datetime.now(UTC) - timedelta(minutes=3)
    # As analytics files and re-triggers it: no actor.
    alarm = db.execute(
        "INSERT INTO alarms (device_id, event_code, severity, state, detector, opened_at,"
        " last_triggered_at, list_version) VALUES (%s, 'EL.AUDIT', 'P1', 'active', 'test', %s, %s,"
        " 'test') RETURNING id",
        (device, opened, opened),
    ).fetchone()[0]  # type: ignore[index]
    wo = db.execute(
        "INSERT INTO work_orders (alarm_id, device_id, community_id, firm_id, event_code, severity,"
        " responsible_party, supervisor, status, opened_at, resolution_due, emergency_fund,"
        " notify_regulator, list_version) SELECT %s, d.id, d.community_id, c.firm_id, 'EL.AUDIT',"
        " 'P1', 'x', 'y', 'occurred', %s, %s, false, false, 'test' FROM devices d"
        " JOIN communities c ON c.id = d.community_id WHERE d.id = %s RETURNING id",
        (alarm, opened, opened + timedelta(hours=4), device),
    ).fetchone()[0]  # type: ignore[index]
    db.execute("UPDATE alarms SET triggers = triggers + 1 WHERE id = %s", (alarm,))
    with connect(database_url, autocommit=True) as analytics:  # a connection of nobody's
        transition(analytics, wo, "responded", actor="system", at=datetime.now(UTC))
    feed = raise_alarm(db, PlatformKind.FEED_SILENT, "audit", severity=Severity.P3)
    assert entries(db, start, resource="alarms") == []
    assert entries(db, start, resource="work_orders") == []
    assert entries(db, start, resource="platform_alarms") == []

    # A person's changes are recorded.
    named.execute(
        "UPDATE alarms SET state = 'acknowledged', acknowledged_by = 'x' WHERE id = %s", (alarm,)
    )
    transition(named, wo, "on_site", actor="cli:tester", at=datetime.now(UTC))
    acknowledge(named, feed.id, "县信息中心")
    a = entries(db, start, resource="alarms")
    assert [(e["actor"], e["after"]["state"]) for e in a] == [("cli:tester", "acknowledged")]
    assert a[0]["community_id"] is not None and a[0]["firm_ids"] != []
    w = entries(db, start, resource="work_orders")
    assert [(e["before"]["status"], e["after"]["status"]) for e in w] == [("responded", "on_site")]
    assert [
        e["after"]["acknowledged_by"] for e in entries(db, start, resource="platform_alarms")
    ] == ["县信息中心"]
    clear_alarm(db, PlatformKind.FEED_SILENT, "audit", reason="test")
    db.execute("UPDATE alarms SET state = 'cleared', cleared_at = now() WHERE id = %s", (alarm,))


def test_a_truncate_is_recorded(db: Conn, named: Conn) -> None:
    start = last_id(db)
    with named.transaction(force_rollback=True):
        named.execute("TRUNCATE platform_shifts")
        got = entries(named, start, resource="platform_shifts")
    assert [(e["action"], e["actor"], e["resource_id"]) for e in got] == [
        ("truncate", "cli:tester", None)
    ]


def test_only_the_triggers_write_the_log(db: Conn, county: object) -> None:
    with db.transaction(force_rollback=True):
        db.execute("SET LOCAL ROLE shouwang_api")
        start = last_id(db)
        # The API's role changes the registry; its entries are written all the same ...
        db.execute(
            "UPDATE firms SET name_en = name_en || ' ' WHERE id = (SELECT min(id) FROM firms)"
        )
        assert [e["action"] for e in entries(db, start)] == ["update"]
        # ... but it may not write, change or remove one itself.
        for statement in (
            "INSERT INTO audit_log (actor, via, action, resource) VALUES ('x', 'sql', 'insert', 'x')",
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "SELECT audit_log_prune(180)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), db.transaction():
                db.execute(statement)
    for role in ("shouwang_analytics", "shouwang_notify"):
        with db.transaction(force_rollback=True):
            db.execute(f"SET LOCAL ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute("SELECT count(*) FROM audit_log")


def test_retention_keeps_at_least_180_days(db: Conn, named: Conn) -> None:
    with db.transaction(force_rollback=True):
        start = last_id(db)
        for i in range(5):
            db.execute(
                "INSERT INTO regions (code, kind, name_zh) SELECT %s, 'county', 'x'", (f"AUD-R{i}",)
            )
        ids = [e["id"] for e in entries(db, start, resource="regions")]
        assert len(ids) == 5
        db.execute(
            "UPDATE audit_log SET at = now() - make_interval(days => 400 - id::int %% 2 * 300)"
            " WHERE id = ANY(%s)",
            (ids,),
        )  # odd ids 100 days old, even ones 400
        db.execute("SET LOCAL ROLE shouwang_ingest")  # retention runs in ingest
        with pytest.raises(ValueError, match="at least 180 days"):
            audit.prune(db, keep_days=30)
        with pytest.raises(psycopg.errors.RaiseException, match="at least 180"), db.transaction():
            db.execute("SELECT audit_log_prune(30)")
        even = [i for i in ids if i % 2 == 0]
        assert audit.prune(db, keep_days=365, max_rows=1) == min(1, len(even))
        assert audit.prune(db, keep_days=365) == max(len(even) - 1, 0)
        db.execute("RESET ROLE")
        kept = [e["id"] for e in entries(db, start, resource="regions")]
        assert kept == [i for i in ids if i % 2 == 1]


def test_ingests_retention_pass_prunes_the_log(db: Conn, settings: Settings) -> None:
    from ingest.__main__ import config_from
    from ingest.upkeep import Upkeep

    start = last_id(db)
    for code in ("AUD-OLD", "AUD-NEW"):
        db.execute("INSERT INTO regions (code, kind, name_zh) VALUES (%s, 'county', 'x')", (code,))
    old, new = (e["id"] for e in entries(db, start, resource="regions"))
    db.execute("UPDATE audit_log SET at = now() - interval '250 days' WHERE id = %s", (old,))
    db.execute("UPDATE audit_log SET at = now() - interval '150 days' WHERE id = %s", (new,))
    s = settings.model_copy(update={"audit_retention_days": 200})
    upkeep = Upkeep(config_from(s, "test-audit-retention"), s.database_url)
    try:
        upkeep.run_once()
    finally:
        upkeep.close()
    assert [e["id"] for e in entries(db, start, resource="regions") if e["id"] in (old, new)] == [
        new
    ]
    db.execute("DELETE FROM regions WHERE code IN ('AUD-OLD', 'AUD-NEW')")


def test_every_audited_table_whose_rows_belong_to_someone_is_placed(db: Conn) -> None:
    """An audited table with a community, device, person, firm or region column says how its
    rows are placed (audit_placement): one forgotten there would log a firm's changes where no
    firm admin sees them. Every placement names an audited table."""
    audited = {
        str(t)
        for (t,) in db.execute(
            "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'audit'"
        ).fetchall()
    }
    owned = {
        f"{s}.{t}" if s != "public" else str(t)
        for s, t in db.execute(
            "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name IN"
            " ('community_id', 'device_id', 'person_id', 'firm_id', 'region_id')"
        ).fetchall()
    }
    placed = {str(r) for (r,) in db.execute("SELECT resource FROM audit_placement").fetchall()}
    assert (audited & owned) - placed == set(), "add a row to audit_placement for these"
    assert placed - audited == set(), "placements of tables that are not audited"
