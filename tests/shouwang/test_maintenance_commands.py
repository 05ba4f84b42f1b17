"""``shouwang maintenance open|close|list`` on the test database: a window opened for devices by
uid, refused out of bounds with the option to change, listed, closed early, audited as the
command line's."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from core.db import Conn
from core.settings import Settings
from tests.conftest import settings_env, shouwang


def run(s: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The command; what it says is on stderr (the console's)."""
    return subprocess.run(
        shouwang("maintenance", *args),
        env=settings_env(s),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def windows_removed(db: Conn) -> Iterator[None]:
    """The windows this test opens are removed afterwards: a window left behind would keep other
    tests' alarms on the same database from being notified."""
    yield
    db.execute("TRUNCATE maintenance_windows CASCADE")


@pytest.mark.usefixtures("windows_removed")
def test_open_list_close(settings: Settings, db: Conn) -> None:
    uid, community = db.execute(
        "SELECT uid, community_id FROM devices WHERE device_class = 'elevator' ORDER BY id LIMIT 1"
    ).fetchone() or ("", 0)
    long = run(settings, "open", "service", "-d", uid, "--performer", "crew", "--hours", "9")
    assert long.returncode == 2 and "--hours: a service window may last at most 8 h" in long.stderr
    unknown = run(settings, "open", "repair", "-d", "NO-SUCH", "--performer", "crew")
    assert unknown.returncode == 2 and "no such device: NO-SUCH" in unknown.stderr
    ok = run(settings, "open", "repair", "-d", uid, "--performer", "crew", "--hours", "2")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (wid, hours) = db.execute(
        "SELECT id, extract(epoch FROM ends_at - starts_at) / 3600 FROM maintenance_windows"
        " ORDER BY id DESC LIMIT 1"
    ).fetchone() or (0, 0)
    assert f"maintenance window {wid} (repair)" in ok.stderr and float(hours) == 2.0
    listed = run(settings, "list", "--current", "--community", str(community))
    assert listed.returncode == 0 and listed.stderr.split()[:2] == [str(wid), "repair"]
    closed = run(settings, "close", str(wid), "--work-done", "door operator replaced")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    current = run(settings, "list", "--current").stderr.splitlines()
    assert [line for line in current if line.split()[:1] == [str(wid)]] == []
    again = run(settings, "close", str(wid))
    assert again.returncode == 2 and "already ended" in again.stderr
    audit = db.execute(
        "SELECT action, via FROM audit_log WHERE resource = 'maintenance_windows'"
        " AND resource_id = %s ORDER BY id",
        (str(wid),),
    ).fetchall()
    assert audit == [("insert", "cli"), ("update", "cli")]
