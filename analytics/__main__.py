"""Analytics: the shell. Builds the detectors from the responsibility list in force and runs."""

from __future__ import annotations

import logging
import signal
import threading

from analytics.service import Analytics, AnalyticsConfig
from core.responsibility import default_list, load_list
from core.settings import Settings
from core.workcalendar import WorkCalendar, load

log = logging.getLogger("shouwang.analytics")


def config_from(s: Settings, clock: str = "wall") -> AnalyticsConfig:
    return AnalyticsConfig(
        client_id=s.analytics_client_id,
        username=s.mqtt_analytics_username,
        password=s.mqtt_analytics_password.get_secret_value(),
        host=s.mqtt_host,
        port=s.mqtt_port,
        clock=clock,
    )


def build(s: Settings, *, clock: str = "wall") -> Analytics:
    overrides = (
        sorted(s.responsibility_overrides.glob("*.yaml")) if s.responsibility_overrides else []
    )
    entries = (
        load_list(s.responsibility_list, overrides) if s.responsibility_list else default_list()
    )
    calendar = load(s.work_calendar) if s.work_calendar else WorkCalendar()
    return Analytics(config_from(s, clock), s.database_url, entries, calendar)


def main(s: Settings, *, clock: str = "wall") -> None:
    service = build(s, clock=clock)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: service.stop())
        signal.signal(signal.SIGINT, lambda *_: service.stop())
    log.info("analytics running: list %s, clock %s", service.entries.version, clock)
    service.run()
    log.info("stopped: %s", service.stats)
