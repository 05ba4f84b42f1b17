"""A buffer too small for an outage of the platform: the oldest data is dropped and counted,
the count reaches the platform in the gateway's state, and everything that was not dropped,
the newest included, is stored exactly once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.db import Conn
from core.settings import Settings
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from simulators.county import County
from sites.converter import Function
from tests.background import running
from tests.conftest import Broker, settings_env
from tests.gateway.conftest import ModbusSite
from tests.gateway.site_run import (
    drain_and_stop,
    dropped,
    gateway_state,
    journal,
    prepare,
    start,
    units,
    wait_for_more,
)


def test_the_oldest_are_dropped_counted_and_reported(
    db: Conn,
    settings: Settings,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],
    tmp_path: Path,
) -> None:
    site = modbus_site(units())
    config, buffer, ids = prepare(db, tmp_path, broker, county, site, max_bytes=4096)
    log = tmp_path / "gateway.log"
    gw = start(config, settings_env(settings), log)  # no ingest yet: nothing is confirmed
    cfg = config_from(settings, "test-gw-buffer-limit-ingest")
    consumer = Consumer(cfg, settings.database_url)
    try:
        wait_for_more(buffer, 150, gw, log)  # ~40 entries fit: the oldest went
        assert dropped(buffer) > 50
        with running(consumer.run, consumer.stop, "ingest"):
            wait_for_more(buffer, 40, gw, log)
            drain_and_stop(gw, buffer, site, log)
    finally:
        if gw.poll() is None:
            gw.kill()
        retire_session(cfg)
        consumer.conn.close()

    by_id = {v: k for k, v in ids.items()}
    readings = {
        (by_id[int(d)], int(t))
        for d, t in db.execute(
            "SELECT DISTINCT device_id, (extract(epoch FROM ts) * 1000)::bigint FROM readings"
            " WHERE device_id = ANY(%s)",
            (list(ids.values()),),
        )
    }
    statuses = {
        (by_id[int(d)], int(t), bool(on))
        for d, t, on in db.execute(
            "SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint, online FROM device_status"
            " WHERE device_id = ANY(%s)",
            (list(ids.values()),),
        )
    }
    collected = journal(buffer)
    kept = [
        (str(b["device"]), int(str(b["ts"])))
        if kind == 0
        else (str(b["device"]), int(str(b["ts"])), bool(b["online"]))
        for kind, b in collected
    ]
    stored = [k in (readings if len(k) == 2 else statuses) for k in kept]
    assert len(readings) + len(statuses) == sum(stored), "something not collected was stored"
    # Every entry not stored was pushed out, and counted; the count may include entries that
    # were in flight when pushed out and arrived all the same.
    lost = stored.count(False)
    assert 50 < lost <= dropped(buffer)
    assert stored[-60:] == [True] * 60  # the newest arrived
    state = gateway_state(db)
    assert state["dropped"] == dropped(buffer)  # and the platform knows the gap
    assert state["buffer_max_bytes"] == 4096
    assert consumer.stats.rejects == {}, consumer.stats.rejects
