"""Broker: the platform's commands to site gateways (wire contract revision 5), its side.

A site config pushed to a gateway is checked here first, with the gateway's own validation
(``sites/config.py``, as ``shouwang gateway check``) and against the networks the gateway's
registration declares (``gateways.networks``); it is then recorded in ``gateway_configs`` with
the next version of that gateway and sent on ``sw/v1/g/{gateway}/cmd/config``. The gateway
checks it again, applies it or refuses it, and answers on ``sw/v1/g/{gateway}/config``, which
ingest records against the version (``ingest/store.py``). A state request (``cmd/state``) asks the gateway to report
its state at once; its answer is its status, stored in ``gateway_state``.

Commands go out with the platform's admin broker account, which the command line and the API
hold (``SHOUWANG_MQTT_ADMIN_PASSWORD``). Used by ``shouwang gateway push-config`` and
``api/routes/gateways.py``.
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from core.db import Conn
from core.errors import RegistryError, ServiceUnavailable, ShouwangError
from core.located_yaml import ProblemsError
from core.mqtt import Tls, new_client, tls_of
from core.settings import Settings
from core.wire import (
    CONFIG,
    STATE,
    encode_config_push,
    encode_state_request,
    gateway_command_topic,
)
from sites.config import parse_site_config
from sites.networks import outside, parse_network

MAX_PUSH_BYTES = 1024 * 1024  # a config for thousands of devices; under the payload limit


class PushRefused(ShouwangError):
    """A config the platform will not send; ``errors`` holds every problem."""

    def __init__(self, gateway: str, errors: list[str]) -> None:
        super().__init__(f"the config for {gateway} was not pushed: " + "; ".join(errors))
        self.gateway = gateway
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Registration:
    id: int
    uid: str
    networks: list[str]
    firm_id: int | None


@dataclass(frozen=True, slots=True)
class Pushed:
    gateway: str
    version: int
    networks: list[str]
    config: str
    pushed_at: datetime


@dataclass(frozen=True, slots=True)
class BrokerTarget:
    """Where commands go, and as whom."""

    host: str
    port: int
    username: str
    password: str
    tls: Tls | None = None
    timeout_s: float = 10.0


def target_of(s: Settings) -> BrokerTarget:
    """The platform's broker and its admin account, as the settings name them."""
    return BrokerTarget(
        s.mqtt_host,
        s.mqtt_port,
        s.mqtt_admin_username,
        s.mqtt_admin_password.get_secret_value(),
        tls_of(s),
    )


def registration(conn: Conn, uid: str, *, firm_id: int | None = None) -> Registration | None:
    """The gateway ``uid`` as registered; with ``firm_id``, only when that firm runs its
    community (None otherwise, as for a gateway that does not exist)."""
    row = conn.execute(
        "SELECT g.id, g.uid, g.networks, c.firm_id FROM gateways g"
        " JOIN communities c ON c.id = g.community_id"
        " WHERE g.uid = %s AND (%s::int IS NULL OR c.firm_id = %s::int)",
        (uid, firm_id, firm_id),
    ).fetchone()
    return None if row is None else Registration(int(row[0]), row[1], list(row[2]), row[3])


def declare_networks(conn: Conn, uid: str, networks: list[str]) -> list[str]:
    """Set the networks gateway ``uid``'s site declares; the normalised list. ValueError names
    a network that is not one; RegistryError for an unknown gateway."""
    normal = [str(parse_network(n.strip())) for n in networks]
    row = conn.execute(
        "UPDATE gateways SET networks = %s WHERE uid = %s RETURNING id", (normal, uid)
    ).fetchone()
    if row is None:
        raise RegistryError(f"there is no gateway {uid} in the registry")
    return normal


