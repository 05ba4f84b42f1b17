"""Real MQTT peers for tests: a subscriber that collects, and a device that publishes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from core.mqtt import Tls, new_client


@dataclass
class Peer:
    client: mqtt.Client
    received: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, ReasonCode] = field(default_factory=dict)
    connect_rc: ReasonCode | None = None
    connected: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        info = self.client.publish(topic, payload, qos=qos)
        return int(info.mid)

    def wait_acks(self, mids: list[int], timeout: float = 10.0) -> dict[int, ReasonCode]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(m in self.pubacks for m in mids):
                    return {m: self.pubacks[m] for m in mids}
            time.sleep(0.01)
        raise AssertionError(f"no PUBACK for {[m for m in mids if m not in self.pubacks]}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def peer(
    host: str,
    port: int,
    username: str,
    password: str,
    *,
    client_id: str = "",
    subscribe: str | None = None,
    wait: bool = True,
    tls: Tls | None = None,
) -> Peer:
    client, props = new_client(
        client_id or f"test-{username}-{time.monotonic_ns()}", username, password, tls=tls
    )
    p = Peer(client)

    def on_connect(c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        p.connect_rc = rc
        if not rc.is_failure and subscribe:
            c.subscribe(subscribe, qos=1)
        p.connected.set()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with p.lock:
            p.received.append((msg.topic, msg.payload))

    def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with p.lock:
            p.pubacks[mid] = rc

    client.on_connect = on_connect
    client.on_message = on_message
    client.on_publish = on_publish
    client.connect(host, port, properties=props)
    client.loop_start()
    if wait:
        assert p.connected.wait(10), "no CONNACK within 10 s"
        if subscribe:
            time.sleep(0.2)
    return p
