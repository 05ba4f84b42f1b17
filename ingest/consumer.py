"""Ingest: the broker-facing loop. Receives, batches, commits, and only then acknowledges.

paho's network thread only checks each message against its sender's rate limit
(``ingest/flood.py``: a message beyond it will be a ``rate_limited`` reject) and appends it to a
buffer. A writer thread takes the buffer every ``flush_seconds`` (or sooner when it is large),
decodes it, commits it in one transaction and then sends the PUBACKs. With a persistent session, a worker killed at any moment leaves its
unacknowledged messages with the broker, which delivers them again: nothing is lost, and the
store absorbs what was already committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core import correlation
from core.db import Conn, connect
from core.errors import ServiceUnavailable
from core.feed import EVENTS_TOPIC, READINGS_TOPIC, pack_events, pack_readings
from core.metrics import Heartbeat
from core.mqtt import new_client
from core.registry import load_registry
from core.wire import (
    PREFIX,
    STORED,
    Reason,
    encode_stored,
    gateway_command_topic,
    is_command_topic,
)
from ingest import metrics
from ingest.flood import Allowance, FloodGuard, Kind
from ingest.rows import REJECT_PAYLOAD_LIMIT, Batch, Decoder, Reject, clean_text
from ingest.store import write_batch
from ingest.upkeep import Upkeep

log = logging.getLogger("shouwang.ingest")

FEED_CHUNK_ROWS = 10_000  # 240 KB of packed readings per feed message
FEED_CHUNK_EVENTS = 1_000
FEED_MAX_BYTES = 512 * 1024  # half the broker's packet limit; one event is at most a payload


@dataclass(frozen=True, slots=True)
class IngestConfig:
    client_id: str
    username: str
    password: str
    host: str
    port: int
    share_group: str
    # Several workers share one subscription ($share/<group>/...). One worker subscribes directly:
    # Mosquitto 2.0 does not restore a persistent session's shared subscription after a restart,
    # so what devices send between the restart and the worker's return would have no subscriber.
    shared: bool = False
    flush_seconds: float = 0.2
    flush_bytes: int = 1_000_000
    max_payload_bytes: int = 256 * 1024
    max_future_ms: int = 300_000
    max_age_ms: int = 30 * 86_400_000
    reject_limit_per_minute: int = 120
    # Bytes of payload held in memory (received, not yet committed) before ingest stops reading
    # from the broker; the broker then holds the backlog in the worker's session.
    max_buffer_bytes: int = 64 * 1024 * 1024
    # Messages a minute and at once per device and per gateway (a message counts once per
    # started KiB); beyond them a message is a rate_limited reject (ingest/flood.py). After
    # ingest was not reading from the broker, a sender may send up to catch_up_s more of its
    # rate: the backlog the broker held for ingest.
    device_messages_per_minute: float = 300.0
    device_burst_messages: float = 600.0
    gateway_messages_per_minute: float = 3000.0
    gateway_burst_messages: float = 6000.0
    catch_up_s: float = 3600.0
    retention_days: float = 400.0
    rollup_retention_days: float | None = None
    events_retention_days: float | None = None
    archive_after_days: float = 2.0
    rejects_retention_days: float = 30.0
    audit_retention_days: int = 1095
    retention_every_s: float = 3600.0


@dataclass(slots=True)
class Stats:
    messages: int = 0
    readings: int = 0
    slow_path_readings: int = 0
    flushes: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    rejects_counted: int = 0  # beyond a device's limit: counted in rejects_counted, not stored


# topic, payload, received_ms, mid, qos, generation, limited: -1, or for a message beyond its
# sender's rate limit its payload size (the payload is then cut to the prefix a reject keeps)
Pending = tuple[str, bytes, int, int, int, int, int]


class Consumer:
    def __init__(
        self, cfg: IngestConfig, database_url: str, heartbeat: Heartbeat | None = None
    ) -> None:
        self.cfg = cfg
        self.database_url = database_url
        # progressed: readings committed; pending: messages received, not committed yet
        self.heartbeat = heartbeat or Heartbeat("ingest")
        self._held_messages = 0  # taken by a flush, not committed yet
        self._size_at = float("-inf")  # when the database's size was last read
        self._stop = threading.Event()
        self.conn: Conn = self._connect_until_up()
        conn = self.conn
        self.decoder = Decoder(
            load_registry(conn),
            max_payload_bytes=cfg.max_payload_bytes,
            max_future_ms=cfg.max_future_ms,
            max_age_ms=cfg.max_age_ms,
            reject_limit_per_minute=cfg.reject_limit_per_minute,
        )
        self.stats = Stats()
        device = Allowance(cfg.device_messages_per_minute, cfg.device_burst_messages)
        gateway = Allowance(cfg.gateway_messages_per_minute, cfg.gateway_burst_messages)
        # Used by paho's network thread only (on_message, on_connect, on_disconnect).
        self.flood = FloodGuard(device, gateway, catch_up_s=cfg.catch_up_s, now=time.monotonic())
        self._limit_detail = {
            "d": device.describe("the device"),
            "g": gateway.describe("the gateway"),
        }
        self._not_reading_since: float | None = None  # disconnected from the broker since
        self._buffer: list[Pending] = []
        self._buffer_bytes = 0
        self._held_bytes = 0  # taken by a flush, not committed yet
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self.paused_reading = 0  # times the buffer was full and reading from the broker paused
        self._wake = threading.Event()
        self._generation = 0
        self._connected = threading.Event()  # connected and subscribed (SUBACK received)
        self._subscribe_mid: int | None = None
        self._registry_loaded_at = time.monotonic()
        self._uids: dict[int, str] = {}  # device id -> uid, for the events' log lines
        self._uids_of: object = None  # the registry self._uids was made from
        self.upkeep = Upkeep(cfg, database_url)  # retention and archiving, on their own thread
        self.client, self._props = new_client(
            cfg.client_id, cfg.username, cfg.password, persistent=True, manual_ack=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    # --- paho's network thread ---------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        with self._lock:
            self._generation += 1
        if self._not_reading_since is not None:  # the broker held what came meanwhile
            now = time.monotonic()
            self.flood.not_reading(now - self._not_reading_since, now)
            self._not_reading_since = None
        shared, plain = f"$share/{self.cfg.share_group}/{PREFIX}/#", f"{PREFIX}/#"
        topic, other = (shared, plain) if self.cfg.shared else (plain, shared)
        # Idempotent; also repairs a session that lost it. Retained messages (devices' last
        # status) are not sent again on subscribing: ingest stored them when they were published.
        _rc, self._subscribe_mid = client.subscribe(
            topic, options=SubscribeOptions(qos=1, retainHandling=2)
        )
        client.unsubscribe(other)  # a session kept from a run in the other mode
        log.info("connected as %s (session present: %s)", self.cfg.client_id, flags.session_present)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, mid: int, codes: list[ReasonCode], _p: object
    ) -> None:
        """Ready once the broker has the subscription (its SUBACK): on a first start, what is
        published before that is not routed to this session at all."""
        if mid != self._subscribe_mid:
            return
        if any(rc.is_failure for rc in codes):
            log.error("the broker refused the subscription: %s", ", ".join(map(str, codes)))
            return
        self._connected.set()
        metrics.BROKER_CONNECTED.set(1)

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self._connected.clear()
        metrics.BROKER_CONNECTED.set(0)
        if self._not_reading_since is None:
            self._not_reading_since = time.monotonic()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); paho reconnects", rc)

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        topic = msg._topic.decode("utf-8", "replace")
        if is_command_topic(topic):  # the platform's own messages to gateways (only it may write)
            if msg.qos:
                client.ack(msg.mid, msg.qos)
            return
        payload = bytes(msg.payload)
        limited = -1
        if not self._admit(topic, len(payload)):
            limited, payload = len(payload), payload[:REJECT_PAYLOAD_LIMIT]
        item = (
            topic,
            payload,
            time.time_ns() // 1_000_000,
            msg.mid,
            msg.qos,
            self._generation,
            limited,
        )
        with self._space:
            if self._buffer_bytes + self._held_bytes >= self.cfg.max_buffer_bytes:
                paused = time.monotonic()
                self.paused_reading += 1
                log.warning(
                    "%d bytes wait for the database: not reading from the broker until it takes"
                    " them (the broker holds the rest)",
                    self._buffer_bytes + self._held_bytes,
                )
                self._wake.set()
                while (
                    self._buffer_bytes + self._held_bytes >= self.cfg.max_buffer_bytes
                    and not self._stop.is_set()
                ):
                    self._space.wait(0.5)
                now = time.monotonic()
                self.flood.not_reading(now - paused, now)  # the broker held what came meanwhile
            self._buffer.append(item)
            self._buffer_bytes += len(payload)
            full = self._buffer_bytes >= self.cfg.flush_bytes
            self.heartbeat.pending(len(self._buffer) + self._held_messages)
        if full:
            self._wake.set()

    def _admit(self, topic: str, size: int) -> bool:
        """Whether a message is within its sender's rate limit. Only registered senders are
        limited (and take memory): anything else is rejected when decoded, and its rejects are
        limited per minute."""
        parts = topic.split("/")
        if len(parts) != 5:
            return True
        kind, uid = parts[2], parts[3]
        registry = self.decoder.registry  # replaced, never changed, by the writer thread
        if kind == "d" and uid in registry.devices:
            return self.flood.admit("d", uid, size, time.monotonic())
        if kind == "g" and uid in registry.gateways:
            return self.flood.admit("g", uid, size, time.monotonic())
        return True

    # --- writer thread -----------------------------------------------------------------

    def run(self, *, stop_after_s: float | None = None) -> None:
        self.client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=30, clean_start=False, properties=self._props
        )
        self.client.loop_start()
        self.upkeep.start()
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        try:
            while not self._stop.is_set():
                self.heartbeat.beat()
                self._wake.wait(self.cfg.flush_seconds)
                self._wake.clear()
                self.flush()
                self._maybe_database_size()
                if deadline is not None and time.monotonic() > deadline:
                    break
        finally:
            self.upkeep.stop()
            self.flush()
            self.client.disconnect()
            self.client.loop_stop()
            self.conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._space:
            self._space.notify_all()

    def flush(self) -> None:
        with self._lock:
            items, held = self._buffer, self._buffer_bytes
            self._buffer, self._buffer_bytes = [], 0
            self._held_bytes += held
            self._held_messages += len(items)
        if not items:
            return
        try:
            started = time.monotonic()
            self._commit(items)
            metrics.FLUSH_SECONDS.observe(time.monotonic() - started)
        finally:
            with self._space:
                self._held_bytes -= held
                self._held_messages -= len(items)
                self.heartbeat.pending(len(self._buffer) + self._held_messages)
                self._space.notify_all()

    def _commit(self, items: list[Pending]) -> None:
        batch = self._decode(items)
        attempt = 0
        while True:
            try:
                slow = write_batch(self.conn, batch)
                break
            except psycopg.OperationalError as e:
                if self._stop.is_set():
                    log.error(
                        "stopping with %d messages not stored (%s); nothing was acknowledged, so"
                        " the broker delivers them again",
                        len(items),
                        e,
                    )
                    return
                wait = min(15.0, 2.0**attempt)
                attempt += 1
                log.error(
                    "DATABASE UNAVAILABLE (%s): %d messages wait, nothing acknowledged;"
                    " attempt %d, next in %.0f s",
                    e,
                    len(items),
                    attempt,
                    wait,
                )
                self._stop.wait(wait)
                self.heartbeat.beat()  # waiting for the database: pending, nothing committed
                self._reconnect_db()
            except Exception as e:  # the data itself was refused: find the culprit, keep the rest
                log.error(
                    "database refused a batch of %d messages (%s); splitting it", len(items), e
                )
                batch, slow = self._write_one_by_one(items)
                break
        self._feed(batch)
        self._log_events(batch)
        self._acknowledge_stored(batch)
        with self._lock:
            generation = self._generation
        for _topic, _payload, _rt, mid, qos, gen, _limited in items:
            if qos and gen == generation:
                self.client.ack(mid, qos)
        st = self.stats
        st.messages += len(items)
        st.readings += len(batch)
        st.slow_path_readings += slow
        st.flushes += 1
        for r in batch.rejects:
            st.rejects[r.reason] += 1
        st.rejects_counted += batch.suppressed.total()
        self._count(items, batch)

    def _count(self, items: list[Pending], batch: Batch) -> None:
        """The committed flush in the metrics and the heartbeat."""
        kinds: Counter[str] = Counter(metrics.message_kind(item[0]) for item in items)
        for kind, n in kinds.items():
            metrics.MESSAGES.labels(kind).inc(n)
        metrics.READINGS.inc(len(batch))
        metrics.FLUSH_ROWS.observe(len(batch))
        for r in batch.rejects:
            metrics.REJECTS.labels(r.reason).inc()
        for (_minute, _who, reason), n in batch.suppressed.items():
            metrics.REJECTS.labels(reason).inc(n)
        self.heartbeat.progressed(len(batch))

    def _maybe_database_size(self) -> None:
        """The database's size in the metrics, at most once a minute."""
        now = time.monotonic()
        if now - self._size_at < metrics.DATABASE_SIZE_EVERY_S:
            return
        self._size_at = now
        try:
            row = self.conn.execute("SELECT pg_database_size(current_database())").fetchone()
        except psycopg.Error as e:
            log.warning("cannot read the database's size: %s", e)
            return
        if row is not None:
            metrics.DATABASE_SIZE.set(float(row[0]))

    def _feed(self, batch: Batch) -> None:
        """Hand what was just committed to analytics (QoS 1, after the commit), in messages well
        under the broker's packet limit."""
        n = len(batch)
        for lo in range(0, n, FEED_CHUNK_ROWS):
            hi = min(n, lo + FEED_CHUNK_ROWS)
            payload = pack_readings(
                batch.ts_ms[lo:hi], batch.device[lo:hi], batch.metric[lo:hi], batch.value[lo:hi]
            )
            self.client.publish(READINGS_TOPIC, payload, qos=1)
        for lo in range(0, max(len(batch.events), len(batch.statuses)), FEED_CHUNK_EVENTS):
            hi = lo + FEED_CHUNK_EVENTS
            for payload in _events_under(batch.events[lo:hi], batch.statuses[lo:hi]):
                self.client.publish(EVENTS_TOPIC, payload, qos=1)

    def _log_events(self, batch: Batch) -> None:
        """One line per event just committed (events are rare; readings are never logged one
        by one), with the correlation id of the message that carried it."""
        if not batch.events:
            return
        registry = self.decoder.registry
        if self._uids_of is not registry:
            self._uids = {ref.id: uid for uid, ref in registry.devices.items()}
            self._uids_of = registry
        for ts_ms, device_id, code, active, _detail in batch.events:
            uid = self._uids.get(device_id, f"#{device_id}")
            log.info(
                "event stored: %s %s %s",
                uid,
                code,
                "raised" if active else "cleared",
                extra={
                    "cid": correlation.correlation_id(uid, ts_ms),
                    "device": uid,
                    "code": code,
                    "active": active,
                    "ts_ms": ts_ms,
                },
            )

    def _acknowledge_stored(self, batch: Batch) -> None:
        """Tell each gateway which of its batches are now committed (QoS 1, after the commit):
        it forgets them only then, and sends again whatever it hears nothing about."""
        ranges: dict[str, list[tuple[int, int]]] = {}
        for gateway, first, last in batch.stored:
            ranges.setdefault(gateway, []).append((first, last))
        now = time.time_ns() // 1_000_000
        for gateway, done in ranges.items():
            for lo in range(0, len(done), 1000):  # 1,000 ranges: ~30 KB, far under any limit
                payload = encode_stored(done[lo : lo + 1000], now)
                self.client.publish(gateway_command_topic(gateway, STORED), payload, qos=1)

    def _write_one_by_one(self, items: list[Pending]) -> tuple[Batch, int]:
        """Write each message on its own; one the database refuses becomes an ``internal`` reject
        (and if even that is refused, a reject without its payload). Returns what was committed."""
        done, slow = Batch(), 0
        for item in items:
            topic, payload, received_ms, *_ = item
            one = Batch()
            self._decode_one(item, one)
            while True:
                try:
                    slow += write_batch(self.conn, one)
                    _merge(done, one)
                    break
                except psycopg.OperationalError as e:
                    log.error("database write failed (%s); retrying in 1 s", e)
                    time.sleep(1.0)
                    self._reconnect_db()
                except Exception as e:
                    if one.rejects and not len(one) and not one.events and not one.statuses:
                        log.error("the database refuses even the reject of %s: %s", topic, e)
                        one = Batch(messages=1)  # counted, so the message is still accounted for
                        minute = received_ms - received_ms % 60_000
                        one.suppressed[(minute, clean_text(topic), Reason.INTERNAL)] = 1
                        continue
                    log.error("the database refused the message on %s: %s", topic, e)
                    detail = f"the database refused it: {type(e).__name__}: {e}"
                    one = Batch(messages=1)
                    self.decoder.reject(
                        one, Reject.of(received_ms, topic, None, Reason.INTERNAL, detail, payload)
                    )
        return done, slow

    def _decode(self, items: list[Pending]) -> Batch:
        batch = Batch()
        for item in items:
            self._decode_one(item, batch)
        if self.decoder.unknown_devices and time.monotonic() - self._registry_loaded_at > 1.0:
            # Devices registered since the last load: look again before rejecting them.
            self.decoder.unknown_devices.clear()
            self._registry_loaded_at = time.monotonic()
            try:
                self.decoder.registry = load_registry(self.conn)
            except psycopg.OperationalError as e:  # the write below waits for the database
                log.error("cannot reload the registry (%s); using the one loaded before", e)
                return batch
            batch = Batch()
            for item in items:
                self._decode_one(item, batch)
        self.decoder.unknown_devices.clear()
        return batch

    def _decode_one(self, item: Pending, batch: Batch) -> None:
        topic, payload, received_ms, _mid, _qos, _gen, limited = item
        if limited < 0:
            self.decoder.decode(topic, payload, received_ms, batch)
        else:  # decided once, on receipt: decoding again (registry reload, split) keeps it
            kind: Kind = "g" if topic.split("/")[2] == "g" else "d"
            detail = self._limit_detail[kind]
            self.decoder.rate_limited(topic, payload, limited, received_ms, batch, detail)

    def _connect_until_up(self) -> Conn:
        """A database connection; while the database cannot be reached, keep trying with backoff
        and say so (a stage that starts during an outage waits for the database, it does not exit)."""
        attempt = 0
        while True:
            try:
                return connect(
                    self.database_url, autocommit=True, application_name=self.cfg.client_id
                )
            except ServiceUnavailable as e:
                if self._stop.is_set():
                    raise
                wait = min(15.0, 2.0**attempt)
                attempt += 1
                log.error("DATABASE UNAVAILABLE at start (%s); retrying in %.0f s", e, wait)
                self._stop.wait(wait)

    def _reconnect_db(self) -> None:
        try:
            self.conn.close()
            self.conn = connect(
                self.database_url, autocommit=True, application_name=self.cfg.client_id
            )
        except ServiceUnavailable as e:
            log.error("database still unreachable: %s", e)


