"""Gateway: the one connection upstream (MQTT, paho), and the forwarding of the buffer over it.

The gateway connects with its own credentials (username = its uid), sets its last will (its
status topic, ``{"online": false}``, retained) and keeps a persistent session, so that the
platform's storage acknowledgements (``sw/v1/g/{uid}/cmd/stored``, wire contract revision 4)
published while it was away reach it when it is back.

:class:`Forwarder` is the store-and-forward loop: it sends the buffer oldest first, in batches
under a byte limit that each carry their sequence range, keeps a few batches in flight, forgets a
range only when the platform says it stored it, and sends a range again when no acknowledgement
came in time (a broker that crashed after its PUBACK, a lost connection). Redelivery is harmless:
each entry keeps its original ``ts``, and the platform stores an identity once. A broker's PUBACK
alone never deletes anything.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from core.mqtt import Tls, new_client
from core.wire import (
    COMMAND,
    PREFIX,
    Channel,
    GatewayState,
    decode_stored,
    encode_status,
    gateway_topic,
    join_batch,
)
from gateway.store import Entry, Kind, Store

log = logging.getLogger("shouwang.gateway")

BATCH_OVERHEAD = 64  # bytes of a batch beyond its entries: braces, keys, the sequence range
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
        self.bad_commands = 0
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
        log.info("connected to %s:%d as %s", self.cfg.host, self.cfg.port, self.cfg.gateway)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        if self.connected.is_set():
            log.warning("lost the broker (%s); buffering until it is back", rc)
        self.connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.topic.endswith("/stored"):
            return  # other commands are not defined yet
        received_ms = time.time_ns() // 1_000_000
        try:
            ranges, platform_ms = decode_stored(bytes(msg.payload))
            for first, last in ranges:
                self.stored.put(Ack(first, last, platform_ms, received_ms))
        except ValidationError as e:  # only the platform writes there: a platform bug
            self.bad_commands += 1
            log.error("ignored a storage acknowledgement the gateway cannot read: %s", e)


class Forwarder:
    """Sends the buffer and forgets what the platform stored. Called from one loop."""

    def __init__(
        self,
        store: Store,
        uplink: Uplink,
        *,
        batch_max_bytes: int,
        ack_timeout_s: float = 30.0,
        window: int = 8,
        kib_per_minute: float = 2400.0,
    ) -> None:
        self.store = store
        self.uplink = uplink
        self.topic = gateway_topic(uplink.cfg.gateway, Channel.BATCH)
        self.batch_max_bytes = batch_max_bytes
        self.ack_timeout_s = ack_timeout_s
        self.window = window
        # The platform counts a gateway's messages once per started KiB (wire contract 5.5):
        # send under that rate, with a minute's worth at once.
        self.kib_per_s = kib_per_minute / 60.0
        self.budget_kib = self.kib_per_minute = kib_per_minute
        self._budget_at: float | None = None  # the first tick's clock
        self.inflight: dict[tuple[int, int], float] = {}  # range -> when to send it again
        self._sent_ms: dict[tuple[int, int], int] = {}  # range -> wall clock of its last send
        self.clock: ClockOffset | None = None  # the best (shortest round trip) of recent ones
        self._clocks: list[ClockOffset] = []
        self.cursor = 0  # the last sequence number sent in this run
        self._connections = -1
        self.batches_sent = 0
        self.batches_resent = 0
        self.entries_confirmed = 0

    def tick(self, now: float) -> None:
        """One round: take in acknowledgements, send again what timed out, send what is new."""
        while True:
            try:
                ack = self.uplink.stored.get_nowait()
            except queue.Empty:
                break
            rng = (ack.first, ack.last)
            self.entries_confirmed += self.store.confirm(*rng)
            self.inflight.pop(rng, None)
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
                self._sent_ms.pop(rng, None)
                continue
            if not self._send(rng, entries, now):
                return
            # Which send an acknowledgement answers is unknown now: no clock from this range.
            self._sent_ms.pop(rng, None)
            self.batches_resent += 1
        while len(self.inflight) < self.window:
            entries = self.store.oldest(self.cursor, self.batch_max_bytes - BATCH_OVERHEAD)
            if not entries:
                return
            rng = (entries[0].seq, entries[-1].seq)
            if not self._send(rng, entries, now):
                return
            self.cursor = rng[1]
            self.batches_sent += 1

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
        self.inflight[rng] = now + self.ack_timeout_s
        self._sent_ms.setdefault(rng, time.time_ns() // 1_000_000)
        return True
