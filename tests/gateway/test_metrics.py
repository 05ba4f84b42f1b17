"""The gateway's metrics endpoint during a short run (``shouwang gateway run`` as a process,
polling a real Modbus server, forwarding through the real broker to ingest): it counts the
polls by outcome and the entries the platform acknowledged, and its heartbeat says so."""

from __future__ import annotations

import signal
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from core.db import Conn
from core.metrics import liveness, stage_samples
from core.settings import Settings
from ingest.consumer import Consumer
from simulators.county import County
from sites.converter import Function
from tests.conftest import Broker, free_port, settings_env
from tests.gateway.conftest import ModbusSite
from tests.gateway.site_run import DEVICES, held, journal, prepare, start, units, wait_for_more


def read(port: int) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return text, out


def test_the_gateway_endpoint_counts_polls_and_acknowledged_entries(
    db: Conn,
    settings: Settings,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    ingest_worker: Consumer,
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],
    tmp_path: Path,
) -> None:
    site = modbus_site(units())
    config, buffer, _ids = prepare(db, tmp_path, broker, county, site)
    port = free_port()
    env = settings_env(settings) | {"SHOUWANG_METRICS_PORT_GATEWAY": str(port)}
    log = tmp_path / "gateway.log"
    gw = start(config, env, log)
    try:
        wait_for_more(buffer, 30, gw, log)
        site.stop()  # the devices fall silent: polls fail from here on
        deadline = time.monotonic() + 20
        while True:
            text, got = read(port)
            polls: dict[str, float] = defaultdict(float)
            for (name, labels), v in got.items():
                if name == "shouwang_gateway_polls_total":
                    polls[dict(labels)["outcome"]] += v
            acknowledged = got[("shouwang_gateway_acknowledged_total", ())]
            collected = len(journal(buffer))
            if (
                held(buffer) == 0
                and acknowledged == collected
                and polls["ok"]
                and (polls["error"] + polls["timeout"] >= len(DEVICES))
            ):
                break
            assert gw.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, (dict(polls), acknowledged, collected)
            time.sleep(0.2)
        samples = sum(1 for kind, _ in journal(buffer) if kind == 0)
        assert polls["ok"] >= samples > 0, "each sample came from a poll the device answered"
        devices = {dict(labels)["device"] for (name, labels) in got if "polls" in name}
        assert devices == set(DEVICES)
        assert got[("shouwang_gateway_published_total", ())] >= acknowledged
        assert got[("shouwang_gateway_dropped_total", ())] == 0
        assert got[("shouwang_gateway_buffer_entries", ())] == 0
        assert got[("shouwang_gateway_broker_connected", ())] == 1
        beat = stage_samples(text, "gateway")
        assert beat["progress"] == acknowledged and beat["pending"] == 0
        assert liveness("gateway", beat, time.time(), 60).ok
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(30)
