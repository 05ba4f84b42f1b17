"""Wire contract revision 5: the platform's config push and state request to a site gateway, the
gateway's answer, and the config version in its state; a device's topics are unchanged."""

from __future__ import annotations

import orjson
import pytest

from core.errors import InvalidMessage
from core.wire import (
    Channel,
    ConfigPush,
    GatewayState,
    Reason,
    decode_config_answer,
    decode_gateway_status,
    encode_config_answer,
    encode_config_push,
    encode_state_request,
    encode_status,
    gateway_command_topic,
    gateway_topic,
    is_command_topic,
    parse_topic,
)


def test_push_and_state_request_travel_on_the_command_subtree() -> None:
    assert gateway_command_topic("C01-GW", "config") == "sw/v1/g/C01-GW/cmd/config"
    assert is_command_topic("sw/v1/g/C01-GW/cmd/state")
    push = ConfigPush.model_validate_json(encode_config_push(3, "gateway: X\n", ["10.0.0.0/8"], 5))
    assert (push.version, push.config, push.networks, push.ts) == (
        3,
        "gateway: X\n",
        ["10.0.0.0/8"],
        5,
    )
    assert orjson.loads(encode_state_request(7)) == {"ts": 7}
    with pytest.raises(ValueError, match="version"):
        ConfigPush.model_validate_json(encode_config_push(0, "x", ["10.0.0.0/8"], 5))


def test_the_answer_is_a_gateway_channel_and_not_a_devices() -> None:
    assert parse_topic("sw/v1/g/C01-GW/config") == ("g", "C01-GW", Channel.CONFIG)
    with pytest.raises(InvalidMessage) as e:
        parse_topic("sw/v1/d/C01-B01-EL1/config")
    assert e.value.reason == Reason.BAD_TOPIC
    assert gateway_topic("C01-GW", Channel.CONFIG) == "sw/v1/g/C01-GW/config"
    a = decode_config_answer(encode_config_answer(2, False, ["site.yaml:3: x: bad"], 9))
    assert (a.version, a.applied, a.errors, a.ts) == (2, False, ["site.yaml:3: x: bad"], 9)


@pytest.mark.parametrize(
    "payload",
    [
        b"{",
        b'{"version": 1, "applied": "yes", "errors": [], "ts": 1}',
        b'{"version": 1, "applied": true, "errors": [], "ts": 1, "more": 1}',
        orjson.dumps({"version": 1, "applied": False, "errors": ["x" * 1001], "ts": 1}),
        orjson.dumps({"version": 1, "applied": False, "errors": ["e"] * 101, "ts": 1}),
    ],
)
def test_a_bad_answer_is_invalid(payload: bytes) -> None:
    with pytest.raises(InvalidMessage) as e:
        decode_config_answer(payload)
    assert e.value.reason in (Reason.INVALID, Reason.MALFORMED)


def test_the_state_names_the_config_version_and_a_revision_4_state_still_decodes() -> None:
    st = GatewayState(
        buffer_entries=1,
        buffer_bytes=2,
        buffer_max_bytes=3,
        dropped=4,
        clock_offset_ms=-5,
        devices=6,
        devices_online=6,
        config_version=7,
    )
    _, _, _, raw = decode_gateway_status(encode_status(True, 1, state=st))
    assert raw == (1, 2, 3, 4, -5, 6, 6, 7)
    old = orjson.dumps(
        {"online": True, "ts": 1, "state": st.model_dump(exclude={"config_version"})}
    )
    _, _, _, raw = decode_gateway_status(old)
    assert raw == (1, 2, 3, 4, -5, 6, 6, None)
