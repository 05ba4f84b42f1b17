"""Analytics: the shell. Builds the detectors from the responsibility list in force and runs."""

from __future__ import annotations

import logging
import signal
import threading
from functools import partial
from pathlib import Path

from analytics.service import Analytics, AnalyticsConfig
from core.db import Conn, connect
from core.holiday_store import calendar_in_force
from core.settings import Settings, load_settings
from responsibility.model import (
    ListError,
    ResponsibilityList,
    default_list,
    load_list,
    parse_list,
    parse_override,
)

log = logging.getLogger("shouwang.analytics")


def config_from(s: Settings, clock: str = "wall") -> AnalyticsConfig:
    return AnalyticsConfig(
        client_id=s.analytics_client_id,
        username=s.mqtt_analytics_username,
        password=s.mqtt_analytics_password.get_secret_value(),
        host=s.mqtt_host,
        port=s.mqtt_port,
        clock=clock,
        published_list=None if s.responsibility_list else partial(published_list, s),
    )


def _overrides(s: Settings) -> list[Path]:
    return sorted(s.responsibility_overrides.glob("*.yaml")) if s.responsibility_overrides else []


def published_list(s: Settings, conn: Conn, current: str) -> ResponsibilityList | None:
    """The newest list published through the API, with the override files, if it is not
    ``current``. A published list was validated when it was published; should it fail now
    (an override file changed), the list in force stays and the problem is logged."""
    row = conn.execute(
        "SELECT version, content FROM responsibility_lists ORDER BY published_at DESC LIMIT 1"
    ).fetchone()
    if row is None or row[0] == current:
        return None
    try:
        base = parse_list(row[1], f"published list {row[0]}")
        return base.with_overrides([parse_override(p.read_text(), str(p)) for p in _overrides(s)])
    except ListError as e:
        log.error("published list %s not taken: %s", row[0], e)
        return None


def build(s: Settings, *, clock: str = "wall") -> Analytics:
    """Analytics with the list in force: the file in SHOUWANG_RESPONSIBILITY_LIST when set
    (pinned), else the newest published through the API, else the shipped list."""
    with connect(s.database_url) as conn:
        calendar = calendar_in_force(conn, s.work_calendar)
        if s.responsibility_list:
            entries = load_list(s.responsibility_list, _overrides(s))
        else:
            entries = published_list(s, conn, "") or default_list().with_overrides(
                [parse_override(p.read_text(), str(p)) for p in _overrides(s)]
            )
    return Analytics(config_from(s, clock), s.database_url, entries, calendar)


def main(s: Settings, *, clock: str = "wall") -> None:
    service = build(s, clock=clock)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: service.stop())
        signal.signal(signal.SIGINT, lambda *_: service.stop())
    log.info("analytics running: list %s, clock %s", service.entries.version, clock)
    service.run()
    log.info("stopped: %s", service.stats)


if __name__ == "__main__":  # python -m analytics: as `shouwang analytics` with its defaults
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    main(load_settings())
