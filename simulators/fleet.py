"""Simulators: many MQTT connections, one per simulated device or gateway, served by one thread.

Each connection is a paho client with the device's own credentials and last will, so the broker
sees exactly what it would see from real devices. paho's external-loop API (``loop_read``,
``loop_write``, ``loop_misc``) lets a single selector serve thousands of them.

As the wire contract tells devices to, a link that loses its connection reconnects with
exponential backoff and full jitter (so a county reconnecting after a broker restart arrives
spread out, not as one storm), and paho sends again every QoS 1 message the broker had not
acknowledged; what ingest receives twice it stores once.
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import ssl
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from core.errors import ServiceUnavailable
from core.mqtt import Tls, new_client, process_tls
from core.wire import Channel, device_topic, encode_status, gateway_topic

log = logging.getLogger("shouwang.simulator")

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0


def backoff_s(attempt: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(attempt, 16)))


@dataclass(slots=True)
class Link:
    uid: str
    is_gateway: bool
    client: mqtt.Client
    connected: bool = False
    refused: ReasonCode | None = None
    unacked: set[int] = field(default_factory=set)
    sock: socket.socket | None = None
    attempts: int = 0  # reconnection attempts since the connection was lost
    retry_at: float | None = None  # monotonic time of the next reconnection attempt


class Fleet:
    """Connections to the broker at ``host``:``port``, over TLS when ``tls`` says how to check
    it (default: as the process's settings say, ``SHOUWANG_MQTT_TLS``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        qos: int = 1,
        client_prefix: str = "sim",
        tls: Tls | None = None,
    ) -> None:
        self.host, self.port, self.qos, self.client_prefix = host, port, qos, client_prefix
        self.tls = tls if tls is not None else process_tls()
        self.links: dict[str, Link] = {}
        self.sel = selectors.DefaultSelector()
        self.acked = 0
        self.published = 0
        self.reconnects = 0
        self._closing = False
        self._last_misc = 0.0
        self._rng = random.Random(f"{client_prefix}:{host}:{port}")

    def add(self, uid: str, password: str, *, is_gateway: bool = False) -> None:
        client, props = new_client(f"{self.client_prefix}-{uid}", uid, password, tls=self.tls)
        status = (
            gateway_topic(uid, Channel.STATUS) if is_gateway else device_topic(uid, Channel.STATUS)
        )
        client.will_set(status, encode_status(False, reason="connection lost"), qos=1, retain=True)
        link = Link(uid, is_gateway, client)
        client.on_connect = lambda _c, _u, _f, rc, _p: self._on_connect(link, rc)
        client.on_publish = lambda _c, _u, mid, _rc, _p: self._on_publish(link, mid)
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self._on_disconnect(link, rc)
        self.links[uid] = link
        try:
            client.connect(self.host, self.port, keepalive=60, properties=props)
        except OSError as e:
            raise ServiceUnavailable(
                f"cannot reach the broker at {self.host}:{self.port}: {e}"
            ) from e
        self._watch(link)

    def _watch(self, link: Link) -> None:
        sock = link.client.socket()
        if isinstance(sock, socket.socket):
            link.sock = sock
            self.sel.register(sock, selectors.EVENT_READ, link)

    def _unwatch(self, link: Link) -> None:
        if link.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(link.sock)
            link.sock = None

    def _on_disconnect(self, link: Link, rc: ReasonCode) -> None:
        self._unwatch(link)
        was = link.connected
        link.connected = False
        if link.refused is not None or self._closing:
            return
        link.retry_at = time.monotonic() + backoff_s(link.attempts, self._rng)
        link.attempts += 1
        if was:
            log.warning("%s lost its connection (%s); reconnecting", link.uid, rc)

    def _reconnect_due(self) -> None:
        now = time.monotonic()
        for link in self.links.values():
            if link.retry_at is None or link.retry_at > now or link.connected:
                continue
            link.retry_at = None
            try:
                link.client.reconnect()
            except OSError:
                link.retry_at = now + backoff_s(link.attempts, self._rng)
                link.attempts += 1
                continue
            self.reconnects += 1
            self._watch(link)

    def _on_connect(self, link: Link, rc: ReasonCode) -> None:
        if rc.is_failure:
            link.refused = rc
            link.client.disconnect()
            return
        link.connected = True
        link.attempts = 0
        topic = (
            gateway_topic(link.uid, Channel.STATUS)
            if link.is_gateway
            else device_topic(link.uid, Channel.STATUS)
        )
        link.client.publish(topic, encode_status(True, int(time.time() * 1000)), qos=1, retain=True)

    def _on_publish(self, link: Link, mid: int) -> None:
        if mid in link.unacked:
            link.unacked.discard(mid)
            self.acked += 1

    def wait_connected(self, timeout: float = 30.0) -> list[str]:
        """Serve I/O until every link has its CONNACK; return the uids the broker refused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.05)
            pending = [lk for lk in self.links.values() if not lk.connected and lk.refused is None]
            if not pending:
                break
        else:
            raise ServiceUnavailable(
                f"{len(pending)} simulated devices got no CONNACK in {timeout} s"
            )
        return [lk.uid for lk in self.links.values() if lk.refused is not None]

    def publish(self, uid: str, topic: str, payload: bytes) -> None:
        link = self.links[uid]
        info = link.client.publish(topic, payload, qos=self.qos)
        self.published += 1
        if self.qos:
            link.unacked.add(info.mid)
        else:
            self.acked += 1

    def pump(self, timeout: float = 0.0) -> None:
        if not self.sel.get_map():  # every link is down: wait without a busy loop
            time.sleep(timeout)
        for key, _ in self.sel.select(timeout) if self.sel.get_map() else ():
            link: Link = key.data
            link.client.loop_read()
        if self.tls is not None:  # what TLS has already decrypted is not seen by select
            for link in self.links.values():
                if isinstance(link.sock, ssl.SSLSocket) and link.sock.pending():
                    link.client.loop_read()
        for link in self.links.values():
            if link.sock is not None and link.client.want_write():
                link.client.loop_write()
        now = time.monotonic()
        if now - self._last_misc > 1.0:
            self._last_misc = now
            for link in self.links.values():
                if link.sock is not None:
                    link.client.loop_misc()
            self._reconnect_due()

    def outstanding(self) -> int:
        return self.published - self.acked

    def drain(self, timeout: float = 60.0) -> None:
        """Serve I/O until the broker has acknowledged everything published."""
        deadline = time.monotonic() + timeout
        while self.outstanding() and time.monotonic() < deadline:
            self.pump(0.02)
        if self.outstanding():
            raise ServiceUnavailable(
                f"{self.outstanding()} messages unacknowledged after {timeout} s"
            )

    def close(self) -> None:
        self._closing = True
        for link in self.links.values():
            self._unwatch(link)
            topic = (
                gateway_topic(link.uid, Channel.STATUS)
                if link.is_gateway
                else device_topic(link.uid, Channel.STATUS)
            )
            if link.connected:
                link.client.publish(
                    topic,
                    encode_status(False, int(time.time() * 1000), "shutdown"),
                    qos=0,
                    retain=True,
                )
            link.client.disconnect()
        self.sel.close()
