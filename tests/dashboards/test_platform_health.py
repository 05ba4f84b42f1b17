"""The platform-health dashboard: Grafana dashboard JSON over the Prometheus data source, every
query PromQL that Prometheus parses, its stage state the judgement of core.metrics.liveness, and
provisioned beside the others with its data source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from core.metrics import liveness
from core.settings import Settings
from dashboards.datasource import PROMETHEUS_REF, REF
from dashboards.files import PROMETHEUS_URL_ENV, files
from dashboards.folders import FOLDERS, PLATFORM, all_dashboards, platform_dashboards
from dashboards.model import PROMETHEUS_TYPE, SCHEMA_VERSION, Panel, dashboard_json
from dashboards.platform_health import UID, build, state_expr
from dashboards.publish import connect, publish_platform
from responsibility.loader import default_list
from tests.dashboards.grafana_double import GrafanaDouble
from tests.dashboards.test_alert_rules import run

KINDS = {"timeseries", "stat", "table", "bargauge", "state-timeline", "row"}
TOKEN = "glsa_test_token"
STUCK_S = Settings.model_fields["health_stuck_after_s"].default


def model() -> dict[str, Any]:
    (placed,) = platform_dashboards()
    out: dict[str, Any] = json.loads(json.dumps(dashboard_json(placed.dashboard, REF)))
    return out


def exprs(d: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (p["title"], t["expr"]) for p in d["panels"] if p["type"] != "row" for t in p["targets"]
    ]


def rendered(expr: str, rate_interval: str = "1m") -> str:
    """A panel's query as Grafana sends it (its one variable, $__rate_interval, expanded)."""
    return expr.replace("$__rate_interval", rate_interval)


