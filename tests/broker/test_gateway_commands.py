"""Wire contract revision 5 on the real broker: the platform (its admin account) writes a gateway's
commands and the gateway reads them; the gateway answers on its own ``config`` topic and can
neither write commands nor answer for another gateway; a device can do none of it."""

from __future__ import annotations

import time

from broker.acl import Account, acl_lines
from core.wire import Channel, encode_config_answer, gateway_command_topic, gateway_topic
from simulators.county import County
from tests.conftest import ADMIN_PASSWORD, Broker
from tests.mqtt_helpers import peer

NOT_AUTHORIZED = 135


def test_acl_lines_of_a_gateway() -> None:
    lines = acl_lines(Account("C01-GW", "gateway", "h"), "ingest")
    assert "topic write sw/v1/g/C01-GW/config" in lines
    assert "topic read sw/v1/g/C01-GW/cmd/#" in lines
    assert not any("cmd" in ln for ln in lines if ln.startswith("topic write"))


def test_commands_and_answers_on_the_broker(
    broker: Broker, county: tuple[County, dict[str, str]]
) -> None:
    c, secrets = county
    own, other = c.communities[0].gateway, c.communities[1].gateway
    device = next(d.uid for d in c.devices() if d.device_class == "elevator")
    gw = peer(broker.host, broker.port, own, secrets[own], subscribe=f"sw/v1/g/{own}/cmd/#")
    admin = peer(
        broker.host, broker.port, "svc-admin", ADMIN_PASSWORD, subscribe="sw/v1/g/+/config"
    )
    dev = peer(broker.host, broker.port, device, secrets[device])
    try:
        cmd = admin.publish(gateway_command_topic(own, "state"), b'{"ts": 1}')
        assert not admin.wait_acks([cmd])[cmd].is_failure
        answer = encode_config_answer(1, True, [], 1)
        ok = gw.publish(gateway_topic(own, Channel.CONFIG), answer)
        forged = [
            gw.publish(gateway_command_topic(own, "config"), b"{}"),
            gw.publish(gateway_topic(other, Channel.CONFIG), answer),
            dev.publish(gateway_topic(own, Channel.CONFIG), answer),
            dev.publish(gateway_command_topic(own, "state"), b'{"ts": 1}'),
        ]
        by_gw, by_dev = gw.wait_acks([ok, *forged[:2]]), dev.wait_acks(forged[2:])
        assert not by_gw[ok].is_failure
        refused = [by_gw[m].value for m in forged[:2]] + [by_dev[m].value for m in forged[2:]]
        assert refused == [NOT_AUTHORIZED] * 4
        deadline = time.monotonic() + 5
        while not (gw.received and admin.received):
            assert time.monotonic() < deadline, (gw.received, admin.received)
            time.sleep(0.05)
        time.sleep(0.3)
        assert gw.received == [(gateway_command_topic(own, "state"), b'{"ts": 1}')]
        assert admin.received == [(gateway_topic(own, Channel.CONFIG), answer)]
    finally:
        for p in (gw, admin, dev):
            p.close()
