"""core/metrics.py: the one rule of "stuck" (pure), a stage's endpoint served and scraped over
HTTP, and the directories it reports."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.metrics import Directories, liveness, scrape, serve, stage_samples
from tests.conftest import free_port

NOW = 1_000_000.0
STUCK = 60.0


def samples(*, beat_ago: float, progress_ago: float, pending: float) -> dict[str, float]:
    return {
        "info": 1.0,
        "heartbeat": NOW - beat_ago,
        "last_progress": NOW - progress_ago,
        "pending": pending,
        "progress": 42.0,
    }


@pytest.mark.parametrize(
    ("beat_ago", "progress_ago", "pending", "ok", "state", "says"),
    [
        (1, 1, 0, True, "running", "42 done, 0 pending"),  # finished work lately
        (1, 1, 5, True, "running", "5 pending"),  # busy and getting on
        (1, 3600, 0, True, "idle", "last progress 3600 s ago"),  # nothing to do, loop turns
        (1, 3600, 5, False, "stuck", "5 pending and nothing finished for 3600 s"),
        (61, 1, 0, False, "stuck", "loop has not turned for 61 s"),  # its loop hangs
        (61, 3600, 0, False, "stuck", "loop has not turned"),
        (59, 59, 5, True, "running", "5 pending"),  # just inside the limit
    ],
)
def test_liveness_rule(
    beat_ago: float, progress_ago: float, pending: float, ok: bool, state: str, says: str
) -> None:
    got = liveness(
        "ingest", samples(beat_ago=beat_ago, progress_ago=progress_ago, pending=pending), NOW, STUCK
    )
    assert (got.stage, got.ok, got.state) == ("ingest", ok, state), got
    assert says in got.detail


def test_liveness_down_without_endpoint_or_stage() -> None:
    down = liveness("notify", None, NOW, STUCK, "http://127.0.0.1:1/metrics: refused")
    assert (down.ok, down.state, down.detail) == (
        False,
        "down",
        "http://127.0.0.1:1/metrics: refused",
    )
    assert liveness("notify", None, NOW, STUCK).detail == "no metrics endpoint answered"
    other = liveness("notify", {}, NOW, STUCK)  # an endpoint of another stage
    assert (other.ok, other.state) == (False, "down")
    assert "does not carry the stage notify" in other.detail


def test_serve_and_scrape_over_http(tmp_path: Path) -> None:
    stage = "test-core-metrics"
    beat, port = serve(stage, "127.0.0.1", 0, [tmp_path])
    assert port > 0
    before, error = scrape("127.0.0.1", port, stage)
    assert before is not None and error == ""
    assert before["info"] == 1.0 and before["pending"] == 0.0
    beat.progressed(7)
    beat.pending(3)
    after, _ = scrape("127.0.0.1", port, stage)
    assert after is not None
    assert after["progress"] - before["progress"] == 7
    assert after["pending"] == 3
    assert after["last_progress"] >= before["last_progress"]
    judged = liveness(stage, after, after["heartbeat"] + 1, STUCK)
    assert (judged.ok, judged.state) == (True, "running")
    # the endpoint does not carry a stage it does not run
    other, _ = scrape("127.0.0.1", port, "analytics-not-here")
    assert other == {} and liveness("x", other, NOW, STUCK).state == "down"
    # a second stage in the process shares the endpoint; a negative port serves nothing
    _, again = serve("test-core-metrics-2", "127.0.0.1", port, [])
    assert again == port
    both, _ = scrape("127.0.0.1", port, "test-core-metrics-2")
    assert both is not None and both["info"] == 1.0
    _, none = serve("test-core-metrics-3", "127.0.0.1", -1, [])
    assert none == 0


def test_scrape_of_nothing_says_why() -> None:
    port = free_port()
    got, error = scrape("127.0.0.1", port, "ingest", timeout_s=1.0)
    assert got is None and f"127.0.0.1:{port}/metrics" in error


def directory_samples(text: str, path: Path) -> dict[str, float]:
    return {
        s.name: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.labels.get("path") == str(path)
    }


def test_directories_reports_a_directorys_bytes(tmp_path: Path) -> None:
    d = tmp_path / "data"
    (d / "sub").mkdir(parents=True)
    (d / "a.bin").write_bytes(b"x" * 1000)
    (d / "sub" / "b.bin").write_bytes(b"y" * 2345)
    got = {
        (f.name, tuple(s.labels.values())): s.value
        for f in Directories([d]).collect()
        for s in f.samples
    }
    assert got[("shouwang_directory_bytes", (str(d),))] == 3345
    assert (
        0
        < got[("shouwang_disk_free_bytes", (str(d),))]
        <= got[("shouwang_disk_total_bytes", (str(d),))]
    )
    assert all(not f.samples for f in Directories([tmp_path / "missing"]).collect())
    # ... and on a stage's endpoint
    _, port = serve("test-core-directories", "127.0.0.1", 0, [d])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    on_endpoint = directory_samples(text, d)
    assert on_endpoint["shouwang_directory_bytes"] == 3345
    assert stage_samples(text, "test-core-directories")["info"] == 1.0


def test_a_taken_port_never_stops_the_stage(caplog: pytest.LogCaptureFixture) -> None:
    """The port held by another socket: the stage runs without an endpoint and the log says which
    setting to change; a worker of a several-worker stage takes any free port instead."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        _beat, bound = serve("notify", "127.0.0.1", port)
        assert bound == 0
        assert "SHOUWANG_METRICS_PORT_NOTIFY" in caplog.text
        _beat, other = serve("api", "127.0.0.1", port, any_port_if_taken=True)
        assert other not in (0, port)
        samples, why = scrape("127.0.0.1", other, "api")
        assert samples is not None and samples["info"] == 1.0, why
