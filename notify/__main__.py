"""Notify: the shell. Builds the dispatcher from the settings and runs it until stopped
(``shouwang notify``, or ``python -m notify``)."""

from __future__ import annotations

import logging
import signal
import threading

import httpx

from core.settings import Settings, load_settings
from notify.dispatcher import from_settings


def main(s: Settings, *, name: str = "notify-0") -> None:
    # Each send passes its own timeout (notify_send_timeout_s); the pool has room for every
    # sending thread.
    limits = httpx.Limits(max_connections=s.notify_concurrency + 8)
    with httpx.Client(timeout=s.notify_send_timeout_s, limits=limits) as http:
        d = from_settings(s, name, http)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: d.stop())
            signal.signal(signal.SIGINT, lambda *_: d.stop())
        d.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    main(load_settings())
