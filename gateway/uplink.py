"""Gateway: the one connection upstream (MQTT, paho), and the forwarding of the buffer over it.

The gateway connects with its own credentials (username = its uid), sets its last will (its
status topic, ``{"online": false}``, retained) and keeps a persistent session, so that the
platform's storage acknowledgements (``sw/v1/g/{uid}/cmd/stored``, wire contract revision 4)
and its config pushes and state requests (``cmd/config``, ``cmd/state``, revision 5) published
while it was away reach it when it is back. paho's thread only queues them; the gateway's loop
handles them (``gateway/run.py``).

:class:`Forwarder` is the store-and-forward loop: it sends the buffer oldest first, in batches
under a byte limit (their exact encoded size, ``gateway/batch.py``) that each carry their sequence
range, keeps a window of batches in flight that each acknowledgement refills, forgets a range
only when the platform says it stored it, and sends a range again when no acknowledgement
came in time (a broker that crashed after its PUBACK, a lost connection). Redelivery is harmless:
each entry keeps its original ``ts``, and the platform stores an identity once. A broker's PUBACK
alone never deletes anything.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from core.mqtt import Tls, new_client
from core.wire import (
    COMMAND,
    CONFIG,
    PREFIX,
    STATE,
    STORED,
    Channel,
    GatewayState,
    decode_stored,
    encode_config_answer,
    encode_status,
    gateway_topic,
    join_batch,
)
from gateway import metrics
from gateway.batch import encoded_size, fit
from gateway.store import Entry, Kind, Store

log = logging.getLogger("shouwang.gateway")

# The forwarder's window: what may be in flight at once (see Forwarder).
WINDOW_BYTES = 2 * 1024 * 1024
WINDOW_BATCHES = 32
CLOCK_SAMPLES = 20  # round trips the clock offset is taken from (the shortest wins)


@dataclass(frozen=True, slots=True)
class Ack:
    """A storage acknowledgement of one range: the platform's clock when it sent it, and the
    gateway's when it arrived."""

    first: int
    last: int
    platform_ms: int
    received_ms: int


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """How far the platform's clock is ahead of the gateway's (negative: behind), measured on a
    batch's round trip: within ``rtt_ms`` / 2, plus the platform's time to commit."""

    offset_ms: int
    rtt_ms: int


