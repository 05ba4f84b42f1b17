"""``shouwang people set-password`` on the test database: the login is stored as an argon2id
hash, the change is audited as the command line's, and a weak password is refused with what
to fix."""

from __future__ import annotations

import subprocess

from core.db import Conn
from core.settings import Settings
from tests.conftest import settings_env, shouwang


def run(s: Settings, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        shouwang("people", "set-password", *args, "--password-stdin"),
        env=settings_env(s),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_set_password_stores_a_hash_and_refuses_a_weak_one(settings: Settings, db: Conn) -> None:
    firm = db.execute("SELECT id FROM firms ORDER BY id LIMIT 1").fetchone()
    assert firm is not None
    row = db.execute(
        "INSERT INTO people (name, role, firm_id) VALUES ('命令行 测试', 'duty_staff', %s)"
        " RETURNING id",
        (firm[0],),
    ).fetchone()
    assert row is not None
    pid = str(row[0])
    weak = run(settings, "13600000001!\n", pid, "--phone", "13600000001")
    assert weak.returncode != 0 and "not the phone number" in weak.stderr + weak.stdout
    ok = run(settings, "a-long-cli-password\n", pid, "--phone", "136 0000 0001")
    assert ok.returncode == 0, ok.stderr
    assert "13600000001" in ok.stdout + ok.stderr
    stored = db.execute(
        "SELECT phone, password_hash LIKE '$argon2id$%%' FROM person_logins WHERE person_id = %s",
        (row[0],),
    ).fetchone()
    assert stored == ("13600000001", True)
    actor = db.execute(
        "SELECT via, actor LIKE 'cli:%%' FROM audit_log WHERE resource = 'person_logins'"
        " AND resource_id = %s",
        (pid,),
    ).fetchone()
    assert actor == ("cli", True)
