"""The command line: several processes of one command, stopped together (``shouwang ingest
--workers N``)."""

from __future__ import annotations

import logging
import signal
import threading

from shouwang.launch import start

log = logging.getLogger("shouwang.workers")


def run_workers(name: str, argv_of: list[list[str]]) -> None:
    """Start one process per argv; when one exits or on SIGTERM/SIGINT, stop the others."""
    procs = [start(*argv) for argv in argv_of]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        if any(p.poll() is not None for p in procs):
            log.error("a %s worker exited; stopping the others", name)
            break
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)