def clock_offset(sent_ms: int, platform_ms: int, received_ms: int) -> ClockOffset:
    """The offset from one round trip, taking the platform's stamp as the midpoint of it."""
    return ClockOffset(platform_ms - (sent_ms + received_ms) // 2, received_ms - sent_ms)


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    gateway: str
    host: str
    port: int
    password: str
    tls: Tls | None = None
    keepalive_s: int = 30


class Uplink:
    """The MQTT client. paho's thread only queues acknowledgements (:attr:`stored`) and flags
    the connection; the forwarder, in the gateway's loop, does the rest."""

    def __init__(self, cfg: UplinkConfig) -> None:
        self.cfg = cfg
        self.connected = threading.Event()
        self.connections = 0  # CONNACKs accepted: a new one means in-flight batches may be lost
        self.stored: queue.SimpleQueue[Ack] = queue.SimpleQueue()
        # Config pushes and state requests: (command, payload), for the gateway's loop.
        self.commands: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.bad_commands = 0
        # Called (on paho's thread) on a connection and when an acknowledgement or a command was
        # queued: the gateway wakes its loop with it, so that the forwarder sends at once.
        self.on_news: Callable[[], None] | None = None
        self._stopping = False
        self.client, self._props = new_client(
            f"gw-{cfg.gateway}", cfg.gateway, cfg.password, persistent=True, tls=cfg.tls
        )
        self.status_topic = gateway_topic(cfg.gateway, Channel.STATUS)
        self.client.will_set(self.status_topic, encode_status(False), qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        self.client.connect_async(
            self.cfg.host,
            self.cfg.port,
            keepalive=self.cfg.keepalive_s,
            clean_start=False,
            properties=self._props,
        )
        self.client.loop_start()

    def stop(self, state: GatewayState | None = None) -> None:
        """Say so (retained, with the final ``state``), then disconnect: a normal DISCONNECT
        suppresses the will."""
        self._stopping = True
        if self.connected.is_set():
            now = time.time_ns() // 1_000_000
            last = encode_status(False, now, "shutdown", state)
            info = self.client.publish(self.status_topic, last, qos=1, retain=True)
            info.wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """QoS 1, only while connected (paho would otherwise queue without bound)."""
        if not self.connected.is_set():
            return False
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def report(self, state: GatewayState) -> bool:
        """The gateway's status with its state (retained: the platform sees the latest)."""
        now = time.time_ns() // 1_000_000
        return self.publish(self.status_topic, encode_status(True, now, state=state), retain=True)

    def answer(self, version: int, applied: bool, errors: list[str]) -> bool:
        """The answer to a pushed config (wire contract revision 5)."""
        now = time.time_ns() // 1_000_000
        payload = encode_config_answer(version, applied, errors, now)
        return self.publish(gateway_topic(self.cfg.gateway, Channel.CONFIG), payload)

    def _on_connect(
        self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: Properties | None
    ) -> None:
        if rc.is_failure:
            log.error("the broker refused the gateway's connection: %s", rc)
            return
        client.subscribe(
            f"{PREFIX}/g/{self.cfg.gateway}/{COMMAND}/#", options=SubscribeOptions(qos=1)
        )
        now = time.time_ns() // 1_000_000
        client.publish(self.status_topic, encode_status(True, now), qos=1, retain=True)
        self.connections += 1
        self.connected.set()
        metrics.BROKER_CONNECTED.set(1)
        self._news()  # what was held meanwhile goes now, not at the next round
        log.info("connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.cfg.gateway)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        if self._stopping or rc.value == 0:  # our own DISCONNECT
            log.info("disconnected from the broker (%s)", rc)
        elif self.connected.is_set():
            log.warning("lost the broker (%s); buffering until it is back", rc)
        self.connected.clear()
        metrics.BROKER_CONNECTED.set(0)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        command = msg.topic.rsplit("/", 1)[-1]
        if command in (CONFIG, STATE):
            self.commands.put((command, bytes(msg.payload)))
            self._news()
            return
        if command != STORED:
            self.bad_commands += 1
            log.error("ignored a command this gateway does not know: %s", msg.topic)
            return
        received_ms = time.time_ns() // 1_000_000
        try:
            ranges, platform_ms = decode_stored(bytes(msg.payload))
            for first, last in ranges:
                self.stored.put(Ack(first, last, platform_ms, received_ms))
            self._news()
        except ValidationError as e:  # only the platform writes there: a platform bug
            self.bad_commands += 1
            log.error("ignored a storage acknowledgement the gateway cannot read: %s", e)

    def _news(self) -> None:
        if self.on_news is not None:
            self.on_news()


class Forwarder:
    """Sends the buffer and forgets what the platform stored. Called from one loop.

    Two limits keep it in step with the platform. The window (``window_bytes`` of batches, and at
    most ``window`` of them) bounds what is in flight: a new batch goes as soon as an
    acknowledgement frees room (ack-clocked), so a backlog drains at the window per round trip
    (the platform's flush, its commit, the ``cmd/stored`` message). The budget
    (``kib_per_minute``, a minute's worth at once) bounds the rate, under the platform's limit
    for a gateway: whichever is lower sets the drain."""

    def __init__(
        self,
        store: Store,
        uplink: Uplink,
        *,
        batch_max_bytes: int,
        ack_timeout_s: float = 30.0,
        window: int = WINDOW_BATCHES,
        window_bytes: int = WINDOW_BYTES,
        kib_per_minute: float = 2400.0,
    ) -> None:
        self.store = store
        self.uplink = uplink
        self.topic = gateway_topic(uplink.cfg.gateway, Channel.BATCH)
        self.batch_max_bytes = batch_max_bytes
        self.ack_timeout_s = ack_timeout_s
        self.window = window
        self.window_bytes = window_bytes  # at least one batch is in flight, whatever its size
        # The platform counts a gateway's messages once per started KiB (wire contract 5.5):
        # send under that rate, with a minute's worth at once.
        self.kib_per_s = kib_per_minute / 60.0
        self.budget_kib = self.kib_per_minute = kib_per_minute
        self._budget_at: float | None = None  # the first tick's clock
        self.inflight: dict[tuple[int, int], float] = {}  # range -> when to send it again
        self._sizes: dict[tuple[int, int], int] = {}  # range -> bytes of its batch
        self._sent_ms: dict[tuple[int, int], int] = {}  # range -> wall clock of its last send
        self.clock: ClockOffset | None = None  # the best (shortest round trip) of recent ones
        self._clocks: list[ClockOffset] = []
        self.cursor = 0  # the last sequence number sent in this run
        self._connections = -1
        self.batches_sent = 0
        self.batches_resent = 0
        self.largest_batch = 0  # bytes of the largest batch sent
        self.entries_confirmed = 0

    @property
    def bytes_in_flight(self) -> int:
        return sum(self._sizes.values())

    def tick(self, now: float, *, full_only: bool = False) -> None:
        """One round: take in acknowledgements, send again what timed out, send what is new.

        ``full_only``: a round for an acknowledgement that just came: only full batches go (a
        backlog's), while the tail of live polling waits for the next regular round, so that
        live data still leaves in batches of ``batch_interval_s``."""
        while True:
            try:
                ack = self.uplink.stored.get_nowait()
            except queue.Empty:
                break
            rng = (ack.first, ack.last)
            confirmed = self.store.confirm(*rng)
            self.entries_confirmed += confirmed
            metrics.ACKNOWLEDGED.inc(confirmed)
            self.inflight.pop(rng, None)
            self._sizes.pop(rng, None)
            sent_ms = self._sent_ms.pop(rng, None)
            if sent_ms is not None:
                self._measured(clock_offset(sent_ms, ack.platform_ms, ack.received_ms))
        if not self.uplink.connected.is_set():
            return
        if self.uplink.connections != self._connections:
            # A new connection: what was in flight may be anywhere; send it again now.
            self._connections = self.uplink.connections
            self.inflight = dict.fromkeys(self.inflight, now)
        self._refill(now)
        for rng, due in sorted(self.inflight.items()):
            if due > now:
                continue
            entries = self.store.between(*rng)
            if not entries:  # pushed out by the byte limit meanwhile
                del self.inflight[rng]
                self._sizes.pop(rng, None)
                self._sent_ms.pop(rng, None)
                continue
            if not self._send(rng, entries, now):
                return
            # Which send an acknowledgement answers is unknown now: no clock from this range.
            self._sent_ms.pop(rng, None)
            self.batches_resent += 1
        while len(self.inflight) < self.window:
            fetched = self.store.oldest(self.cursor, self.batch_max_bytes)
            if not fetched:
                return
            entries = fetched[: fit(fetched, self.batch_max_bytes)]
            if full_only and not self._full(entries, fetched):
                return
            if self.inflight and self.bytes_in_flight + encoded_size(entries) > self.window_bytes:
                return
            rng = (entries[0].seq, entries[-1].seq)
            if not self._send(rng, entries, now):
                return
            self.cursor = rng[1]
            self.batches_sent += 1

    def _full(self, entries: list[Entry], fetched: list[Entry]) -> bool:
        """Whether the batch of ``entries`` is as large as a batch gets: the next entry would
        not fit."""
        return len(entries) < len(fetched) or bool(self.store.oldest(entries[-1].seq, 1))

    def _measured(self, c: ClockOffset) -> None:
        self._clocks = [*self._clocks[-(CLOCK_SAMPLES - 1) :], c]
        self.clock = min(self._clocks, key=lambda x: x.rtt_ms)

    def _refill(self, now: float) -> None:
        elapsed = 0.0 if self._budget_at is None else max(0.0, now - self._budget_at)
        self.budget_kib = min(self.kib_per_minute, self.budget_kib + elapsed * self.kib_per_s)
        self._budget_at = now

    def _send(self, rng: tuple[int, int], entries: list[Entry], now: float) -> bool:
        by: dict[Kind, list[bytes]] = {Kind.SAMPLE: [], Kind.EVENT: [], Kind.STATUS: []}
        for e in entries:
            by[e.kind].append(e.body)
        payload = join_batch(rng, by[Kind.SAMPLE], by[Kind.EVENT], by[Kind.STATUS])
        cost = -(-len(payload) // 1024)
        if cost > self.budget_kib:
            return False
        if not self.uplink.publish(self.topic, payload):
            return False
        self.budget_kib -= cost
        metrics.PUBLISHED.inc(len(entries))
        self.inflight[rng] = now + self.ack_timeout_s
        self._sizes[rng] = len(payload)
        self.largest_batch = max(self.largest_batch, len(payload))
        self._sent_ms.setdefault(rng, time.time_ns() // 1_000_000)
        return True
