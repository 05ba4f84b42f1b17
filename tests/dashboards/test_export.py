"""The provisioning export: the committed copy under dashboards/provisioning is what a fresh
export writes, the files are what Grafana's file provisioning reads, and they hold no secret."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from dashboards.access import DEFAULT_REGULATOR_LOGIN
from dashboards.files import HOST_ENV, SECRET_ENV, export
from dashboards.folders import FOLDERS, all_dashboards
from responsibility.loader import default_list
from shouwang.launch import command

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "dashboards" / "provisioning"


def _tree(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): p.read_text(encoding="utf-8")
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_the_committed_copy_is_a_fresh_export(tmp_path: Path) -> None:
    export(tmp_path, all_dashboards(default_list()))
    fresh, committed = _tree(tmp_path), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed), (
        "run 'shouwang dashboards export dashboards/provisioning'"
    )
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, (
        f"out of date, run 'shouwang dashboards export dashboards/provisioning': {stale}"
    )


def test_the_files_are_what_grafana_provisioning_reads(tmp_path: Path) -> None:
    placed = all_dashboards(default_list())
    export(tmp_path, placed)
    ds = yaml.safe_load((tmp_path / "datasources/shouwang.yaml").read_text())
    assert ds["apiVersion"] == 1
    (source,) = ds["datasources"]
    assert source["type"] == "grafana-postgresql-datasource" and source["uid"] == "shouwang"
    assert source["url"] == f"${{{HOST_ENV}}}" == "${SHOUWANG_GRAFANA_DB_HOST}"
    assert source["secureJsonData"] == {"password": "${SHOUWANG_GRAFANA_DB_PASSWORD}"}
    assert SECRET_ENV == "SHOUWANG_GRAFANA_DB_PASSWORD"
    # the role 'shouwang dashboards grant-regulator' creates, in the platform's database
    assert source["user"] == DEFAULT_REGULATOR_LOGIN == "dash_regulator"
    assert source["jsonData"]["database"] == "shouwang"
    providers = yaml.safe_load((tmp_path / "dashboards/shouwang.yaml").read_text())["providers"]
    assert [(p["folder"], p["folderUid"]) for p in providers] == [(f.title, f.uid) for f in FOLDERS]
    for p in providers:
        assert p["type"] == "file"
        assert (
            p["options"]["path"]
            == f"/etc/grafana/provisioning/dashboards/shouwang/{p['folderUid']}"
        )
    for pl in placed:
        path = tmp_path / "dashboards/shouwang" / pl.folder.uid / f"{pl.dashboard.uid}.json"
        model = json.loads(path.read_text(encoding="utf-8"))
        assert model["uid"] == pl.dashboard.uid and model["id"] is None


def test_export_removes_dashboards_no_longer_shipped(tmp_path: Path) -> None:
    old = tmp_path / "dashboards/shouwang/shouwang-firm/retired.json"
    old.parent.mkdir(parents=True)
    old.write_text("{}")
    mine = tmp_path / "dashboards/someone-elses.yaml"
    mine.write_text("apiVersion: 1\n")
    export(tmp_path, all_dashboards(default_list()))
    assert not old.exists()
    assert mine.exists(), "files that are not ours stay"


def test_the_export_command_writes_the_same_files(tmp_path: Path, database_url: str) -> None:
    # The list in force is read from the database: nothing published there, the shipped list.
    env = dict(
        os.environ, SHOUWANG_STATE_DIR=str(tmp_path / "state"), SHOUWANG_DATABASE_URL=database_url
    )
    subprocess.run(
        command("dashboards", "export", str(tmp_path / "out")),
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert _tree(tmp_path / "out") == _tree(COMMITTED)
