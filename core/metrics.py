"""Shared: each long-running stage's Prometheus endpoint and its heartbeat.

A stage process calls :func:`serve` once in its ``main`` (the stage's name and the port from the
settings) and keeps a :class:`Heartbeat`: ``beat()`` each turn of its main loop, ``progressed(n)``
when it finished work, ``pending(n)`` for the work it knows is waiting. The endpoint then carries,
besides the stage's own metrics (defined at module level in ``<stage>/metrics.py``):

- ``shouwang_stage_info{stage}``, ``shouwang_stage_heartbeat_timestamp_seconds{stage}``,
  ``shouwang_stage_progress_total{stage}``, ``shouwang_stage_last_progress_timestamp_seconds{stage}``,
  ``shouwang_stage_pending{stage}``: what ``shouwang health --stage`` and the alert rules read
  (:func:`liveness` is the one judgement of "stuck" both use);
- ``shouwang_disk_free_bytes{path}`` / ``shouwang_disk_total_bytes{path}`` and
  ``shouwang_directory_bytes{path}`` for the directories the stage names (the database's and the
  broker's state where they are local);
- the client library's process metrics (RSS, CPU seconds, open files) and Python's GC counts.

Metric objects live in the default registry: each stage is its own process in production; tests
that run several stages in one process read differences, never absolute values.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

log = logging.getLogger("shouwang.metrics")

STAGES = ("ingest", "analytics", "notify", "api", "gateway")

STAGE_INFO = Gauge("shouwang_stage_info", "1 for each stage running in this process", ["stage"])
HEARTBEAT = Gauge(
    "shouwang_stage_heartbeat_timestamp_seconds",
    "when the stage's main loop last turned (Unix time)",
    ["stage"],
)
PROGRESS = Counter(
    "shouwang_stage_progress", "units of work the stage finished (its own unit)", ["stage"]
)
LAST_PROGRESS = Gauge(
    "shouwang_stage_last_progress_timestamp_seconds",
    "when the stage last finished work, or started (Unix time)",
    ["stage"],
)
PENDING = Gauge("shouwang_stage_pending", "work the stage knows is waiting for it", ["stage"])


class Heartbeat:
    """One stage's liveness in this process. Thread-safe (the client's metrics are)."""

    def __init__(self, stage: str, clock: Callable[[], float] = time.time) -> None:
        self.stage = stage
        self._clock = clock
        now = clock()
        STAGE_INFO.labels(stage).set(1)
        HEARTBEAT.labels(stage).set(now)
        LAST_PROGRESS.labels(stage).set(now)
        PENDING.labels(stage).set(0)
        PROGRESS.labels(stage).inc(0)

    def beat(self) -> None:
        """The main loop turned (call it at least every few seconds, idle or not)."""
        HEARTBEAT.labels(self.stage).set(self._clock())

    def progressed(self, n: float = 1) -> None:
        """The stage finished ``n`` units of work (a flush's readings, a tick, a delivery...)."""
        now = self._clock()
        if n > 0:
            PROGRESS.labels(self.stage).inc(n)
            LAST_PROGRESS.labels(self.stage).set(now)
        HEARTBEAT.labels(self.stage).set(now)

    def pending(self, n: float) -> None:
        """How much work is waiting now (queued messages, readings not yet analysed, due rows)."""
        PENDING.labels(self.stage).set(max(0.0, n))


class Directories(Collector):
    """Free and total bytes of the file systems holding ``paths``, and each path's own size
    (walked at most once a minute: a large data directory takes a while)."""

    def __init__(self, paths: Sequence[Path], walk_every_s: float = 60.0) -> None:
        self.paths = [p for p in paths if p]
        self.walk_every_s = walk_every_s
        self._sizes: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        free = GaugeMetricFamily(
            "shouwang_disk_free_bytes", "free bytes on the file system of a path", labels=["path"]
        )
        total = GaugeMetricFamily(
            "shouwang_disk_total_bytes", "size of the file system of a path", labels=["path"]
        )
        size = GaugeMetricFamily(
            "shouwang_directory_bytes", "bytes of the files under a path", labels=["path"]
        )
        for p in self.paths:
            try:
                usage = shutil.disk_usage(p)
            except OSError:
                continue
            free.add_metric([str(p)], usage.free)
            total.add_metric([str(p)], usage.total)
            size.add_metric([str(p)], self._size(p))
        yield free
        yield total
        yield size

    def _size(self, path: Path) -> int:
        now = time.monotonic()
        with self._lock:
            seen = self._sizes.get(str(path))
            if seen is not None and now - seen[0] < self.walk_every_s:
                return seen[1]
        n = directory_bytes(path)
        with self._lock:
            self._sizes[str(path)] = (now, n)
        return n


def directory_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (files that vanish meanwhile are skipped)."""
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda _e: None):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total


_directories: dict[str, Directories] = {}  # the one collector of this process, once registered


def serve(
    stage: str,
    host: str,
    port: int,
    directories: Iterable[Path] = (),
    *,
    any_port_if_taken: bool = False,
) -> tuple[Heartbeat, int]:
    """Start this process's metrics endpoint on ``host:port`` (port 0: any free port; a negative
    port: no endpoint) and return the stage's heartbeat and the port it listens on (0 for none).
    Call once per stage; a second stage in the same process shares the endpoint of the first.

    A port that is taken never stops the stage: it is said loudly and the stage runs without an
    endpoint (``shouwang health --stage`` then says it is down), or, with ``any_port_if_taken``
    (several workers of one stage), on any free port, which is logged."""
    beat = Heartbeat(stage)
    paths = [Path(d) for d in directories]
    if paths:
        if "collector" not in _directories:
            _directories["collector"] = Directories([])
            REGISTRY.register(_directories["collector"])
        known = _directories["collector"].paths
        known.extend(p for p in paths if p not in known)
    if port < 0:
        return beat, 0
    server = _servers.get((host, port))
    if server is None:
        try:
            server, _thread = start_http_server(port, addr=host)
        except OSError as e:
            if not any_port_if_taken or port == 0:
                log.error(
                    "cannot serve metrics on %s:%d (%s): %s runs without an endpoint; free the"
                    " port or set SHOUWANG_METRICS_PORT_%s (-1: none)",
                    host,
                    port,
                    e.strerror or e,
                    stage,
                    stage.upper(),
                )
                return beat, 0
            server, _thread = start_http_server(0, addr=host)
            log.warning(
                "metrics port %d is taken (%s): this %s worker's metrics are on port %d",
                port,
                e.strerror or e,
                stage,
                server.server_port,
            )
        _servers[(host, port)] = server
        _servers[(host, server.server_port)] = server
        log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return beat, int(server.server_port)


_servers: dict[tuple[str, int], WSGIServer] = {}

# The endpoint's own limits: whatever connects to the port (a scanner, a flood, a client that
# never sends its request) holds at most this many handler threads, each for at most this long;
# beyond them a connection is closed at once. Prometheus scrapes one request at a time.
MAX_CLIENTS = 16
IDLE_TIMEOUT_S = 10.0


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_S  # a request not read within this is dropped

    def log_message(self, format: str, *args: object) -> None:
        """Nothing per request (a scrape every few seconds)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[_Handler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # all slots busy: not one thread more
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out or went away: not the stage's problem, and not a traceback on
        its stderr per connection."""
        log.debug("metrics request from %s failed", client_address, exc_info=True)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def start_http_server(port: int, addr: str) -> tuple[WSGIServer, threading.Thread]:
    """The registry's endpoint on ``addr:port`` (0: any free port), served by a daemon thread
    within :data:`MAX_CLIENTS` and :data:`IDLE_TIMEOUT_S`."""
    server = make_server(addr, port, make_wsgi_app(REGISTRY), _Server, handler_class=_Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    return server, thread


@dataclass(frozen=True, slots=True)
class Liveness:
    """What a stage's endpoint says of it now, and the judgement (pure, from :func:`liveness`)."""

    stage: str
    ok: bool
    state: str  # running | idle | stuck | down
    detail: str


def liveness(
    stage: str,
    samples: dict[str, float] | None,
    now: float,
    stuck_after_s: float,
    error: str = "",
) -> Liveness:
    """The one rule of "stuck", shared by ``shouwang health --stage`` and the status line (the
    alert rules in dashboards/prometheus/alerts.yml say the same in PromQL): a stage is down
    when its endpoint does not answer or does not carry the stage; stuck when its loop has not
    turned for ``stuck_after_s``, or when work is pending and nothing was finished for that long;
    else running (work pending or done lately) or idle."""
    if samples is None:
        return Liveness(stage, False, "down", error or "no metrics endpoint answered")
    if "info" not in samples:
        return Liveness(stage, False, "down", f"the endpoint does not carry the stage {stage}")
    beat_age = now - samples.get("heartbeat", 0.0)
    progress_age = now - samples.get("last_progress", 0.0)
    pending = samples.get("pending", 0.0)
    if beat_age > stuck_after_s:
        return Liveness(stage, False, "stuck", f"its loop has not turned for {beat_age:.0f} s")
    if pending > 0 and progress_age > stuck_after_s:
        return Liveness(
            stage,
            False,
            "stuck",
            f"{pending:.0f} pending and nothing finished for {progress_age:.0f} s",
        )
    state = "running" if pending > 0 or progress_age <= stuck_after_s else "idle"
    return Liveness(
        stage,
        True,
        state,
        f"{samples.get('progress', 0.0):.0f} done, {pending:.0f} pending,"
        f" last progress {progress_age:.0f} s ago",
    )


_NAMES = {
    "shouwang_stage_info": "info",
    "shouwang_stage_heartbeat_timestamp_seconds": "heartbeat",
    "shouwang_stage_progress_total": "progress",
    "shouwang_stage_last_progress_timestamp_seconds": "last_progress",
    "shouwang_stage_pending": "pending",
}


def stage_samples(text: str, stage: str) -> dict[str, float]:
    """The stage's heartbeat samples from an exposition's text (pure)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = _NAMES.get(s.name)
            if key is not None and s.labels.get("stage") == stage:
                out[key] = float(s.value)
    return out


def scrape(
    host: str, port: int, stage: str, timeout_s: float = 3.0
) -> tuple[dict[str, float] | None, str]:
    """The stage's heartbeat samples read from its endpoint, or None and why."""
    url = f"http://{host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            text = r.read().decode()
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, f"{url}: {getattr(e, 'reason', e)}"
    return stage_samples(text, stage), ""
