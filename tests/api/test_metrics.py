"""The API's metrics (api/metrics.py) on the in-process app and its real database: requests by
route TEMPLATE (never the raw path), method and status; paths no route takes as ``unmatched``;
the connection pools' figures; the heartbeat; and the stage's endpoint served by
``core.metrics.serve``. The registry is the process's: every count is read as a difference."""

from __future__ import annotations

import time
import urllib.request
from types import SimpleNamespace

import httpx
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from api.metrics import method_label, route_label
from core.metrics import scrape, serve
from tests.api.conftest import Api, Ids, LiveServer

DEVICE = "/v1/devices/{uid}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(route: str, status: int, method: str = "GET") -> float:
    return sample("shouwang_api_requests_total", route=route, method=method, status=str(status))


def test_requests_are_counted_by_route_template_method_and_status(api: Api, ids: Ids) -> None:
    uid = ids.device_in("C01")
    before = {s: requests(DEVICE, s) for s in (200, 401, 404)}
    unmatched = requests("unmatched", 404)
    timed = sample("shouwang_api_request_seconds_count", route=DEVICE)
    progress = sample("shouwang_stage_progress_total", stage="api")

    assert api.as_("regulator").get(f"/v1/devices/{uid}").status_code == 200
    assert api.as_("regulator").get(f"/v1/devices/{ids.device_in('C02')}").status_code == 200
    assert api.as_("regulator").get("/v1/devices/NO-SUCH-DEVICE").status_code == 404
    assert api.anonymous().get(f"/v1/devices/{uid}").status_code == 401
    assert api.anonymous().get("/no/such/path/42").status_code == 404

    assert requests(DEVICE, 200) - before[200] == 2, "two devices, one template"
    assert requests(DEVICE, 404) - before[404] == 1
    assert requests(DEVICE, 401) - before[401] == 1
    assert requests("unmatched", 404) - unmatched == 1
    openapi = requests("/openapi.json", 200)
    assert api.anonymous().get("/openapi.json").status_code == 200
    assert requests("/openapi.json", 200) - openapi == 1, "a plain route has its own template"
    assert sample("shouwang_api_request_seconds_count", route=DEVICE) - timed == 4
    assert sample("shouwang_stage_progress_total", stage="api") - progress == 6
    routes = {
        s.labels["route"]
        for family in REGISTRY.collect()
        if family.name == "shouwang_api_requests"
        for s in family.samples
    }
    assert not any(uid in r or "NO-SUCH" in r or "/no/such" in r for r in routes), routes


def test_the_pools_figures_and_the_heartbeat_are_kept_while_the_app_runs(api: Api) -> None:
    started = time.time()
    deadline = time.monotonic() + 5
    while sample("shouwang_stage_heartbeat_timestamp_seconds", stage="api") < started:
        assert time.monotonic() < deadline, "the API's heartbeat does not beat"
        time.sleep(0.1)
    # Two pools (the routes' and the synchronous one), each with at least its one connection.
    assert sample("shouwang_db_pool_connections", stage="api", state="size") >= 2
    available = sample("shouwang_db_pool_connections", stage="api", state="available")
    assert 0 <= available <= sample("shouwang_db_pool_connections", stage="api", state="size")
    assert (
        REGISTRY.get_sample_value(
            "shouwang_db_pool_connections", {"stage": "api", "state": "waiting"}
        )
        == 0
    )
    assert sample("shouwang_stage_pending", stage="api") == 0, "no request in flight"


def test_the_stage_endpoint_carries_the_api_and_its_requests(api: Api, ids: Ids) -> None:
    heartbeat, port = serve("api", "127.0.0.1", 0)
    assert port > 0
    api.as_("regulator").get(f"/v1/devices/{ids.device_in('C01')}")
    samples, error = scrape("127.0.0.1", port, "api")
    assert error == "" and samples is not None
    assert samples["info"] == 1.0 and "heartbeat" in samples and "pending" in samples
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    served = families["shouwang_api_requests"].samples
    assert any(
        s.labels == {"route": DEVICE, "method": "GET", "status": "200"} and s.value >= 1
        for s in served
    )
    assert "shouwang_db_pool_connections" in families
    heartbeat.beat()


def test_a_live_stream_is_not_a_request_in_flight_once_it_has_started(
    live_server: LiveServer, tokens: dict[str, str]
) -> None:
    streams = requests("/v1/stream", 200)
    headers = {"Authorization": f"Bearer {tokens['duty_c01']}"}
    with (
        httpx.Client(base_url=live_server.url, timeout=15) as client,
        client.stream("GET", "/v1/stream", params={"max_seconds": 2}, headers=headers) as r,
    ):
        assert r.status_code == 200
        lines = r.iter_lines()
        next(lines)  # it has started
        assert sample("shouwang_stage_pending", stage="api") == 0, "open for hours by design"
        for _ in lines:
            pass
    deadline = time.monotonic() + 5
    while requests("/v1/stream", 200) - streams < 1:  # counted when it ends
        assert time.monotonic() < deadline, "the stream's request was not counted"
        time.sleep(0.05)
    assert sample("shouwang_stage_pending", stage="api") == 0


def test_labels_are_bounded() -> None:
    class Route:
        path_format = "/devices/{uid}"

    class Included:
        include_context = SimpleNamespace(prefix="/v1")

    context = SimpleNamespace(path_format="/v1/devices/{uid}")
    assert route_label({"route": Route(), "fastapi": {"effective_route_context": context}}) == (
        "/v1/devices/{uid}"
    )
    assert route_label({"route": Route(), "fastapi": {"included_router": Included()}}) == (
        "/v1/devices/{uid}"
    ), "without FastAPI's route context: the included router's prefix and the route's path"
    assert route_label({"route": Route()}) == "/devices/{uid}"
    assert route_label({}) == "unmatched"
    assert method_label("GET") == "GET"
    assert method_label("BREW") == "OTHER"