def check_push(reg: Registration, data: bytes) -> list[str]:
    """Every problem of ``data`` as a site config for ``reg``: the gateway's own validation (with
    the shipped profiles: a site's own profiles live on its box), this gateway's uid, and the
    registration's networks."""
    if not reg.networks:
        return [
            f"no networks are declared for {reg.uid}: declare its site's networks first"
            f" ('shouwang gateway networks {reg.uid} 192.168.10.0/24 /dev/ttyUSB0')"
        ]
    if len(data) > MAX_PUSH_BYTES:
        return [f"the config is over {MAX_PUSH_BYTES} bytes"]
    with tempfile.TemporaryDirectory() as nowhere:  # a profiles_dir names the box's folder
        try:
            cfg = parse_site_config(data, f"config for {reg.uid}", Path(nowhere))
        except ProblemsError as e:
            return [str(p) for p in e.errors]
    errors = []
    if cfg.gateway != reg.uid:
        errors.append(f"gateway: the config is for {cfg.gateway}, not {reg.uid}")
    errors += outside(reg.networks, cfg.networks, [(d.uid, d.link) for d in cfg.devices])
    return errors


def record_push(conn: Conn, reg: Registration, data: bytes, pushed_by: str) -> Pushed:
    """Check ``data`` and record it as the gateway's next config version (in the caller's
    transaction); :class:`PushRefused` with every problem."""
    errors = check_push(reg, data)
    if errors:
        raise PushRefused(reg.uid, errors)
    text = data.decode("utf-8-sig")
    conn.execute("SELECT 1 FROM gateways WHERE id = %s FOR UPDATE", (reg.id,))
    row = conn.execute(
        "INSERT INTO gateway_configs (gateway_id, version, config, networks, pushed_by)"
        " SELECT %(g)s, coalesce(max(version), 0) + 1, %(c)s, %(n)s, %(by)s"
        " FROM gateway_configs WHERE gateway_id = %(g)s RETURNING version, pushed_at",
        {"g": reg.id, "c": text, "n": reg.networks, "by": pushed_by},
    ).fetchone()
    assert row is not None
    return Pushed(reg.uid, int(row[0]), reg.networks, text, row[1])


def send_push(target: BrokerTarget, pushed: Pushed) -> None:
    payload = encode_config_push(pushed.version, pushed.config, pushed.networks, _now_ms())
    send(target, gateway_command_topic(pushed.gateway, CONFIG), payload)


def send_state_request(target: BrokerTarget, gateway: str) -> int:
    """Ask ``gateway`` for its state; the request's time (epoch ms)."""
    now = _now_ms()
    send(target, gateway_command_topic(gateway, STATE), encode_state_request(now))
    return now


def configs(conn: Conn, gateway_id: int, limit: int = 20) -> list[dict[str, Any]]:
    """The gateway's pushed configs, newest first, with their answers."""
    cur = conn.execute(
        "SELECT version, pushed_at, pushed_by, state, errors, answered_at, networks"
        " FROM gateway_configs WHERE gateway_id = %s ORDER BY version DESC LIMIT %s",
        (gateway_id, limit),
    )
    assert cur.description is not None
    names = [c.name for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def send(target: BrokerTarget, topic: str, payload: bytes) -> None:
    """Publish one command at QoS 1 and wait for the broker's acknowledgement (the gateway's
    persistent session keeps it while the gateway is away)."""
    connected = threading.Event()
    refused: list[str] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        if rc.is_failure:
            refused.append(str(rc))
        connected.set()

    client, props = new_client(
        f"cmd-{uuid.uuid4().hex[:12]}", target.username, target.password, tls=target.tls
    )
    client.on_connect = on_connect
    client.connect_async(target.host, target.port, keepalive=30, properties=props)
    client.loop_start()
    try:
        if not connected.wait(target.timeout_s) or refused:
            why = refused[0] if refused else "no answer"
            raise ServiceUnavailable(
                f"cannot send to the broker at {target.host}:{target.port} as"
                f" {target.username} ({why}); check SHOUWANG_MQTT_HOST/PORT and the admin password"
            )
        info = client.publish(topic, payload, qos=1)
        info.wait_for_publish(target.timeout_s)
        if not info.is_published():
            raise ServiceUnavailable(f"the broker did not acknowledge {topic} in time")
    finally:
        client.disconnect()
        client.loop_stop()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
