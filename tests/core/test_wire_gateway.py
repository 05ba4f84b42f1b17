"""Revision 4 of the wire contract: gateway batches with statuses and a sequence range, and the
platform's storage acknowledgement; the fast decoder agrees with the model on them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.errors import InvalidMessage
from core.wire import (
    Batch,
    GatewayState,
    GatewayStatus,
    decode_gateway_batch,
    decode_gateway_status,
    decode_status,
    decode_stored,
    encode_status,
    encode_stored,
    gateway_command_topic,
    is_command_topic,
    join_batch,
    parse_topic,
)

STATUS = {"device": "EF-1", "online": False, "ts": 5, "reason": "timeout"}
SAMPLE = {"device": "EF-1", "ts": 5, "values": {"residual_current": 10}}


def accepts(obj: Any) -> tuple[bool, bool]:
    payload = orjson.dumps(obj)
    try:
        decode_gateway_batch(payload)
        fast = True
    except InvalidMessage:
        fast = False
    try:
        Batch.model_validate_json(payload)
        model = True
    except ValidationError:
        model = False
    return fast, model


seqs = st.one_of(
    st.none(),
    st.lists(st.integers(-3, 2**64 - 1), min_size=0, max_size=3),
    st.just("1-2"),
    st.tuples(st.integers(0, 10), st.integers(0, 10)).map(list),
)
statuses = st.lists(
    st.fixed_dictionaries(
        {"device": st.just("EF-1"), "online": st.sampled_from([True, False, 1]), "ts": st.just(5)},
        optional={"reason": st.sampled_from(["", "x" * 1001, "ok"]), "colour": st.just(1)},
    ),
    max_size=2,
)


@given(seqs, statuses, st.booleans())
def test_decoder_agrees_with_the_model(seq: Any, sts: list[Any], with_sample: bool) -> None:
    obj: dict[str, Any] = {"statuses": sts}
    if seq is not None:
        obj["seq"] = seq
    if with_sample:
        obj["samples"] = [SAMPLE]
    fast, model = accepts(obj)
    assert fast == model, obj


def test_a_gateway_batch_with_statuses_and_a_range() -> None:
    payload = join_batch((3, 4), [orjson.dumps(SAMPLE)], [], [orjson.dumps(STATUS)])
    b = decode_gateway_batch(payload)
    assert b.seq == (3, 4)
    assert b.statuses == [("EF-1", (5, False, "timeout"))]
    assert b.samples == [("EF-1", (5, {"residual_current": 10}))]
    with pytest.raises(InvalidMessage, match="first <= last"):
        decode_gateway_batch(b'{"seq": [4, 3], "statuses": [%s]}' % orjson.dumps(STATUS))


def test_storage_acknowledgement_and_its_topic() -> None:
    topic = gateway_command_topic("C01-GW", "stored")
    assert topic == "sw/v1/g/C01-GW/cmd/stored"
    assert is_command_topic(topic)
    assert not is_command_topic("sw/v1/g/C01-GW/batch")
    with pytest.raises(InvalidMessage):
        parse_topic(topic)  # never a device's message
    assert decode_stored(encode_stored([(1, 5), (9, 9)], 123)) == ([(1, 5), (9, 9)], 123)
    with pytest.raises(ValidationError):
        decode_stored(b'{"stored": [], "ts": 1}')


STATE = {
    "buffer_entries": 3,
    "buffer_bytes": 300,
    "buffer_max_bytes": 4096,
    "dropped": 0,
    "clock_offset_ms": -120,
    "devices": 5,
    "devices_online": 4,
    "config_version": 2,  # revision 5
}


@given(
    st.dictionaries(
        st.sampled_from([*STATE, "colour"]),
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.none(), st.booleans(), st.just(1.5)),
        max_size=9,
    )
)
def test_gateway_status_decoder_agrees_with_the_model(state: dict[str, Any]) -> None:
    obj = {"online": True, "ts": 5, "state": state}
    payload = orjson.dumps(obj)
    try:
        decode_gateway_status(payload)
        fast = True
    except InvalidMessage:
        fast = False
    try:
        GatewayStatus.model_validate_json(payload)
        model = True
    except ValidationError:
        model = False
    assert fast == model, obj


def test_a_gateway_reports_its_state_and_a_device_cannot() -> None:
    payload = encode_status(True, 7, state=GatewayState(**STATE))
    assert decode_gateway_status(payload) == (True, 7, "", (3, 300, 4096, 0, -120, 5, 4, 2))
    assert decode_gateway_status(encode_status(False)) == (False, None, "", None)
    with pytest.raises(InvalidMessage):
        decode_status(payload)  # a device's status has no state
