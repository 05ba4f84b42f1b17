"""Publishing through grafana-client against a double of Grafana's HTTP API: what is written,
and that a second run writes nothing."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import ConfigError
from dashboards.datasource import DatasourceSpec
from dashboards.folders import FOLDERS, all_dashboards
from dashboards.model import DATASOURCE_TYPE
from dashboards.publish import Grafana, connect, publish
from responsibility.loader import default_list
from shouwang.launch import command
from tests.dashboards.grafana_double import GrafanaDouble

TOKEN = "glsa_test_token"
SPEC = DatasourceSpec(url="db.internal:5432", database="shouwang", user="dash_firm_f01")
PLACED = all_dashboards(default_list())


@pytest.fixture
def grafana() -> Iterator[GrafanaDouble]:
    with GrafanaDouble(TOKEN) as g:
        yield g


@pytest.fixture
def api(grafana: GrafanaDouble) -> Iterator[Grafana]:
    with connect(grafana.url, token=TOKEN, org_id=3) as client:
        yield client


def test_the_first_publish_creates_folders_the_data_source_and_the_dashboards(
    grafana: GrafanaDouble, api: Grafana
) -> None:
    changes = publish(api, PLACED, SPEC, password="s3cret")

    assert {c.action for c in changes} == {"create"}
    writes = grafana.state.writes()
    assert [(c.method, c.path) for c in writes[:3]] == [("POST", "/api/folders")] * 3
    assert [c.body for c in writes[:3]] == [{"title": f.title, "uid": f.uid} for f in FOLDERS]
    ds = writes[3]
    assert (ds.method, ds.path) == ("POST", "/api/datasources")
    assert ds.body["type"] == DATASOURCE_TYPE == "grafana-postgresql-datasource"
    assert ds.body["uid"] == "shouwang"
    assert ds.body["url"] == "db.internal:5432"
    assert ds.body["user"] == "dash_firm_f01"
    assert ds.body["access"] == "proxy"
    assert ds.body["jsonData"]["database"] == "shouwang"
    assert ds.body["jsonData"]["timescaledb"] is True
    assert ds.body["jsonData"]["sslmode"] == "disable"
    assert ds.body["jsonData"]["timeInterval"] == "1m"
    assert ds.body["secureJsonData"] == {"password": "s3cret"}
    boards = writes[4:]
    assert [(c.method, c.path) for c in boards] == [("POST", "/api/dashboards/db")] * len(PLACED)
    for call, placed in zip(boards, PLACED, strict=True):
        assert call.body["overwrite"] is True
        assert call.body["folderUid"] == placed.folder.uid
        assert call.body["dashboard"]["uid"] == placed.dashboard.uid
        assert call.body["dashboard"]["id"] is None
        refs = {
            t["datasource"]["uid"]
            for p in call.body["dashboard"]["panels"]
            for t in p.get("targets", [])
        }
        assert refs == {"shouwang"}
    assert {c.headers.get("X-Grafana-Org-Id") for c in grafana.state.calls} == {"3"}
    assert grafana.state.secrets["shouwang"] == {"password": "s3cret"}
    assert {d["meta"]["folderUid"] for d in grafana.state.dashboards.values()} == {
        f.uid for f in FOLDERS
    }


def test_a_second_publish_writes_nothing(grafana: GrafanaDouble, api: Grafana) -> None:
    publish(api, PLACED, SPEC, password="s3cret")
    before = len(grafana.state.calls)

    changes = publish(api, PLACED, SPEC, password="s3cret")

    assert {c.action for c in changes} == {"unchanged"}
    again = grafana.state.calls[before:]
    assert again, "the second run reads what is there"
    assert [c for c in again if c.method != "GET"] == []


def test_only_what_differs_is_written(grafana: GrafanaDouble, api: Grafana) -> None:
    publish(api, PLACED, SPEC, password="s3cret")
    st = grafana.state
    edited = PLACED[2].dashboard.uid
    st.dashboards[edited]["dashboard"]["title"] = "edited in the UI"
    st.folders[FOLDERS[0].uid]["title"] = "renamed in the UI"
    before = len(st.calls)
    moved = DatasourceSpec(url="db2.internal:5432", database="shouwang", user="dash_firm_f01")

    changes = publish(api, PLACED, moved, password="s3cret")

    writes = [(c.method, c.path) for c in st.calls[before:] if c.method != "GET"]
    assert writes == [
        ("PUT", f"/api/folders/{FOLDERS[0].uid}"),
        ("PUT", "/api/datasources/uid/shouwang"),
        ("POST", "/api/dashboards/db"),
    ]
    assert st.folders[FOLDERS[0].uid]["title"] == FOLDERS[0].title
    assert st.datasources["shouwang"]["url"] == "db2.internal:5432"
    assert st.secrets["shouwang"] == {"password": "s3cret"}, "the password is kept"
    assert st.dashboards[edited]["dashboard"]["title"] == PLACED[2].dashboard.title
    assert [c.name for c in changes if c.action == "update"] == [FOLDERS[0].uid, "shouwang", edited]


def test_the_password_is_rewritten_only_when_asked(grafana: GrafanaDouble, api: Grafana) -> None:
    publish(api, PLACED, SPEC, password="first")
    publish(api, PLACED, SPEC, password="second")
    assert grafana.state.secrets["shouwang"] == {"password": "first"}

    changes = publish(api, PLACED, SPEC, password="second", update_password=True)

    assert grafana.state.secrets["shouwang"] == {"password": "second"}
    assert [c.kind for c in changes if c.action != "unchanged"] == ["datasource"]


def test_a_new_data_source_needs_a_password(grafana: GrafanaDouble, api: Grafana) -> None:
    with pytest.raises(ConfigError, match="grant-firm"):
        publish(api, PLACED, SPEC, password=None)
    assert "shouwang" not in grafana.state.datasources


def test_a_wrong_token_is_refused(grafana: GrafanaDouble) -> None:
    from grafana_client.client import GrafanaUnauthorizedError

    with connect(grafana.url, token="wrong") as client, pytest.raises(GrafanaUnauthorizedError):
        publish(client, PLACED, SPEC, password="x")


def test_the_publish_command_publishes_once(
    grafana: GrafanaDouble, tmp_path: Path, database_url: str
) -> None:
    env = dict(
        os.environ,
        SHOUWANG_STATE_DIR=str(tmp_path),
        SHOUWANG_DATABASE_URL=database_url,  # where the list in force is read
        SHOUWANG_GRAFANA_DB_HOST="db.example:5433",  # where Grafana reaches it
        SHOUWANG_GRAFANA_DB_NAME="county",
        SHOUWANG_GRAFANA_URL=grafana.url,
        SHOUWANG_GRAFANA_TOKEN=TOKEN,
        SHOUWANG_GRAFANA_ORG_ID="2",
        SHOUWANG_GRAFANA_DB_USER="dash_firm_f01",
        SHOUWANG_GRAFANA_DB_PASSWORD="s3cret",
    )
    argv = command("dashboards", "publish", "--audience", "firm")

    def run() -> str:
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    first = run()
    assert "datasource shouwang: create" in first
    ds = grafana.state.datasources["shouwang"]
    assert (ds["url"], ds["jsonData"]["database"]) == ("db.example:5433", "county")
    assert {d["meta"]["folderUid"] for d in grafana.state.dashboards.values()} == {"shouwang-firm"}
    assert {c.headers.get("X-Grafana-Org-Id") for c in grafana.state.calls} == {"2"}
    writes = len(grafana.state.writes())
    assert "create" not in run() and "update" not in run()
    assert len(grafana.state.writes()) == writes
