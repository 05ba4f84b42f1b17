"""The Prometheus configuration and alert rules shipped in dashboards/prometheus: promtool accepts
them, every rule fires on its synthetic series and stays quiet on the close cases beside them
(alerts_test.yml), each says how severe it is and what to do, and the thresholds they share with
the platform's own alarms are the settings' defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.metrics import STAGES
from core.settings import Settings
from lifecycle.platform import PlatformKind
from tests.conftest import ROOT

DIRECTORY = ROOT / "dashboards" / "prometheus"
RULES = yaml.safe_load((DIRECTORY / "alerts.yml").read_text(encoding="utf-8"))
TESTS = yaml.safe_load((DIRECTORY / "alerts_test.yml").read_text(encoding="utf-8"))
CONFIG = yaml.safe_load((DIRECTORY / "prometheus.yml").read_text(encoding="utf-8"))


def promtool() -> str:
    """promtool (Debian's prometheus package, scripts/setup.sh); missing is a failure."""
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        pytest.fail("promtool is not installed (apt-get install prometheus); the rules go untested")
    return found


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def rules() -> list[dict[str, Any]]:
    return [r for g in RULES["groups"] for r in g["rules"]]


def rule(name: str) -> dict[str, Any]:
    (found,) = [r for r in rules() if r["alert"] == name]
    return found


def default(name: str) -> Any:
    return Settings.model_fields[name].default


def without_annotations(directory: Path, edit: tuple[str, str] | None = None) -> Path:
    """alerts.yml without its annotations (prose promtool would compare) and alerts_test.yml
    copied into ``directory``; ``edit``: a text replaced in the rules first."""
    text = (DIRECTORY / "alerts.yml").read_text(encoding="utf-8")
    if edit is not None:
        assert edit[0] in text, edit
        text = text.replace(*edit)
    doc = yaml.safe_load(text)
    for group in doc["groups"]:
        for r in group["rules"]:
            r.pop("annotations", None)
    (directory / "alerts.yml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    shutil.copy(DIRECTORY / "alerts_test.yml", directory / "alerts_test.yml")
    return directory / "alerts_test.yml"


def test_promtool_accepts_the_configuration_and_the_rules() -> None:
    config = run("check", "config", "prometheus.yml", cwd=DIRECTORY)
    assert config.returncode == 0, config.stdout + config.stderr
    checked = run("check", "rules", "alerts.yml", cwd=DIRECTORY)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_every_alert_fires_on_its_series_and_not_on_the_close_cases(tmp_path: Path) -> None:
    tested = run("test", "rules", without_annotations(tmp_path).name, cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in TESTS["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    names = {r["alert"] for r in rules()}
    assert firing == names, f"no case where these fire: {sorted(names - firing)}"
    assert quiet == names, f"no case where these stay quiet: {sorted(names - quiet)}"


@pytest.mark.parametrize(
    ("edit", "caught"),
    [
        ("stage_heartbeat_timestamp_seconds) > 60", "ShouwangStageStuck"),
        ("shouwang_notify_outbox_oldest_seconds > 300", "ShouwangOutboxStale"),
        ("(1 - 0.3)", "ShouwangReadingsDropped"),
    ],
)
def test_the_unit_tests_catch_a_changed_threshold(edit: str, caught: str, tmp_path: Path) -> None:
    changed = edit.replace("60", "100").replace("300", "500").replace("0.3", "0.6")
    tested = run("test", "rules", without_annotations(tmp_path, (edit, changed)).name, cwd=tmp_path)
    output = tested.stdout + tested.stderr
    assert tested.returncode != 0 and f"alertname: {caught}" in output, output


def test_each_rule_says_how_severe_it_is_and_what_to_do() -> None:
    platform_kinds = {k.value for k in PlatformKind}
    for r in rules():
        assert r["alert"].startswith("Shouwang"), r["alert"]
        assert r["labels"]["severity"] in ("critical", "warning"), r["alert"]
        notes = r["annotations"]
        assert notes["summary"].strip() and len(notes["description"]) > 80, r["alert"]
        assert notes.get("platform_alarm", "feed_silent") in platform_kinds, r["alert"]
        if "platform_alarm" in notes:
            assert notes["platform_alarm"] in notes["description"], r["alert"]


def test_the_shared_thresholds_are_the_settings() -> None:
    stuck = default("health_stuck_after_s")
    expr = rule("ShouwangStageStuck")["expr"]
    assert re.findall(r"\) > (\d+)", expr) == [f"{stuck:g}", f"{stuck:g}"]
    silent = rule("ShouwangFeedSilent")
    assert silent["for"] == f"{default('analytics_feed_silent_s') / 60:g}m"
    assert "[2m]" in silent["expr"] and silent["annotations"]["platform_alarm"] == "feed_silent"
    share = default("analytics_mass_silence_share")
    assert f"(1 - {share:g})" in rule("ShouwangReadingsDropped")["expr"]
    assert rule("ShouwangReadingsDropped")["annotations"]["platform_alarm"] == "mass_silence"
    voice = default("notify_voice_after_s")
    assert (
        f"shouwang_notify_outbox_oldest_seconds > {voice:g}" in rule("ShouwangOutboxStale")["expr"]
    )
    assert rule("ShouwangStageDown")["annotations"]["platform_alarm"] == "stage_restarted"


def test_prometheus_scrapes_every_stage_at_its_default_port() -> None:
    jobs = {j["job_name"]: j for j in CONFIG["scrape_configs"]}
    assert set(jobs) == {f"shouwang-{s}" for s in STAGES}
    assert CONFIG["rule_files"] == ["alerts.yml"]
    for stage in set(STAGES) - {"gateway"}:
        (static,) = jobs[f"shouwang-{stage}"]["static_configs"]
        assert static["targets"] == [f"{stage}:{default(f'metrics_port_{stage}')}"]
    assert jobs["shouwang-gateway"]["file_sd_configs"][0]["files"] == ["gateways/*.yml"]


def test_docker_compose_runs_this_prometheus_and_grafana_reads_it() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    prom = services["prometheus"]
    assert prom["image"].startswith("prom/prometheus:")
    assert "./dashboards/prometheus:/etc/prometheus:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert not prom.get("ports"), "Prometheus is read inside compose only"
    listen = next(a for a in prom["command"] if a.startswith("--web.listen-address="))
    port = listen.rsplit(":", 1)[1]
    grafana = services["grafana"]["environment"]
    assert grafana["SHOUWANG_GRAFANA_PROMETHEUS_URL"] == f"http://prometheus:{port}"
    # every stage's endpoint reachable from the prometheus container, at the scraped name
    assert compose["x-shouwang"]["environment"]["SHOUWANG_METRICS_HOST"] == "0.0.0.0"
    runs = {
        s["command"][0]: name
        for name, s in services.items()
        if s.get("image") == "shouwang:latest" and s.get("command") and s.get("entrypoint") is None
    }
    for job in CONFIG["scrape_configs"]:
        stage = job["job_name"].removeprefix("shouwang-")
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                assert target.split(":")[0] == runs[stage], (stage, target)
