"""Shared: the record of applied migrations (``schema_migrations``) and its check.

Each applied migration is recorded with the SHA-256 of its file's text. ``migrate`` compares the
record with the files before it applies anything, and refuses (:class:`MigrationChanged`) when an
applied migration's file changed, was renamed, or is missing (a database migrated by a newer
version): the database would silently lack the change, or have one the files do not describe.

One-time rule: a database migrated before checksums were kept has rows without one; the first
``migrate`` that sees them records the checksums of the files as they are then, once, and from
then on a change to those files is refused like any other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ShouwangError

if TYPE_CHECKING:
    from core.db import Migration

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class Applied:
    """A row of ``schema_migrations``; ``checksum`` is None for a migration applied before
    checksums were kept."""

    version: int
    name: str
    checksum: str | None
    applied_at: datetime


class MigrationChanged(ShouwangError):
    """The database's applied migrations do not match the migration files."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(
            "the schema cannot be migrated, nothing was changed:\n  " + "\n  ".join(problems)
        )
        self.problems = list(problems)


def checksum(sql: str) -> str:
    """The SHA-256 of a migration's text (as read, with universal newlines: a checkout with
    other line endings is the same migration)."""
    return hashlib.sha256(sql.encode()).hexdigest()


def shown(path: Path) -> str:
    """A migration file's path as an operator finds it: relative to the project when inside it."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def mismatches(
    applied: Sequence[Applied], files: Sequence[Migration], accepted: Collection[int] = ()
) -> list[str]:
    """What is wrong between the record and the files, one sentence each with what to do;
    empty when they agree. Rows without a checksum (the one-time rule) and the ``accepted``
    versions are not compared."""
    by_version = {m.version: m for m in files}
    out: list[str] = []
    for row in sorted(applied, key=lambda r: r.version):
        applied_as = f"{row.version:04d}_{row.name}.sql"
        when = row.applied_at.date().isoformat()
        mig = by_version.get(row.version)
        if mig is None:
            out.append(
                f"migration {applied_as} was applied to this database ({when}) but this version "
                "of shouwang has no such file: the database was migrated by a newer version. "
                "Run that version (or a newer one), or restore the database from a backup taken "
                "before it."
            )
        elif row.version in accepted:
            continue
        elif mig.name != row.name:
            out.append(
                f"{shown(mig.path)}: migration {row.version} was applied as {applied_as} "
                f"({when}); the file was renamed since. Give it back its name, and make any "
                "change as a new migration file."
            )
        elif row.checksum is not None and mig.checksum != row.checksum:
            out.append(
                f"{shown(mig.path)} changed after it was applied to this database ({when}; "
                f"recorded sha256 {row.checksum[:12]}, the file now {mig.checksum[:12]}), so the "
                "database does not have what the file says. Put the file back as released, and "
                "make the change as a new migration file (the next number). If the database was "
                f"changed by hand to match the file, accept it: 'shouwang db migrate --accept "
                f"{row.version}'."
            )
    return out


def unrecorded(applied: Sequence[Applied], files: Sequence[Migration]) -> list[Migration]:
    """The applied migrations whose checksum is not recorded yet (the one-time rule)."""
    missing = {r.version for r in applied if r.checksum is None}
    return [m for m in files if m.version in missing]
