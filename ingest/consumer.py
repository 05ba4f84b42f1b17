"""Ingest: the broker-facing loop. Receives, batches, commits, and only then acknowledges.

paho's network thread only appends messages to a buffer. A writer thread takes the buffer every
``flush_seconds`` (or sooner when it is large), decodes it, commits it in one transaction and
then sends the PUBACKs. With a persistent session, a worker killed at any moment leaves its
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

from core.db import Conn, connect
from core.errors import ServiceUnavailable
from core.feed import EVENTS_TOPIC, READINGS_TOPIC, pack_events, pack_readings
from core.mqtt import new_client
from core.registry import load_registry
from core.wire import PREFIX, Reason
from ingest.rows import Batch, Decoder, Reject, clean_text
from ingest.store import drop_old_chunks, write_batch

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
    retention_days: float = 400.0
    rejects_retention_days: float = 30.0
    retention_every_s: float = 3600.0


@dataclass(slots=True)
class Stats:
    messages: int = 0
    readings: int = 0
    slow_path_readings: int = 0
    flushes: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    rejects_counted: int = 0  # beyond a device's limit: counted in rejects_counted, not stored


Pending = tuple[str, bytes, int, int, int, int]  # topic, payload, received_ms, mid, qos, generation


class Consumer:
    def __init__(self, cfg: IngestConfig, database_url: str) -> None:
        self.cfg = cfg
        self.database_url = database_url
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
        self._buffer: list[Pending] = []
        self._buffer_bytes = 0
        self._held_bytes = 0  # taken by a flush, not committed yet
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self.paused_reading = 0  # times the buffer was full and reading from the broker paused
        self._wake = threading.Event()
        self._generation = 0
        self._connected = threading.Event()
        self._registry_loaded_at = time.monotonic()
        self._retention_at = 0.0
        self.client, self._props = new_client(
            cfg.client_id, cfg.username, cfg.password, persistent=True, manual_ack=True
        )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # --- paho's network thread ---------------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: mqtt.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        with self._lock:
            self._generation += 1
        shared, plain = f"$share/{self.cfg.share_group}/{PREFIX}/#", f"{PREFIX}/#"
        topic, other = (shared, plain) if self.cfg.shared else (plain, shared)
        # Idempotent; also repairs a session that lost it. Retained messages (devices' last
        # status) are not sent again on subscribing: ingest stored them when they were published.
        client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=2))
        client.unsubscribe(other)  # a session kept from a run in the other mode
        log.info("connected as %s (session present: %s)", self.cfg.client_id, flags.session_present)
        self._connected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object
    ) -> None:
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("disconnected from the broker (%s); paho reconnects", rc)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        item = (
            msg._topic.decode("utf-8", "replace"),
            bytes(msg.payload),
            time.time_ns() // 1_000_000,
            msg.mid,
            msg.qos,
            self._generation,
        )
        with self._space:
            if self._buffer_bytes + self._held_bytes >= self.cfg.max_buffer_bytes:
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
            self._buffer.append(item)
            self._buffer_bytes += len(msg.payload)
            full = self._buffer_bytes >= self.cfg.flush_bytes
        if full:
            self._wake.set()

    # --- writer thread -----------------------------------------------------------------

    def run(self, *, stop_after_s: float | None = None) -> None:
        self.client.connect_async(
            self.cfg.host, self.cfg.port, keepalive=30, clean_start=False, properties=self._props
        )
        self.client.loop_start()
        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        try:
            while not self._stop.is_set():
                self._wake.wait(self.cfg.flush_seconds)
                self._wake.clear()
                self.flush()
                self._maybe_retention()
                if deadline is not None and time.monotonic() > deadline:
                    break
        finally:
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
        if not items:
            return
        try:
            self._commit(items)
        finally:
            with self._space:
                self._held_bytes -= held
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
                self._reconnect_db()
            except Exception as e:  # the data itself was refused: find the culprit, keep the rest
                log.error(
                    "database refused a batch of %d messages (%s); splitting it", len(items), e
                )
                batch, slow = self._write_one_by_one(items)
                break
        self._feed(batch)
        with self._lock:
            generation = self._generation
        for _topic, _payload, _rt, mid, qos, gen in items:
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

    def _write_one_by_one(self, items: list[Pending]) -> tuple[Batch, int]:
        """Write each message on its own; one the database refuses becomes an ``internal`` reject
        (and if even that is refused, a reject without its payload). Returns what was committed."""
        done, slow = Batch(), 0
        for topic, payload, received_ms, *_ in items:
            one = Batch()
            self.decoder.decode(topic, payload, received_ms, one)
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
        for topic, payload, received_ms, *_ in items:
            self.decoder.decode(topic, payload, received_ms, batch)
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
            for topic, payload, received_ms, *_ in items:
                self.decoder.decode(topic, payload, received_ms, batch)
        self.decoder.unknown_devices.clear()
        return batch

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

    def _maybe_retention(self) -> None:
        now = time.monotonic()
        if now - self._retention_at < self.cfg.retention_every_s:
            return
        self._retention_at = now
        try:
            with self.conn.transaction():
                got = self.conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s)", (0x53575245,)
                ).fetchone()
                if got and got[0]:
                    n = drop_old_chunks(
                        self.conn,
                        retention_days=self.cfg.retention_days,
                        rejects_retention_days=self.cfg.rejects_retention_days,
                    )
                    if n:
                        log.info("retention dropped %d chunks", n)
        except psycopg.Error as e:
            log.error("retention failed: %s", e)


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
