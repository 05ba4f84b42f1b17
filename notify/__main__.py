"""Notify: the shell. Builds the dispatcher from the settings and runs it until stopped
(``shouwang notify``, or ``python -m notify``). Started while the database is down, it waits
for it (``core.outlasting_db``) instead of exiting; a stop asked for meanwhile ends the wait."""

from __future__ import annotations

import logging
import signal
import threading

import httpx

from core.logs import configure
from core.metrics import serve
from core.outlasting_db import Stopping
from core.settings import Settings, load_settings
from notify.dispatcher import Dispatcher, from_settings

log = logging.getLogger("shouwang.notify")


def main(s: Settings, *, name: str = "notify-0") -> None:
    stop = threading.Event()
    running: list[Dispatcher] = []

    def on_signal(*_: object) -> None:
        if running:
            running[0].stop()  # wakes its loop too
        else:
            stop.set()  # still waiting for the database

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    # Each send passes its own timeout (notify_send_timeout_s); the pool has room for every
    # sending thread.
    limits = httpx.Limits(max_connections=s.notify_concurrency + 8)
    heartbeat, port = serve("notify", s.metrics_host, s.metrics_port("notify"), [s.state_dir])
    if port:
        log.info("metrics on http://%s:%d/metrics", s.metrics_host, port)
    with httpx.Client(timeout=s.notify_send_timeout_s, limits=limits) as http:
        try:
            d = from_settings(s, name, http, stop=stop, heartbeat=heartbeat)
        except Stopping:
            log.warning("stopped before the database could be reached")
            return
        running.append(d)
        d.run()


if __name__ == "__main__":
    settings = load_settings()
    configure("notify", fmt=settings.log_format)
    main(settings)
