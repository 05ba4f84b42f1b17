"""The fast decoders accept exactly what the contract's models accept."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.errors import InvalidMessage
from core.wire import (
    Batch,
    Channel,
    Event,
    Status,
    TelemetryMany,
    TelemetryOne,
    decode_batch,
    decode_event,
    decode_status,
    decode_telemetry,
    device_topic,
    encode_batch,
    encode_event,
    encode_sample,
    encode_samples,
    encode_status,
    parse_topic,
)

scalars = st.one_of(
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)
ts_values = st.one_of(
    st.integers(0, 2**42),
    st.just("2026-11-26T08:00:00+08:00"),
    st.just("yesterday"),
    st.just("2026-11-26T08:00:00"),
    st.floats(0, 1e12),
    st.none(),
)
values = st.dictionaries(st.sampled_from(["floor", "speed", "ph"]), scalars, max_size=3)
sample = st.fixed_dictionaries({"ts": ts_values, "values": values}, optional={"extra": scalars})
telemetry = st.one_of(
    sample,
    st.fixed_dictionaries({"samples": st.lists(sample, max_size=3)}),
    st.lists(sample, max_size=2),
    scalars,
)


def model_accepts(obj: Any) -> bool:
    for model in (TelemetryOne, TelemetryMany):
        try:
            model.model_validate_json(orjson.dumps(obj))
            return True
        except ValidationError:
            pass
    return False


def decoder_accepts(obj: Any) -> bool:
    try:
        decode_telemetry(orjson.dumps(obj))
        return True
    except InvalidMessage:
        return False


@settings(max_examples=400, deadline=None)
@given(telemetry)
def test_telemetry_decoder_agrees_with_the_model(obj: Any) -> None:
    # Numbers are checked per reading against the catalogue, not by the shape check.
    if isinstance(obj, dict):
        for s in obj.get("samples", [obj]) if isinstance(obj.get("samples", [obj]), list) else []:
            if isinstance(s, dict) and isinstance(s.get("values"), dict):
                s["values"] = {
                    k: (v if isinstance(v, int | float) and not isinstance(v, bool) else 1.0)
                    for k, v in s["values"].items()
                }
    assert decoder_accepts(obj) == model_accepts(obj), obj


def test_encoders_produce_what_the_models_accept() -> None:
    TelemetryOne.model_validate_json(encode_sample(1, {"floor": 3}))
    TelemetryMany.model_validate_json(encode_samples([(1, {"floor": 3}), (2, {"floor": 4})]))
    Event.model_validate_json(encode_event(1, "11", active=True, detail={"floor": 3}))
    Status.model_validate_json(encode_status(False))
    Batch.model_validate_json(encode_batch([("EL-1", 1, {"floor": 3})], [("EL-1", 1, "11", True)]))
    assert decode_telemetry(encode_samples([(1, {"floor": 3})])) == [(1, {"floor": 3})]
    assert decode_event(encode_event(5, "90")) == (5, "90", True, {})
    assert decode_status(encode_status(True, 7, "boot")) == (True, 7, "boot")
    assert decode_batch(encode_batch([("EL-1", 1, {"floor": 3})])) == (
        [("EL-1", (1, {"floor": 3}))],
        [],
    )


def test_rfc3339_timestamps_need_an_offset() -> None:
    assert (
        decode_telemetry(b'{"ts": "2026-11-26T08:00:00+08:00", "values": {"floor": 1}}')[0][0]
        == 1795651200000
    )
    with pytest.raises(InvalidMessage, match="no UTC offset"):
        decode_telemetry(b'{"ts": "2026-11-26T08:00:00", "values": {"floor": 1}}')


def test_nan_is_decoded_so_that_its_neighbours_survive() -> None:
    [(_ts, vals)] = decode_telemetry(b'{"ts": 1, "values": {"floor": NaN, "speed": 1.0}}')
    assert vals["speed"] == 1.0
    assert vals["floor"] != vals["floor"]


@pytest.mark.parametrize(
    ("topic", "ok"),
    [
        (device_topic("EL-1", Channel.TELEMETRY), True),
        ("sw/v1/g/GW-1/batch", True),
        ("sw/v1/g/GW-1/telemetry", False),
        ("sw/v1/d/EL-1/batch", False),
        ("sw/v2/d/EL-1/telemetry", False),
        ("sw/v1/d/EL-1/telemetry/extra", False),
    ],
)
def test_topics(topic: str, ok: bool) -> None:
    if ok:
        parse_topic(topic)
    else:
        with pytest.raises(InvalidMessage):
            parse_topic(topic)
