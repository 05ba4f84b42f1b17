"""Shared: the TimescaleDB extension's upgrade step, run by ``shouwang db migrate`` before the
migrations.

After the server's TimescaleDB package is upgraded, each database still has the extension at
the version it was created or last updated with; ``ALTER EXTENSION timescaledb UPDATE`` brings
it to the package's default version. TimescaleDB wants that statement to be the first of a
fresh session (before the old version's library is loaded in it), so the versions are read on
one connection and the update runs on another.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from core.db import connect
from core.errors import ConfigError

EXTENSION = "timescaledb"


class Step(Enum):
    ABSENT = "absent"  # not created in this database yet: the first migration creates it
    CURRENT = "current"
    UPDATE = "update"
    NEWER = "newer"  # the database has a newer version than the server's package


@dataclass(frozen=True, slots=True)
class Versions:
    installed: str | None  # in this database (pg_extension); None: not created
    default: str  # the server's package (pg_available_extensions.default_version)


@dataclass(frozen=True, slots=True)
class Outcome:
    step: Step
    before: Versions
    after: Versions

    def sentence(self) -> str:
        if self.step is Step.ABSENT:
            return f"TimescaleDB {self.after.default} on the server; the migrations create it"
        if self.step is Step.UPDATE:
            return f"TimescaleDB updated from {self.before.installed} to {self.after.installed}"
        return f"TimescaleDB {self.after.installed}: up to date"


def _key(version: str) -> tuple[int, ...]:
    """'2.19.3' -> (2, 19, 3); a suffix ('2.20.0-dev') is left out of the comparison."""
    return tuple(int(n) for n in re.findall(r"\d+", version.split("-", maxsplit=1)[0]))


def decide(v: Versions) -> Step:
    if v.installed is None:
        return Step.ABSENT
    if v.installed == v.default:
        return Step.CURRENT
    return Step.NEWER if _key(v.installed) > _key(v.default) else Step.UPDATE


def read_versions(url: str) -> Versions:
    with connect(url, autocommit=True, application_name="shouwang-migrate") as conn:
        row = conn.execute(
            "SELECT default_version, installed_version FROM pg_available_extensions"
            " WHERE name = %s",
            (EXTENSION,),
        ).fetchone()
    if row is None:
        raise ConfigError(
            "database server",
            "TimescaleDB is not installed on it; install it (scripts/setup.sh does, on Debian) "
            "and add timescaledb to shared_preload_libraries",
        )
    return Versions(installed=row[1], default=row[0])


def upgrade(url: str) -> Outcome:
    """Bring the extension in the database at ``url`` to the server's package version."""
    before = read_versions(url)
    step = decide(before)
    if step is Step.NEWER:
        raise ConfigError(
            "database server",
            f"the database has TimescaleDB {before.installed}, newer than the server's package "
            f"({before.default}); install TimescaleDB {before.installed} or newer on the server",
        )
    if step is Step.UPDATE:
        # A fresh session whose first statement is the update (no library of the old version
        # loaded yet); connect() itself sends no statement.
        with connect(url, autocommit=True, application_name="shouwang-migrate") as conn:
            conn.execute(f"ALTER EXTENSION {EXTENSION} UPDATE")
    return Outcome(step, before, read_versions(url) if step is Step.UPDATE else before)
