"""The command line: keeps the platform's processes running. A process that exits is started
again after a backoff (1 s, doubling to at most a minute; back to 1 s once it has run a minute),
and said loudly, instead of the whole platform stopping (``shouwang up``, ``shouwang ingest
--workers N``)."""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shouwang.launch import start

log = logging.getLogger("shouwang.supervisor")

Launcher = Callable[..., subprocess.Popen[bytes]]


@dataclass
class Process:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    failures_in_a_row: int = 0
    restart_at: float | None = None
    last_exit: int | None = None


class Supervisor:
    def __init__(
        self,
        processes: dict[str, list[str]],
        *,
        launch: Launcher = start,
        backoff_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        healthy_after_s: float = 60.0,
    ) -> None:
        self.processes = {n: Process(n, argv) for n, argv in processes.items()}
        self.launch = launch
        self.backoff_s, self.backoff_cap_s, self.healthy_after_s = (
            backoff_s,
            backoff_cap_s,
            healthy_after_s,
        )

    def start(self) -> None:
        for p in self.processes.values():
            self._start(p, time.monotonic())

    def _start(self, p: Process, now: float) -> None:
        p.proc = self.launch(*p.argv)
        p.started_at, p.restart_at = now, None

    def exited(self) -> list[Process]:
        """The processes that are down now (waiting for their restart)."""
        return [p for p in self.processes.values() if p.proc is None]

    def poll(self) -> list[str]:
        """Restart what exited once its backoff has passed; what happened, as sentences."""
        now = time.monotonic()
        said: list[str] = []
        for p in self.processes.values():
            if p.proc is not None and (code := p.proc.poll()) is not None:
                p.proc, p.last_exit = None, code
                ran = now - p.started_at
                p.failures_in_a_row = 0 if ran >= self.healthy_after_s else p.failures_in_a_row + 1
                wait = min(
                    self.backoff_cap_s, self.backoff_s * 2 ** max(p.failures_in_a_row - 1, 0)
                )
                p.restart_at = now + wait
                said.append(
                    f"{p.name} exited with status {code} after {ran:.0f} s; restarting in {wait:.0f} s"
                )
            if p.proc is None and p.restart_at is not None and now >= p.restart_at:
                self._start(p, now)
                p.restarts += 1
                said.append(f"{p.name} restarted ({p.restarts} restart(s) so far)")
        for sentence in said:
            log.error("%s", sentence)
        return said

    def summary(self) -> str:
        """``ingest restarted 2×, notify down`` for a status line; empty when all is well."""
        parts = []
        for p in self.processes.values():
            if p.proc is None:
                parts.append(f"{p.name} down")
            elif p.restarts:
                parts.append(f"{p.name} restarted {p.restarts}×")
        return ", ".join(parts)

    def stop(self, timeout_s: float = 30.0) -> None:
        running = [p.proc for p in self.processes.values() if p.proc is not None]
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("process %d did not stop in time; killing it", proc.pid)
                proc.kill()
                proc.wait(5)


def run_until_signalled(supervisor: Supervisor, every_s: float = 1.0) -> None:
    """Start everything and keep it running until SIGTERM or SIGINT, then stop it all."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    supervisor.start()
    try:
        while not stop.wait(every_s):
            supervisor.poll()
    finally:
        supervisor.stop()
