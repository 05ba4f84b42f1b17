"""Analytics: the shell. Builds the detectors from the responsibility list in force and runs.
Started while the database is down, it waits for it (``core.outlasting_db``) instead of
exiting; a stop asked for meanwhile ends the wait."""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial

from analytics.service import Analytics, AnalyticsConfig
from analytics.upkeep import UpkeepConfig
from core.db import Conn
from core.holiday_store import calendar_in_force
from core.logs import configure
from core.metrics import Heartbeat, serve
from core.outlasting_db import Database, Stopping
from core.settings import Settings, load_settings
from responsibility.in_force import InForce, list_in_force

log = logging.getLogger("shouwang.analytics")


def config_from(s: Settings, clock: str = "wall") -> AnalyticsConfig:
    return AnalyticsConfig(
        client_id=s.analytics_client_id,
        username=s.mqtt_analytics_username,
        password=s.mqtt_analytics_password.get_secret_value(),
        host=s.mqtt_host,
        port=s.mqtt_port,
        clock=clock,
        list_in_force=None if s.responsibility_list else partial(in_force, s),
        refresh_seconds=s.analytics_refresh_s,
        offline_grace_s=s.analytics_offline_grace_s,
        feed_silent_s=s.analytics_feed_silent_s,
        mass_silence_share=s.analytics_mass_silence_share,
        mass_silence_min_devices=s.analytics_mass_silence_min_devices,
        mass_silence_window_s=s.analytics_mass_silence_window_s,
        quarantine_s=s.analytics_quarantine_s,
        upkeep=UpkeepConfig(
            retrain_every_s=s.analytics_retrain_hours * 3600.0,
            retrain_days=s.analytics_retrain_days,
            drift_days=s.analytics_drift_days,
            drift_factor=s.analytics_drift_factor,
            drift_min_alarms=s.analytics_drift_min_alarms,
        ),
    )


def in_force(s: Settings, conn: Conn, current: InForce | None = None) -> InForce:
    """The responsibility list in force for these settings (``responsibility.in_force``); while
    running, ``current`` is the list analytics holds: it stays while it is the answer, and
    when a newer published version fails with the override files (that is logged)."""
    return list_in_force(
        conn,
        pinned=s.responsibility_list,
        overrides_dir=s.responsibility_overrides,
        current=current,
    )


def build(
    s: Settings,
    *,
    clock: str = "wall",
    stop: threading.Event | None = None,
    heartbeat: Heartbeat | None = None,
) -> Analytics:
    """Analytics with the list in force: the file in SHOUWANG_RESPONSIBILITY_LIST when set
    (pinned), else the newest published through the API, else the shipped list; the override
    files in SHOUWANG_RESPONSIBILITY_OVERRIDES on top. Waits for the database while it cannot
    be reached; ``stop`` set ends the wait (``Stopping``) and later stops the service."""
    stop = threading.Event() if stop is None else stop
    db = Database(s.database_url, f"{s.analytics_client_id}-start", stop, log)
    try:
        calendar = db.read(lambda c: calendar_in_force(c, s.work_calendar))
        found = db.read(lambda c: in_force(s, c))
    finally:
        db.close()
    return Analytics(
        config_from(s, clock),
        s.database_url,
        found,
        calendar,
        stopping=stop,
        heartbeat=Heartbeat("analytics") if heartbeat is None else heartbeat,
    )


def main(s: Settings, *, clock: str = "wall") -> None:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    heartbeat, port = serve("analytics", s.metrics_host, s.metrics_port("analytics"), [s.state_dir])
    if port:
        log.info("metrics on http://%s:%d/metrics", s.metrics_host, port)
    try:
        service = build(s, clock=clock, stop=stop, heartbeat=heartbeat)
    except Stopping:
        log.warning("stopped before the database could be reached")
        return
    log.info(
        "analytics running: list %s (%s), clock %s",
        service.entries.version,
        service.in_force.source,
        clock,
    )
    service.run()
    log.info("stopped: %s", service.stats)


if __name__ == "__main__":  # python -m analytics: as `shouwang analytics` with its defaults
    settings = load_settings()
    configure("analytics", fmt=settings.log_format)
    main(settings)