def test_the_dashboard_is_grafana_dashboard_json_over_prometheus() -> None:
    d = model()
    assert d["schemaVersion"] == SCHEMA_VERSION and d["uid"] == UID and d["id"] is None
    panels = d["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert {p["type"] for p in panels} <= KINDS
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        mine = {(g["x"] + i, g["y"] + j) for i in range(g["w"]) for j in range(g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": PROMETHEUS_TYPE, "uid": "shouwang-prometheus"}
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and "rawSql" not in t
            assert t["expr"].strip() and t["legendFormat"]
            # the latest value alone for a stat, the range for a graph
            assert t["instant"] == (p["type"] == "stat") and t["range"] == (not t["instant"])
    titles = " ".join(p["title"] for p in panels)
    for needed in (
        "Stages up",
        "Stage state",
        "Heartbeat",
        "Progress",
        "Pending",
        "feed lag",
        "flush latency p95",
        "rejects by reason",
        "outbox",
        "deliveries by outcome",
        "API: latency p95",
        "5xx",
        "Database pool",
        "RSS",
        "CPU",
        "Disk free",
    ):
        assert needed in titles, needed
    assert d["templating"]["list"] == [] and d["annotations"]["list"][0]["builtIn"] == 1


def test_every_query_is_promql_prometheus_parses(tmp_path: Path) -> None:
    """Each query as a recording rule: promtool parses every expression."""
    queries = exprs(model())
    rules = [
        {"record": f"panel:query_{i}", "expr": rendered(e)} for i, (_, e) in enumerate(queries)
    ]
    (tmp_path / "panels.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}), encoding="utf-8"
    )
    checked = run("check", "rules", "panels.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(queries)} rules found" in checked.stdout
    bad = run("check", "rules", "missing.yml", cwd=tmp_path)
    assert bad.returncode != 0


def test_the_stage_state_is_the_liveness_judgement(tmp_path: Path) -> None:
    """The state panel's expression and core.metrics.liveness agree, case by case, on the same
    samples (promtool evaluates the expression at time 1000)."""
    now = 1000.0
    cases = {  # stage: (heartbeat age, last progress age, pending)
        "fresh_idle": (1.0, 500.0, 0.0),
        "fresh_running": (1.0, 5.0, 0.0),
        "working_backlog": (1.0, 5.0, 40.0),
        "loop_stopped": (STUCK_S + 5, 5.0, 0.0),
        "backlog_stalled": (1.0, STUCK_S + 5, 3.0),
        "just_under": (STUCK_S - 1, STUCK_S - 1, 3.0),
    }
    code = {"idle": 0, "running": 1, "stuck": 2}
    series = []
    expected = []
    for stage, (beat, progress, pending) in cases.items():
        labels = f'job="shouwang-x",instance="x",stage="{stage}"'
        for name, value in (
            ("shouwang_stage_info", 1.0),
            ("shouwang_stage_heartbeat_timestamp_seconds", now - beat),
            ("shouwang_stage_last_progress_timestamp_seconds", now - progress),
            ("shouwang_stage_pending", pending),
            ("shouwang_stage_progress_total", 7.0),
        ):
            series.append({"series": f"{name}{{{labels}}}", "values": f"{value:g}x20"})
        samples = {
            "info": 1.0,
            "heartbeat": now - beat,
            "last_progress": now - progress,
            "pending": pending,
        }
        judged = liveness(stage, samples, now, STUCK_S)
        expected.append({"labels": f"{{{labels}}}", "value": code[judged.state]})
    assert {e["value"] for e in expected} == {0, 1, 2}
    (tmp_path / "none.yml").write_text("groups: []\n", encoding="utf-8")
    test = {
        "rule_files": ["none.yml"],
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [
                    {"expr": state_expr(STUCK_S), "eval_time": "1000s", "exp_samples": expected}
                ],
            }
        ],
    }
    (tmp_path / "state_test.yml").write_text(yaml.safe_dump(test), encoding="utf-8")
    tested = run("test", "rules", "state_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_stuck_threshold_follows_the_setting() -> None:
    assert f"> bool {STUCK_S:g}" in state_expr(STUCK_S)
    (placed,) = platform_dashboards(stuck_after_s=25)
    state = next(
        p for p in placed.dashboard.panels if isinstance(p, Panel) and p.title == "Stage state"
    )
    assert "> bool 25)" in state.queries[0].sql and "<= bool 25)" in state.queries[0].sql
    assert build().datasource == PROMETHEUS_REF


def test_it_is_provisioned_with_its_data_source_beside_the_others() -> None:
    out = {str(f.path): f.text for f in files(all_dashboards(default_list()))}
    (source,) = yaml.safe_load(out["datasources/prometheus.yaml"])["datasources"]
    assert source["type"] == "prometheus" and source["uid"] == PROMETHEUS_REF.uid
    assert source["url"] == f"${{{PROMETHEUS_URL_ENV}}}"
    (provider,) = yaml.safe_load(out["dashboards/platform.yaml"])["providers"]
    assert provider["folderUid"] == PLATFORM.uid and PLATFORM not in FOLDERS
    path = f"dashboards/shouwang/{PLATFORM.uid}/{UID}.json"
    assert provider["options"]["path"] == f"/etc/grafana/provisioning/{path.rsplit('/', 1)[0]}"
    assert json.loads(out[path]) == model()
    # the PostgreSQL data source's file still holds that one alone (docker-compose mounts both)
    (pg,) = yaml.safe_load(out["datasources/shouwang.yaml"])["datasources"]
    assert pg["uid"] == REF.uid


def test_publishing_writes_its_folder_data_source_and_dashboard_once() -> None:
    with GrafanaDouble(TOKEN) as grafana, connect(grafana.url, token=TOKEN) as api:
        changes = publish_platform(api, platform_dashboards(), "http://prometheus:9090")
        assert [(c.kind, c.name, c.action) for c in changes] == [
            ("folder", PLATFORM.uid, "create"),
            ("datasource", "shouwang-prometheus", "create"),
            ("dashboard", UID, "create"),
        ]
        st = grafana.state
        ds = st.datasources[PROMETHEUS_REF.uid]
        assert (ds["type"], ds["url"]) == ("prometheus", "http://prometheus:9090")
        board = st.dashboards[UID]
        assert board["meta"]["folderUid"] == PLATFORM.uid
        refs = {
            t["datasource"]["uid"]
            for p in board["dashboard"]["panels"]
            for t in p.get("targets", [])
        }
        assert refs == {PROMETHEUS_REF.uid}
        before = len(st.calls)
        again = publish_platform(api, platform_dashboards(), "http://prometheus:9090")
        assert {c.action for c in again} == {"unchanged"}
        assert [c for c in st.calls[before:] if c.method != "GET"] == []
        moved = publish_platform(api, platform_dashboards(), "http://prom.internal:9090")
        assert [c.name for c in moved if c.action == "update"] == ["shouwang-prometheus"]
        assert st.datasources[PROMETHEUS_REF.uid]["url"] == "http://prom.internal:9090"


def test_the_publish_command_adds_them_when_prometheus_is_set(
    database_url: str, tmp_path: Path
) -> None:
    from dashboards.commands import publish

    with GrafanaDouble(TOKEN) as grafana:
        s = Settings(
            _env_file=None,
            state_dir=tmp_path,
            database_url=database_url,
            grafana_url=grafana.url,
            grafana_token=SecretStr(TOKEN),
            grafana_db_user="dash_regulator",
            grafana_db_password=SecretStr("pw"),
        )
        without = publish(s, [], update_password=False)
        assert UID not in {c.name for c in without} and UID not in grafana.state.dashboards
        s = s.model_copy(update={"grafana_prometheus_url": "http://prometheus:9090"})
        firm_only = publish(s, ["firm"], update_password=False)
        assert UID not in {c.name for c in firm_only}, "an audience's publish leaves it out"
        everything = publish(s, [], update_password=False)
        assert ("dashboard", UID, "create") in [(c.kind, c.name, c.action) for c in everything]
        assert grafana.state.datasources[PROMETHEUS_REF.uid]["url"] == "http://prometheus:9090"
