from __future__ import annotations

from pathlib import Path

import pytest

from core.catalogue import EVENT_CODES, METRICS
from core.db import Conn, load_migrations, migrate


def test_migrate_is_idempotent_and_syncs_the_catalogue(db: Conn) -> None:
    assert migrate(db) == []  # the session fixture applied everything already
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in load_migrations()]
    assert db.execute("SELECT count(*) FROM metrics").fetchone() == (len(METRICS),)
    assert db.execute("SELECT count(*) FROM event_codes").fetchone() == (len(EVENT_CODES),)
    hypertables = {
        r[0] for r in db.execute("SELECT hypertable_name FROM timescaledb_information.hypertables")
    }
    assert {"readings", "events", "device_status", "rejects"} <= hypertables


def test_migration_files_must_be_numbered_without_gaps(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0003_c.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="without gaps"):
        load_migrations(tmp_path)
    (tmp_path / "2_bad.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="NNNN_name"):
        load_migrations(tmp_path)
