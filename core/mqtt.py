"""Shared: building paho-mqtt clients the way every stage connects (MQTT 5, one settings shape)."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def new_client(
    client_id: str,
    username: str,
    password: str,
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    receive_maximum: int = 65535,
    session_expiry_s: int = 7 * 86400,
) -> tuple[mqtt.Client, Properties]:
    """A client and the CONNECT properties to pass to ``connect``.

    ``persistent`` keeps the session (subscriptions and unacknowledged QoS 1 messages) on the
    broker across disconnects, for ``session_expiry_s``.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(username, password)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = receive_maximum
    if persistent:
        props.SessionExpiryInterval = session_expiry_s
    return client, props
