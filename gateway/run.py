"""Gateway: the shell. Builds the parts from a site config, runs polling and forwarding in one
asyncio loop until SIGTERM or SIGINT, and stops in order (``shouwang gateway run CONFIG``).

Polling and forwarding never wait for each other: a poll's entries go to the buffer, and the
forwarder drains the buffer whenever the broker is reachable. The polls that finish within
``GROUP_COMMIT_S`` are committed together (a group commit: one transaction and one fsync for
them all, not one a poll); a sample counts as collected, and can be sent, only once its group is
committed. A crash at any point loses nothing that was committed to the buffer (at most the group
not yet committed, which nothing had seen), and the platform's identity rules absorb what is sent
twice.

The forwarder runs every ``batch_interval_s``, and also as soon as a storage acknowledgement
arrives, to send the full batches of a backlog (ack-clocked; ``gateway/uplink.py``).

The platform's commands (wire contract revision 5) are handled in the same loop: a state request
is answered with the state at once; a pushed config that passes ``gateway/remote.py`` is written
over the config file (the one before it kept as ``<file>.previous``), its version kept with the
buffer, and applied by restarting polling with its devices. The buffer, the forwarder's batches
in flight and the connection stay: nothing buffered is lost to a change of config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import shutil
import signal
import time
from pathlib import Path

from core.errors import ConfigError
from core.metrics import Heartbeat
from core.metrics import serve as serve_metrics
from core.mqtt import Tls
from core.settings import load_settings
from core.wire import STATE, GatewayState
from gateway import metrics
from gateway.collector import Collector, Item
from gateway.connector import Connector, Poll
from gateway.remote import Refused, judge_push
from gateway.store import Store
from gateway.uplink import Forwarder, Uplink, UplinkConfig
from sites.config import SiteConfig, load_site_config

log = logging.getLogger("shouwang.gateway")

LOG_EVERY_S = 60.0
CLOCK_WARN_MS = 30_000
CONFIG_VERSION = "config_version"  # the store's counter: the version of the pushed config run
GROUP_COMMIT_S = 0.02  # polls finishing within this are committed to the buffer together


class Gateway:
    """One site's gateway: holds its parts; :meth:`run` runs them."""

    def __init__(
        self,
        cfg: SiteConfig,
        store: Store,
        uplink: Uplink,
        forwarder: Forwarder,
        collector: Collector,
        config_path: Path | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.cfg = cfg
        # progressed: entries the platform acknowledged; pending: entries the buffer holds
        self.heartbeat = heartbeat or Heartbeat("gateway")
        self.store = store
        self.uplink = uplink
        self.forwarder = forwarder
        self.collector = collector
        self.config_path = config_path  # where an applied push is kept; None: not kept
        self.config_version = store.counter(CONFIG_VERSION)
        self.connector = Connector(cfg.devices, self._collected)
        self._polling: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # an acknowledgement or a command came, or stop
        self._group: list[Item] = []  # polled entries not committed yet
        self._group_due: asyncio.TimerHandle | None = None
        self._group_failed: BaseException | None = None  # raised by the loop: stop, not limp on
        self.dropped_at_start = store.fill().dropped
        self._reported_at, self._reported_on = 0.0, -1
        self.pushes_applied = self.pushes_refused = 0
        self._acknowledged = forwarder.entries_confirmed  # as the heartbeat last heard it
        self._measure()

    def _measure(self) -> None:
        """The buffer and the acknowledgements in the metrics and the heartbeat."""
        fill = self.store.fill()
        metrics.BUFFER_ENTRIES.set(fill.entries)
        metrics.BUFFER_BYTES.set(fill.bytes)
        confirmed = self.forwarder.entries_confirmed
        self.heartbeat.progressed(confirmed - self._acknowledged)
        self._acknowledged = confirmed
        self.heartbeat.pending(fill.entries)

    def _collected(self, poll: Poll) -> None:
        metrics.POLLS.labels(poll.device.uid, metrics.poll_outcome(poll)).inc()
        items = self.collector.collect(poll)
        if not items:
            return
        self._group += items
        if self._group_due is None:
            loop = asyncio.get_running_loop()
            self._group_due = loop.call_later(GROUP_COMMIT_S, self._commit_due)

    def _commit_due(self) -> None:
        try:
            self._commit_group()
        except Exception as e:  # the buffer cannot take it (a full disk): the loop stops on it
            self._group_failed = e
            self._wake.set()

    def _commit_group(self) -> None:
        """Commit the polls collected since the last group, in one transaction."""
        if self._group_due is not None:
            self._group_due.cancel()
            self._group_due = None
        items, self._group = self._group, []
        if not items:
            return
        dropped = self.store.add(items)
        if dropped:
            metrics.DROPPED.inc(dropped)
            log.warning("buffer full: dropped the %d oldest entries", dropped)

    def _maybe_report(self, now: float) -> None:
        """Report the state on each new connection, and every ``state_every_s``."""
        connection = self.uplink.connections
        due = connection != self._reported_on or now - self._reported_at >= self.cfg.state_every_s
        if due and self.uplink.connected.is_set() and self.uplink.report(self.state()):
            self._reported_at, self._reported_on = now, connection

    def state(self) -> GatewayState:
        """What the gateway reports about itself on its status topic."""
        fill, clock = self.store.fill(), self.forwarder.clock
        online = self.collector.online()
        return GatewayState(
            buffer_entries=fill.entries,
            buffer_bytes=fill.bytes,
            buffer_max_bytes=fill.max_bytes,
            dropped=fill.dropped,
            clock_offset_ms=None if clock is None else clock.offset_ms,
            devices=len(self.cfg.devices),
            devices_online=sum(online.get(d.uid, False) for d in self.cfg.devices),
            config_version=self.config_version,
        )

    async def _commands(self) -> None:
        """The platform's commands that came since the last round, in order."""
        while True:
            try:
                command, payload = self.uplink.commands.get_nowait()
            except queue.Empty:
                return
            if command == STATE:
                self._reported_on = -1  # report at once
            else:
                await self._push(payload)

    async def _push(self, payload: bytes) -> None:
        base = Path.cwd() if self.config_path is None else self.config_path.parent
        verdict = judge_push(payload, self.cfg, self.config_version, base)
        if not isinstance(verdict, Refused) and self.config_path is not None:
            try:
                keep(self.config_path, verdict.text)
            except OSError as e:
                msg = f"cannot write {self.config_path} ({e.strerror}); free the disk or fix its rights"
                verdict = Refused(verdict.version, [msg])
        if isinstance(verdict, Refused):
            self.pushes_refused += 1
            log.warning(
                "refused the pushed config v%d: %s", verdict.version, "; ".join(verdict.errors)
            )
            self.uplink.answer(verdict.version, False, verdict.errors)
            return
        self.store.set_counter(CONFIG_VERSION, verdict.version)
        self.config_version = verdict.version
        await self._restart_polling(verdict.config)
        self.pushes_applied += 1
        log.info(
            "applied the pushed config v%d: %d devices",
            verdict.version,
            len(verdict.config.devices),
        )
        self.uplink.answer(verdict.version, True, [])
        self._reported_on = -1

    async def _restart_polling(self, cfg: SiteConfig) -> None:
        """Poll ``cfg``'s devices from now on; the buffer and what is in flight stay."""
        self.connector.stop()
        if self._polling is not None:
            await asyncio.wait_for(self._polling, 30)
        self._commit_group()
        self.cfg = cfg
        f = self.forwarder
        f.batch_max_bytes, f.ack_timeout_s = cfg.batch_max_bytes, cfg.ack_timeout_s
        f.kib_per_minute, f.kib_per_s = cfg.max_kib_per_minute, cfg.max_kib_per_minute / 60.0
        f.budget_kib = min(f.budget_kib, f.kib_per_minute)
        dropped = self.store.resize(cfg.buffer_max_bytes)
        if dropped:
            metrics.DROPPED.inc(dropped)
            log.warning("the smaller buffer dropped the %d oldest entries", dropped)
        self.connector = Connector(cfg.devices, self._collected)
        self._polling = asyncio.create_task(self.connector.run(), name="polling")

    def _say_state(self) -> None:
        """The buffer and the devices, in the log: what an operator on the box looks at."""
        fill, c = self.store.fill(), self.collector
        online = sum(c.online().values())
        log.info(
            "buffer: %d entries, %d of %d bytes, %d dropped since start (%d in all);"
            " %d batches (%d bytes) in flight; devices answering: %d of %d",
            fill.entries,
            fill.bytes,
            fill.max_bytes,
            fill.dropped - self.dropped_at_start,
            fill.dropped,
            len(self.forwarder.inflight),
            self.forwarder.bytes_in_flight,
            online,
            len(self.cfg.devices),
        )
        clock = self.forwarder.clock
        if clock is None:
            return
        level = logging.WARNING if abs(clock.offset_ms) > CLOCK_WARN_MS else logging.INFO
        log.log(
            level,
            "the platform's clock is %+.1f s from this box's (measured within ±%.1f s);"
            " samples more than 300 s ahead of the platform are rejected: keep NTP running",
            clock.offset_ms / 1000,
            clock.rtt_ms / 2000,
        )

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.connector.stop()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def news() -> None:  # on paho's thread
            loop.call_soon_threadsafe(self._wake.set)

        self.uplink.on_news = news
        self.uplink.start()
        self._polling = asyncio.create_task(self.connector.run(), name="polling")
        said_at = due = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self._wake.clear()
                regular = now >= due  # else: woken by an acknowledgement or a command
                if regular:
                    due = now + self.cfg.batch_interval_s
                self.forwarder.tick(now, full_only=not regular)
                self._measure()  # the loop turned (the heartbeat beats)
                await self._commands()
                self._maybe_report(now)
                if now - said_at >= LOG_EVERY_S:
                    said_at = now
                    self._say_state()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), max(0.0, due - time.monotonic()))
                if self._polling.done():  # a poll task failed: a bug; stop rather than limp on
                    self._polling.result()
                if self._group_failed is not None:
                    raise self._group_failed
        finally:
            self.connector.stop()
            try:
                await asyncio.wait_for(self._polling, 30)
                self._commit_group()  # the last polls: committed before the buffer closes
                self.forwarder.tick(time.monotonic())  # acknowledgements that came meanwhile
            finally:
                self.uplink.on_news = None
                self.uplink.stop(self.state())
                self.store.close()


