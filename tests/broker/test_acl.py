"""A device publishes only under its own topics; credentials change without a broker restart."""

from __future__ import annotations

import time

from broker.accounts import issue, revoke
from core.db import Conn
from core.wire import Channel, device_topic, encode_sample, gateway_topic
from simulators.county import County
from tests.conftest import ADMIN_PASSWORD, Broker, sync_broker
from tests.mqtt_helpers import peer

NOT_AUTHORIZED = 135


def two_elevators(county: County) -> tuple[str, str]:
    els = [d.uid for d in county.devices() if d.device_class == "elevator"]
    return els[0], els[1]


def test_device_cannot_publish_under_another_devices_topics(
    broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    a, b = two_elevators(c)
    watcher = peer(broker.host, broker.port, "svc-admin", ADMIN_PASSWORD, subscribe="sw/v1/#")
    dev = peer(broker.host, broker.port, a, secrets[a])
    try:
        payload = encode_sample(int(time.time() * 1000), {"floor": 3})
        own = dev.publish(device_topic(a, Channel.TELEMETRY), payload)
        forged = [
            dev.publish(device_topic(b, Channel.TELEMETRY), payload),
            dev.publish(device_topic(b, Channel.STATUS), b'{"online": false}'),
            dev.publish(gateway_topic(c.communities[0].gateway, Channel.BATCH), b'{"samples": []}'),
        ]
        acks = dev.wait_acks([own, *forged[:3]])
        assert not acks[own].is_failure
        assert all(acks[m].value == NOT_AUTHORIZED for m in forged[:3]), acks
        time.sleep(0.5)
        topics = {t for t, _ in watcher.received if not t.endswith("/status")}
        assert topics == {device_topic(a, Channel.TELEMETRY)}
    finally:
        dev.close()
        watcher.close()


def test_wrong_password_and_anonymous_are_refused(
    broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    a, _ = two_elevators(county[0])
    bad = peer(broker.host, broker.port, a, "not-the-password")
    assert bad.connect_rc is not None and bad.connect_rc.is_failure
    bad.close()


def test_rotate_and_revoke_take_effect_without_restart(
    db: Conn, broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    _, b = two_elevators(c)
    pid_before = broker.proc.pid
    new_password = issue(db, b)
    sync_broker(db, broker)
    old = peer(broker.host, broker.port, b, secrets[b])
    assert old.connect_rc is not None and old.connect_rc.is_failure, "old password still accepted"
    old.close()
    fresh = peer(broker.host, broker.port, b, new_password)
    assert fresh.connect_rc is not None and not fresh.connect_rc.is_failure
    ok = fresh.publish(
        device_topic(b, Channel.TELEMETRY), encode_sample(int(time.time() * 1000), {"floor": 1})
    )
    assert not fresh.wait_acks([ok])[ok].is_failure

    watcher = peer(
        broker.host,
        broker.port,
        "svc-admin",
        ADMIN_PASSWORD,
        subscribe=device_topic(b, Channel.TELEMETRY),
    )
    revoke(db, b)
    sync_broker(db, broker)
    # The broker drops the revoked device's live connection on reload; what it sends is lost.
    fresh.publish(
        device_topic(b, Channel.TELEMETRY), encode_sample(int(time.time() * 1000), {"floor": 2})
    )
    time.sleep(1.0)
    assert watcher.received == [], "a revoked device still publishes"
    assert not fresh.client.is_connected()
    fresh.close()
    watcher.close()
    again = peer(broker.host, broker.port, b, new_password)
    assert again.connect_rc is not None and again.connect_rc.is_failure
    again.close()
    assert broker.proc.poll() is None and broker.proc.pid == pid_before

    secrets[b] = issue(db, b)  # leave the device usable for later tests
    sync_broker(db, broker)
