"""The TimescaleDB upgrade step (``core.extension``): the decision on versions, and the step as
``shouwang db migrate`` runs it on the real database. The server has one TimescaleDB build, so
an actual update cannot happen here; the decision that leads to it is tested on its own."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from core.extension import Step, Versions, decide, read_versions, upgrade
from tests.conftest import shouwang


@pytest.mark.parametrize(
    ("installed", "default", "step"),
    [
        (None, "2.19.3", Step.ABSENT),
        ("2.19.3", "2.19.3", Step.CURRENT),
        ("2.17.2", "2.19.3", Step.UPDATE),
        ("2.9.1", "2.10.0", Step.UPDATE),  # by number, not as text
        ("2.19.3", "2.20.0-dev", Step.UPDATE),
        ("2.20.0", "2.19.3", Step.NEWER),
    ],
)
def test_the_step_follows_the_installed_and_the_servers_version(
    installed: str | None, default: str, step: Step
) -> None:
    assert decide(Versions(installed, default)) is step


def test_the_extension_in_a_migrated_database_is_the_servers_version(database_url: str) -> None:
    v = read_versions(database_url)
    assert v.installed is not None and re.fullmatch(r"\d+\.\d+\.\d+", v.installed)
    outcome = upgrade(database_url)
    assert outcome.step is Step.CURRENT
    assert outcome.after == v
    assert outcome.sentence() == f"TimescaleDB {v.installed}: up to date"


def test_shouwang_db_migrate_runs_the_step_and_reports_the_version(database_url: str) -> None:
    env = dict(os.environ, SHOUWANG_DATABASE_URL=database_url)
    out = subprocess.run(
        shouwang("db", "migrate"), check=False, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    said = " ".join((out.stdout + out.stderr).split())
    installed = read_versions(database_url).installed
    assert f"TimescaleDB {installed}: up to date" in said
    assert "schema up to date (0 migration(s) applied)" in said
