"""Upgrades on the real database: the checksums of applied migrations (``core.migration_history``)
stop ``migrate`` when an applied migration's file changed, and the one-time rule records them for
a database migrated before they were kept. Each test works on a copy of the migration files in a
database of this module's own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db import MIGRATIONS_DIR, Conn, connect, load_migrations, migrate
from core.errors import ConfigError
from core.migration_history import MigrationChanged, checksum
from tests.conftest import fresh_database


@pytest.fixture(scope="module")
def upgrade_url() -> Iterator[str]:
    with fresh_database(f"shouwang_upgrade_{os.getpid()}") as url:
        yield url


@pytest.fixture
def conn(upgrade_url: str) -> Iterator[Conn]:
    with connect(upgrade_url, autocommit=True) as c:
        yield c
        # Back to the record of the shipped files, whatever the test did.
        shipped = load_migrations()
        c.execute("DROP TABLE IF EXISTS upgrade_test_pending")
        c.execute("DELETE FROM schema_migrations WHERE version > %s", (len(shipped),))
        migrate(c, accept=[m.version for m in shipped])


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A copy of the shipped migration files, for a test to change."""
    return Path(shutil.copytree(MIGRATIONS_DIR, tmp_path / "migrations"))


def recorded(conn: Conn) -> dict[int, str | None]:
    return dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def add_pending(files: Path) -> str:
    """A new migration after the last one; the table it would create."""
    n = len(list(files.glob("*.sql"))) + 1
    (files / f"{n:04d}_pending.sql").write_text("CREATE TABLE upgrade_test_pending (x int);\n")
    return "upgrade_test_pending"


def exists(conn: Conn, table: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone() == (True,)


def test_every_applied_migration_is_recorded_with_its_files_checksum(conn: Conn) -> None:
    assert migrate(conn) == []
    assert recorded(conn) == {m.version: checksum(m.sql) for m in load_migrations()}


def test_a_changed_applied_migration_stops_migrate_naming_the_file(conn: Conn, files: Path) -> None:
    alarms = next(files.glob("0003_*.sql"))
    alarms.write_text(alarms.read_text() + "\nALTER TABLE alarms ADD COLUMN edited int;\n")
    pending = add_pending(files)
    before = recorded(conn)
    with pytest.raises(MigrationChanged) as e:
        migrate(conn, directory=files)
    message = str(e.value)
    assert str(alarms) in message
    assert "changed after it was applied" in message
    assert "as a new migration file" in message
    assert "'shouwang db migrate --accept 3'" in message
    assert len(e.value.problems) == 1
    # Nothing was applied or recorded: not the pending migration either.
    assert not exists(conn, pending)
    assert recorded(conn) == before


def test_accepting_a_changed_file_records_it_and_migrates_on(conn: Conn, files: Path) -> None:
    alarms = next(files.glob("0003_*.sql"))
    alarms.write_text(alarms.read_text() + "\n-- a comment added by hand\n")
    pending = add_pending(files)
    applied = migrate(conn, directory=files, accept=[3])
    assert [m.name for m in applied] == ["pending"]
    assert exists(conn, pending)
    assert recorded(conn)[3] == checksum(alarms.read_text())
    with pytest.raises(MigrationChanged, match="0003_"):  # the shipped file differs now
        migrate(conn)


def test_a_renamed_or_missing_file_stops_migrate(conn: Conn, files: Path) -> None:
    models = next(files.glob("0004_*.sql"))
    models.rename(files / "0004_renamed.sql")
    last = sorted(files.glob("*.sql"))[-1]
    last.unlink()
    with pytest.raises(MigrationChanged) as e:
        migrate(conn, directory=files)
    renamed, missing = e.value.problems
    assert "0004_renamed.sql" in renamed and f"as {models.name}" in renamed
    assert "renamed" in renamed
    assert f"migration {last.name} was applied" in missing
    assert "migrated by a newer version" in missing


def test_a_database_migrated_before_checksums_gets_them_recorded_once(
    conn: Conn, files: Path
) -> None:
    """The one-time rule: a database from before checksums (no such column) takes the files'
    checksums as they are at its first migrate, even a file edited meanwhile; after that, the
    same edit is a change like any other."""
    conn.execute("ALTER TABLE schema_migrations DROP COLUMN checksum")
    routing = next(files.glob("0009_*.sql"))
    routing.write_text(routing.read_text() + "\n-- edited before checksums were kept\n")
    assert migrate(conn, directory=files) == []
    expected = {m.version: m.checksum for m in load_migrations(files)}
    assert recorded(conn) == expected
    with pytest.raises(MigrationChanged, match=r"0009_.*changed after it was applied"):
        migrate(conn)  # the shipped file is not the one recorded


def test_rows_without_a_checksum_are_recorded_and_a_rename_is_still_refused(
    conn: Conn, files: Path
) -> None:
    conn.execute("UPDATE schema_migrations SET checksum = NULL WHERE version IN (5, 6)")
    notifications = next(files.glob("0005_*.sql"))
    notifications.rename(files / "0005_other_name.sql")
    with pytest.raises(MigrationChanged, match="renamed"):
        migrate(conn, directory=files)
    assert recorded(conn)[5] is None  # refused: nothing recorded either
    assert migrate(conn) == []
    assert recorded(conn)[5] == checksum(next(MIGRATIONS_DIR.glob("0005_*.sql")).read_text())


def test_accepting_a_number_without_a_file_is_refused(conn: Conn) -> None:
    with pytest.raises(ConfigError, match="accept 999: no migration file with that number"):
        migrate(conn, accept=[999])
