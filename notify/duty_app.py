"""Notify: the duty-app channel's connection to the broker. Each person's notification is
published at QoS 1 on that person's own topic (``core.wire.duty_topic``); it counts as accepted
once the broker acknowledged it (PUBACK). The app signs in as ``duty-<person id>`` and may read
only its own topic; it keeps a persistent session, so what arrives while it is offline waits
for it.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from core.mqtt import new_client


class DutyApps:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        *,
        client_id: str,
        timeout_s: float = 10.0,
    ) -> None:
        self.timeout_s = timeout_s
        self._connected = threading.Event()
        self.client, props = new_client(client_id, username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self.client.connect_async(host, port, keepalive=30, properties=props)
        self.client.loop_start()

    def _on_connect(
        self, _c: mqtt.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()

    def publish(self, topic: str, message: bytes) -> tuple[bool, str]:
        """(accepted, error) for one message."""
        if not self._connected.wait(self.timeout_s):
            return False, "not connected to the broker"
        info = self.client.publish(topic, message, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False, f"publish failed: {mqtt.error_string(info.rc)}"
        try:
            info.wait_for_publish(self.timeout_s)
        except (RuntimeError, ValueError) as e:
            return False, f"publish failed: {e}"
        if not info.is_published():
            return False, "the broker did not acknowledge in time"
        return True, ""

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
