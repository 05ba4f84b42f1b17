"""Gateway: the shell. Builds the parts from a site config, runs polling and forwarding in one
asyncio loop until SIGTERM or SIGINT, and stops in order (``shouwang gateway run CONFIG``).

Polling and forwarding never wait for each other: a poll's entries go to the buffer, and the
forwarder drains the buffer whenever the broker is reachable. A crash at any point loses nothing
that was committed to the buffer, and the platform's identity rules absorb what is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from pathlib import Path

from core.errors import ConfigError
from core.mqtt import Tls
from core.wire import GatewayState
from gateway.collector import Collector
from gateway.config import SiteConfig, load_site_config
from gateway.connector import Connector, Poll
from gateway.store import Store
from gateway.uplink import Forwarder, Uplink, UplinkConfig

log = logging.getLogger("shouwang.gateway")

LOG_EVERY_S = 60.0
CLOCK_WARN_MS = 30_000


class Gateway:
    """One site's gateway: holds its parts; :meth:`run` runs them."""

    def __init__(
        self,
        cfg: SiteConfig,
        store: Store,
        uplink: Uplink,
        forwarder: Forwarder,
        collector: Collector,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.uplink = uplink
        self.forwarder = forwarder
        self.collector = collector
        self.connector = Connector(cfg.devices, self._collected)
        self._stop = asyncio.Event()
        self.dropped_at_start = store.fill().dropped
        self._reported_at, self._reported_on = 0.0, -1

    def _collected(self, poll: Poll) -> None:
        items = self.collector.collect(poll)
        if items:
            dropped = self.store.add(items)
            if dropped:
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
        return GatewayState(
            buffer_entries=fill.entries,
            buffer_bytes=fill.bytes,
            buffer_max_bytes=fill.max_bytes,
            dropped=fill.dropped,
            clock_offset_ms=None if clock is None else clock.offset_ms,
            devices=len(self.cfg.devices),
            devices_online=sum(self.collector.online().values()),
        )

    def _say_state(self) -> None:
        """The buffer and the devices, in the log: what an operator on the box looks at."""
        fill, c = self.store.fill(), self.collector
        online = sum(c.online().values())
        log.info(
            "buffer: %d entries, %d of %d bytes, %d dropped since start (%d in all);"
            " %d batches in flight; devices answering: %d of %d",
            fill.entries,
            fill.bytes,
            fill.max_bytes,
            fill.dropped - self.dropped_at_start,
            fill.dropped,
            len(self.forwarder.inflight),
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
        self.connector.stop()

    async def run(self) -> None:
        self.uplink.start()
        polling = asyncio.create_task(self.connector.run(), name="polling")
        said_at = time.monotonic()
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                self.forwarder.tick(now)
                self._maybe_report(now)
                if now - said_at >= LOG_EVERY_S:
                    said_at = now
                    self._say_state()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.cfg.batch_interval_s)
                if polling.done():  # a poll task failed: a bug; stop rather than limp on
                    polling.result()
        finally:
            self.connector.stop()
            try:
                await asyncio.wait_for(polling, 30)
                self.forwarder.tick(time.monotonic())  # acknowledgements that came meanwhile
            finally:
                self.uplink.stop(self.state())
                self.store.close()


def build(cfg: SiteConfig) -> Gateway:
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
    return Gateway(cfg, store, uplink, forwarder, Collector())


def main(config: Path) -> None:
    cfg = load_site_config(config)
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # silent devices are ours to report
    gateway = build(cfg)
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
