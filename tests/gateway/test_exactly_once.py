"""The gateway end to end on the real broker and database, polling a real Modbus server: killed
three times mid-stream (SIGKILL), it still stores every sample it collected exactly once."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

from core.db import Conn
from core.settings import Settings
from ingest.consumer import Consumer
from simulators.county import County
from sites.converter import Function
from tests.conftest import Broker, settings_env
from tests.gateway.conftest import ModbusSite
from tests.gateway.site_run import (
    assert_stored_once,
    drain_and_stop,
    gateway_state,
    held,
    prepare,
    start,
    units,
    wait_for_more,
)


def test_gateway_killed_three_times_stores_every_collected_sample_once(
    db: Conn,
    settings: Settings,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    ingest_worker: Consumer,
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],
    tmp_path: Path,
) -> None:
    site = modbus_site(units())
    config, buffer, ids = prepare(db, tmp_path, broker, county, site)
    env, log = settings_env(settings), tmp_path / "gateway.log"
    gw = start(config, env, log)
    unconfirmed_at_kill = []
    try:
        for extra in (40, 25, 60):  # kill it once it collected that many more entries
            wait_for_more(buffer, extra, gw, log)
            gw.send_signal(signal.SIGKILL)
            gw.wait(10)
            unconfirmed_at_kill.append(held(buffer))
            gw = start(config, env, log)
        wait_for_more(buffer, 40, gw, log)
        drain_and_stop(gw, buffer, site, log)
    finally:
        if gw.poll() is None:
            gw.kill()
    assert any(unconfirmed_at_kill), "no kill left anything unconfirmed: it proved nothing"
    assert_stored_once(db, buffer, ids, min_samples=100)
    state = gateway_state(db)
    assert (state["online"], state["reason"]) == (False, "shutdown")  # its last word
    assert (state["devices"], state["dropped"], state["buffer_max_bytes"]) == (5, 0, 8 << 20)
    assert ingest_worker.stats.rejects == {}, ingest_worker.stats.rejects