def keep(path: Path, text: str) -> None:
    """Write ``text`` over the config file at ``path`` so that a crash leaves the old file or
    the new one, never half of one; the old one stays as ``<file>.previous``."""
    tmp = path.with_name(path.name + ".pushed")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        shutil.copy2(path, path.with_name(path.name + ".previous"))
    os.replace(tmp, path)


def build(
    cfg: SiteConfig, config_path: Path | None = None, heartbeat: Heartbeat | None = None
) -> Gateway:
    try:
        password = cfg.broker.password_file.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(
            str(cfg.broker.password_file),
            f"cannot read the gateway's broker password ({e.strerror}); write the password"
            f" 'shouwang broker issue {cfg.gateway}' printed into it",
        ) from e
    if not password:
        raise ConfigError(str(cfg.broker.password_file), "the password file is empty")
    tls = Tls(cfg.broker.ca_file) if cfg.broker.tls else None
    if tls is not None:
        tls.context()  # a missing CA file fails now, not at the first connection
    store = Store(cfg.buffer_path, cfg.buffer_max_bytes)
    uplink = Uplink(
        UplinkConfig(
            cfg.gateway, cfg.broker.host, cfg.broker.port, password, tls, cfg.broker.keepalive_s
        )
    )
    forwarder = Forwarder(
        store,
        uplink,
        batch_max_bytes=cfg.batch_max_bytes,
        ack_timeout_s=cfg.ack_timeout_s,
        kib_per_minute=cfg.max_kib_per_minute,
    )
    return Gateway(cfg, store, uplink, forwarder, Collector(), config_path, heartbeat)


def main(config: Path) -> None:
    """Run the gateway of the site config ``config``; its metrics on the settings'
    ``metrics_host``:``metrics_port_gateway``."""
    cfg = load_site_config(config)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # silent devices are ours to report
    s = load_settings()
    paths = [s.state_dir, cfg.buffer_path.parent]
    heartbeat, _port = serve_metrics("gateway", s.metrics_host, s.metrics_port("gateway"), paths)
    gateway = build(cfg, config, heartbeat)
    fill = gateway.store.fill()
    log.info(
        "gateway %s: %d devices, buffer %s holds %d entries (%d bytes of %d)",
        cfg.gateway,
        len(cfg.devices),
        cfg.buffer_path,
        fill.entries,
        fill.bytes,
        fill.max_bytes,
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.stop)
        await gateway.run()

    asyncio.run(serve())
    c = gateway.collector
    log.info("stopped: %d polls (%d unanswered)", c.polls, c.silent_polls)
