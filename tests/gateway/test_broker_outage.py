"""The broker stopped for two minutes, or SIGKILLed mid-stream (without persistence: whatever it
had acknowledged and not yet delivered is gone), while the gateway goes on polling; once the
broker is back, every sample the gateway collected is stored exactly once: the gateway forgets
data only on the platform's storage acknowledgement, never on the broker's PUBACK."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from core.db import Conn
from ingest.__main__ import config_from
from ingest.consumer import Consumer
from simulators.county import County
from sites.converter import Function
from tests.background import running
from tests.conftest import Broker, settings_env, settings_for, start_broker
from tests.gateway.conftest import ModbusSite
from tests.gateway.site_run import (
    assert_stored_once,
    drain_and_stop,
    held,
    own_broker,
    prepare,
    start,
    units,
    wait_for_more,
)


def test_broker_killed_mid_stream_loses_nothing(
    db: Conn,
    database_url: str,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],
    tmp_path: Path,
) -> None:
    own, b = own_broker(broker, tmp_path)
    settings = settings_for(database_url, b, tmp_path)
    site = modbus_site(units())
    config, buffer, ids = prepare(db, tmp_path, b, county, site)
    log = tmp_path / "gateway.log"
    consumer = Consumer(config_from(settings, "test-gw-outage-ingest"), database_url)
    gw = start(config, settings_env(settings), log)
    try:
        with running(consumer.run, consumer.stop, "ingest"):
            wait_for_more(buffer, 40, gw, log)
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait(10)
            down_at = time.monotonic()
            wait_for_more(buffer, 30, gw, log)  # polling goes on without the broker
            assert held(buffer) >= 30
            assert time.monotonic() - down_at < 5
            b = start_broker(own, port=b.port)
            wait_for_more(buffer, 40, gw, log)
            drain_and_stop(gw, buffer, site, log)
    finally:
        if gw.poll() is None:
            gw.kill()
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(10)
        consumer.conn.close()
    assert_stored_once(db, buffer, ids, min_samples=80)
    assert consumer.stats.rejects == {}, consumer.stats.rejects


OUTAGE_S = 120.0  # the two minutes the gateway's contract is tested against


def test_broker_stopped_for_two_minutes_loses_nothing(
    db: Conn,
    database_url: str,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    modbus_site: Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite],
    tmp_path: Path,
) -> None:
    """The broker stopped cleanly for two minutes while the gateway polls at its fast test
    interval, then started again: the backlog drains, oldest first, and every sample is stored
    exactly once with its original timestamp."""
    own, b = own_broker(broker, tmp_path)
    settings = settings_for(database_url, b, tmp_path)
    site = modbus_site(units())
    config, buffer, ids = prepare(db, tmp_path, b, county, site)
    log = tmp_path / "gateway.log"
    consumer = Consumer(config_from(settings, "test-gw-stop-ingest"), database_url)
    gw = start(config, settings_env(settings), log)
    try:
        with running(consumer.run, consumer.stop, "ingest"):
            wait_for_more(buffer, 40, gw, log)
            b.proc.send_signal(signal.SIGTERM)
            b.proc.wait(10)
            held_at_stop = held(buffer)
            until = time.monotonic() + OUTAGE_S
            while time.monotonic() < until:
                wait_for_more(buffer, 20, gw, log)  # polling goes on without the broker
            backlog = held(buffer)
            assert backlog > held_at_stop + 200, (held_at_stop, backlog)
            b = start_broker(own, port=b.port)
            wait_for_more(buffer, 40, gw, log)
            drain_and_stop(gw, buffer, site, log)
    finally:
        if gw.poll() is None:
            gw.kill()
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(10)
        consumer.conn.close()
    assert_stored_once(db, buffer, ids, min_samples=backlog)
    assert consumer.stats.rejects == {}, consumer.stats.rejects
