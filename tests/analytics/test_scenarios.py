"""The fault-injection scenario set, fast-forwarded through the real broker, ingest and
analytics: every injected fault is found with the right event code and responsible party, P0
faults within 10 simulated seconds (median), and at most 0.1 false alarms per device-day."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from rich.console import Console

from analytics.__main__ import build
from analytics.service import Analytics
from core.db import Conn
from core.settings import Settings
from ingest.__main__ import config_from
from ingest.consumer import Consumer, retire_session
from simulators.county import County
from simulators.faults import plan_faults, scenarios
from simulators.fleet import Fleet
from simulators.run import SimClock, build_devices, run
from simulators.scorecard import load_raised, score
from simulators.stream import load_rows

SPAN_S = 4 * 3600.0


ERRORS: list[BaseException] = []


def _thread(target: Callable[[], None], name: str) -> threading.Thread:
    def guarded() -> None:
        try:
            target()
        except BaseException as e:  # surfaced at teardown: a dead stage fails the test
            ERRORS.append(e)

    t = threading.Thread(target=guarded, name=name, daemon=True)
    t.start()
    return t


@pytest.fixture
def pipeline(settings: Settings, db: Conn) -> Iterator[tuple[Consumer, Analytics]]:
    db.execute(
        "TRUNCATE readings, rejects, latest_readings, device_presence, events, device_status"
    )
    db.execute(
        "TRUNCATE ack_tokens_used, deliveries, outbox, alarms, work_orders, work_order_transitions, work_order_breaches, escalation_steps CASCADE"
    )
    ingest = Consumer(config_from(settings, "scenario-ingest"), settings.database_url)
    analytics = build(
        settings.model_copy(update={"analytics_client_id": "scenario-analytics"}), clock="data"
    )
    threads = [_thread(ingest.run, "ingest"), _thread(analytics.run, "analytics")]
    assert ingest._connected.wait(10)
    assert analytics._connected.wait(10)
    yield ingest, analytics
    ingest.stop()
    analytics.stop()
    for t in threads:
        t.join(30)
    assert not ERRORS, ERRORS
    retire_session(config_from(settings, "scenario-ingest"))
    retire_session(
        replace(
            config_from(settings, "scenario-analytics"),
            username=settings.mqtt_analytics_username,
            password=settings.mqtt_analytics_password.get_secret_value(),
        )
    )


def test_scenario_set_is_detected_with_the_right_code_and_party(
    settings: Settings,
    db: Conn,
    county: tuple[County, dict[str, str]],
    pipeline: tuple[Consumer, Analytics],
) -> None:
    ingest, analytics = pipeline
    scenario_set = scenarios(list(analytics.entries.entries.values()))
    missing = [
        s.name
        for s in scenario_set
        if s.expect is None
        and s.transport != "noisy"
        and s.transport not in ("duplicate", "out_of_order")
    ]
    assert not missing, f"the list files nothing for {missing}"

    rows = load_rows(settings.database_url, [], None)
    devices = build_devices(rows, seed=5)
    by_class: dict[str, list[str]] = {}
    for d in devices:
        by_class.setdefault(d.device_class, []).append(d.uid)
    start = time.time() - SPAN_S
    faults = plan_faults(scenario_set, by_class, start=start + 1800, spacing_s=300)

    fleet = Fleet(settings.mqtt_host, settings.mqtt_port)
    secrets = county[1]
    gateways = {d.gateway for d in devices if d.gateway}
    for uid in sorted({d.uid for d in devices if d.gateway is None} | gateways):
        fleet.add(uid, secrets[uid], is_gateway=uid in gateways)
    assert fleet.wait_connected() == []
    stats = run(fleet, devices, SimClock(start=start, speed=0), until=start + SPAN_S, faults=faults)
    fleet.drain()
    fleet.close()

    deadline = time.monotonic() + 300  # returns as soon as analytics has caught up
    while time.monotonic() < deadline and analytics.watermark < stats.sim_end - 1:
        time.sleep(0.5)
    time.sleep(2.0)
    assert analytics.watermark >= stats.sim_end - 1, "analytics did not catch up with the stream"

    card = score(faults, load_raised(db), devices=len(devices), span_s=SPAN_S)
    card.render(Console(width=160))
    failed = [o.fault.scenario for o in card.outcomes if not o.passed]
    assert not failed, f"scenarios not handled right: {failed}"
    p0 = card.p0_median_delay_s
    assert p0 is not None and p0 < 10.0
    assert card.false_per_device_day <= 0.1
    assert ingest.stats.slow_path_readings > 0, (
        "the duplicated messages reached the store twice and were absorbed"
    )
