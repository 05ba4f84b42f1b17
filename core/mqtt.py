"""Shared: building paho-mqtt clients the way every stage connects (MQTT 5, one settings shape).

Over TLS (``SHOUWANG_MQTT_TLS``) a client checks the broker's certificate against the CA file
(``SHOUWANG_MQTT_CA_FILE``, else the system's trust store) and the host name it connects to, and
speaks TLS 1.2 or later; nothing turns those checks off. The ``shouwang`` command sets the
process's TLS from its settings once (:func:`use_tls`), so every client a stage builds with
:func:`new_client` connects the same way; a caller may also pass ``tls`` itself.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.errors import ConfigError
from core.settings import Settings


@dataclass(frozen=True, slots=True)
class Tls:
    """How a client checks the broker: the CA certificate file (None: the system's trust
    store)."""

    ca_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        return _context(self.ca_file)


def tls_of(s: Settings) -> Tls | None:
    """The TLS a client of these settings uses (None: plain MQTT)."""
    if not s.mqtt_tls:
        return None
    tls = Tls(s.mqtt_ca_file)
    tls.context()  # a missing or broken CA file fails here, before anything connects
    return tls


@functools.cache
def _context(ca_file: Path | None) -> ssl.SSLContext:
    """One context per CA file, shared by every client of the process (a simulated county
    builds 2,000 clients)."""
    if ca_file is not None and not ca_file.is_file():
        raise ConfigError(
            str(ca_file),
            "the broker's CA certificate is not there; set SHOUWANG_MQTT_CA_FILE to the PEM file "
            "of the CA that signed the broker's certificate (docs/operations.md, 'MQTT over TLS')",
        )
    try:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except ssl.SSLError as e:
        raise ConfigError(str(ca_file), f"not a PEM CA certificate: {e}") from e
    except OSError as e:
        raise ConfigError(str(ca_file), f"cannot read it ({e.strerror})") from e
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx  # CERT_REQUIRED and check_hostname, as create_default_context sets them


class _Unset:
    pass


_FROM_PROCESS: Final = _Unset()


@dataclass(slots=True)
class _Process:
    tls: Tls | None = None


_PROCESS: Final = _Process()


def use_tls(tls: Tls | None) -> None:
    """Make every client this process builds without an explicit ``tls`` connect this way."""
    _PROCESS.tls = tls


def process_tls() -> Tls | None:
    return _PROCESS.tls


RECONNECT_MAX_S: Final = 8


def new_client(
    client_id: str,
    username: str,
    password: str,
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    receive_maximum: int = 65535,
    session_expiry_s: int = 7 * 86400,
    tls: Tls | _Unset | None = _FROM_PROCESS,
) -> tuple[mqtt.Client, Properties]:
    """A client and the CONNECT properties to pass to ``connect``.

    ``persistent`` keeps the session (subscriptions and unacknowledged QoS 1 messages) on the
    broker across disconnects, for ``session_expiry_s``. ``tls``: how to check the broker (None:
    plain MQTT); by default the process's (:func:`use_tls`).
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=manual_ack,
    )
    client.username_pw_set(username, password)
    # A stage reconnects 1 s after losing the broker, doubling to at most RECONNECT_MAX_S (paho's
    # default goes to 120 s: after a 90 s broker outage nothing was stored for 37 s more).
    # A handful of stage clients, so no storm; devices back off further, with jitter.
    client.reconnect_delay_set(1, RECONNECT_MAX_S)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    chosen = _PROCESS.tls if isinstance(tls, _Unset) else tls
    if chosen is not None:
        client.tls_set_context(chosen.context())
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = receive_maximum
    if persistent:
        props.SessionExpiryInterval = session_expiry_s
    return client, props