def _events_under(
    events: list[tuple[int, int, str, bool, dict[str, object]]],
    statuses: list[tuple[int, int, bool, str]],
    limit: int = FEED_MAX_BYTES,
) -> list[bytes]:
    """Feed messages for these events and statuses, each under ``limit`` bytes (halved until
    they fit: events carry details of up to a payload's size)."""
    payload = pack_events(events, statuses)
    if len(payload) <= limit or len(events) + len(statuses) <= 1:
        return [payload]
    e, s = len(events) // 2, len(statuses) // 2
    return _events_under(events[:e], statuses[:s], limit) + _events_under(
        events[e:], statuses[s:], limit
    )


def _merge(into: Batch, one: Batch) -> None:
    into.ts_ms.extend(one.ts_ms)
    into.device.extend(one.device)
    into.metric.extend(one.metric)
    into.value.extend(one.value)
    into.events.extend(one.events)
    into.statuses.extend(one.statuses)
    into.rejects.extend(one.rejects)
    into.suppressed.update(one.suppressed)
    into.messages += one.messages
    into.stored.extend(one.stored)
    into.gateway_states.extend(one.gateway_states)
    into.config_answers.extend(one.config_answers)


def retire_session(cfg: IngestConfig) -> None:
    """Remove ``cfg.client_id``'s persistent session from the broker.

    A worker id that will not come back must be retired: the broker keeps handing its share of
    the subscription to the session, holding the messages until it returns.
    """
    client, props = new_client(cfg.client_id, cfg.username, cfg.password, persistent=False)
    done = threading.Event()
    client.on_connect = lambda *_: done.set()
    client.connect(cfg.host, cfg.port, clean_start=True, properties=props)
    client.loop_start()
    try:
        if not done.wait(10):
            raise TimeoutError(f"no CONNACK from {cfg.host}:{cfg.port} within 10 s")
    finally:
        client.disconnect()
        client.loop_stop()
