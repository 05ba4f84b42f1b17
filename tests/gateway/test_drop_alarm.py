"""A long broker outage with a small buffer: the gateway drops its oldest data and counts it, its
memory stays bounded, the count reaches the platform in its state when the broker is back and
raises the platform alarm ``gateway_dropped`` (an operator sees the gap), and the newest data
arrives."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from core.db import Conn
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from simulators.county import County
from sites.converter import Function
from tests.background import running
from tests.conftest import Broker, settings_env, settings_for, start_broker
from tests.gateway.conftest import ModbusSite
from tests.gateway.site_run import (
    drain_and_stop,
    dropped,
    journal,
    own_broker,
    prepare,
    start,
    units,
    wait_for_more,
)

OUTAGE_S = 20.0  # at 5 devices every 0.1 s, about 25 times what the buffer holds


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def alarm(db: Conn) -> tuple[str, dict[str, int], int] | None:
    row = db.execute(
        "SELECT state, detail, triggers FROM platform_alarms"
        " WHERE kind = 'gateway_dropped' AND subject = 'C01-GW' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return None if row is None else (str(row[0]), dict(row[1]), int(row[2]))


def test_a_long_outage_drops_the_oldest_and_raises_the_alarm(
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
    config, buffer, _ = prepare(db, tmp_path, b, county, site, max_bytes=4096)
    db.execute("DELETE FROM platform_alarms WHERE kind = 'gateway_dropped'")
    log = tmp_path / "gateway.log"
    cfg = config_from(settings, "test-gw-drop-alarm-ingest")
    consumer = Consumer(cfg, database_url)
    gw = start(config, settings_env(settings), log)
    try:
        with running(consumer.run, consumer.stop, "ingest"):
            wait_for_more(buffer, 40, gw, log)
            assert alarm(db) is None  # nothing dropped yet
            b.proc.send_signal(signal.SIGTERM)
            b.proc.wait(10)
            wait_for_more(buffer, 100, gw, log)  # the buffer is full from here on
            rss_full = rss_kib(gw.pid)
            until = time.monotonic() + OUTAGE_S
            peak = rss_full
            while time.monotonic() < until:
                assert gw.poll() is None, log.read_text()[-3000:]
                peak = max(peak, rss_kib(gw.pid))
                time.sleep(0.5)
            lost = dropped(buffer)
            assert lost > 10 * 40, lost  # ten buffers full and more went, oldest first
            b = start_broker(own, port=b.port)
            deadline = time.monotonic() + 30
            while (found := alarm(db)) is None or found[1]["dropped"] < lost:
                assert time.monotonic() < deadline, f"no alarm: {found}"
                time.sleep(0.1)
            wait_for_more(buffer, 60, gw, log)
            drain_and_stop(gw, buffer, site, log)
    finally:
        if gw.poll() is None:
            gw.kill()
        if b.proc.poll() is None:
            retire_session(cfg)
        b.proc.send_signal(signal.SIGTERM)
        b.proc.wait(10)
        consumer.conn.close()

    # Memory: what a full buffer costs stays what it costs, however long the outage.
    assert peak - rss_full < 8 * 1024, (rss_full, peak)
    assert peak < 150 * 1024, peak
    _, detail, _ = found
    assert detail["dropped"] >= lost and detail["buffer_max_bytes"] == 4096
    final = alarm(db)
    assert final is not None and final[0] == "cleared"  # the backlog drained: the gap is closed
    # The newest arrived: the last entries collected are all stored.
    ids = dict(db.execute("SELECT uid, id FROM devices WHERE uid LIKE 'C01-%%'").fetchall())
    last = [b for k, b in journal(buffer)[-40:] if k == 0]
    stored = {
        (int(d), int(t))
        for d, t in db.execute(
            "SELECT device_id, (extract(epoch FROM ts) * 1000)::bigint FROM readings"
            " WHERE ts >= to_timestamp(%s / 1000.0)",
            (min(int(str(s["ts"])) for s in last),),
        )
    }
    assert {(ids[str(s["device"])], int(str(s["ts"]))) for s in last} <= stored
    assert consumer.stats.rejects == {}, consumer.stats.rejects
