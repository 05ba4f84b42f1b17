"""A list version published through the API is the one analytics runs: at start, and within its
refresh interval while running. A list file set in the settings pins the version."""

from __future__ import annotations

from importlib import resources

from analytics.__main__ import build
from core.db import Conn
from core.settings import Settings
from responsibility.loader import parse_list

SHIPPED = resources.files("responsibility").joinpath("default.yaml").read_text(encoding="utf-8")


def publish(db: Conn, text: str) -> str:
    parsed = parse_list(text, "test")
    db.execute(
        "INSERT INTO responsibility_lists (version, digest, content, published_by)"
        " VALUES (%s, %s, %s, 'test')",
        (parsed.version, parsed.digest, text),
    )
    return str(parsed.version)


def test_a_published_version_takes_effect_at_start_and_while_running(
    settings: Settings, db: Conn
) -> None:
    # Door faults become P1 in the new version.
    changed = SHIPPED.replace('version: "2026.1"', 'version: "2026.9"', 1)
    door = changed.index("code: EL.DOOR_FAULT")
    changed = changed[:door] + changed[door:].replace("severity: P2", "severity: P1", 1)
    service = build(settings, clock="data")
    try:
        assert service.entries.version == "2026.1"
        assert service.refresh_list() is False, "nothing published yet"
        publish(db, changed)
        assert service.refresh_list() is True
        assert service.entries.version == "2026.9"
        assert service.entries.entries["EL.DOOR_FAULT"].severity == "P1"
        assert service.refresh_list() is False, "already in force"
        service.conn.close()
        service = build(settings, clock="data")
        assert service.entries.version == "2026.9", "a restart starts on the published list"
        service.conn.close()
        pinned = settings.model_copy(update={"responsibility_list": settings.state_dir / "l.yaml"})
        (settings.state_dir / "l.yaml").write_text(SHIPPED)
        service = build(pinned, clock="data")
        assert service.entries.version == "2026.1" and service.refresh_list() is False
    finally:
        service.conn.close()
        db.execute("DELETE FROM responsibility_lists WHERE published_by = 'test'")
