"""The converter against pymodbus's own encoder: every data type, byte and word order, scaling,
bit fields, and the read plan."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from sites.converter import (
    DataType,
    EventRule,
    Function,
    Order,
    Point,
    active_codes,
    decode,
    edges,
    plan_reads,
    raw_to_registers,
    registers_to_raw,
)

PM = ModbusClientMixin.DATATYPE
PYMODBUS_TYPE = {
    DataType.INT16: PM.INT16,
    DataType.UINT16: PM.UINT16,
    DataType.INT32: PM.INT32,
    DataType.UINT32: PM.UINT32,
    DataType.FLOAT32: PM.FLOAT32,
    DataType.FLOAT64: PM.FLOAT64,
}
RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}
orders = st.sampled_from(["big", "little"])


def swap_bytes(words: list[int]) -> list[int]:
    return [((w & 0xFF) << 8) | (w >> 8) for w in words]


@st.composite
def typed_values(draw: st.DrawFn) -> tuple[DataType, int | float]:
    dt = draw(st.sampled_from(list(PYMODBUS_TYPE)))
    if dt in RANGES:
        lo, hi = RANGES[dt]
        return dt, draw(st.integers(lo, hi))
    if dt is DataType.FLOAT32:
        return dt, draw(st.floats(width=32, allow_nan=False))
    return dt, draw(st.floats(allow_nan=False))


@given(typed_values(), orders, orders)
def test_decoding_matches_pymodbus_encoder(
    tv: tuple[DataType, int | float], bo: Order, wo: Order
) -> None:
    dt, value = tv
    words = ModbusClientMixin.convert_to_registers(value, PYMODBUS_TYPE[dt], word_order=wo)
    on_wire = words if bo == "big" else swap_bytes(words)
    assert registers_to_raw(on_wire, dt, bo, wo) == value
    # and the inverse, which the test servers use, agrees with pymodbus's decoder
    back = raw_to_registers(value, dt, bo, wo)
    assert back == on_wire
    decoded = ModbusClientMixin.convert_from_registers(
        back if bo == "big" else swap_bytes(back), PYMODBUS_TYPE[dt], word_order=wo
    )
    assert decoded == value


@given(st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4), orders, orders)
def test_any_registers_decode_like_pymodbus(words: list[int], bo: Order, wo: Order) -> None:
    for dt, pm in PYMODBUS_TYPE.items():
        mine = registers_to_raw(words[: dt.words], dt, bo, wo)
        theirs = ModbusClientMixin.convert_from_registers(
            words[: dt.words] if bo == "big" else swap_bytes(words[: dt.words]), pm, word_order=wo
        )
        assert isinstance(theirs, int | float)
        assert mine == theirs or (math.isnan(mine) and math.isnan(theirs))


@given(
    st.integers(0, 0xFFFF),
    st.integers(0, 15),
    st.integers(1, 16),
    st.floats(-1e3, 1e3, allow_nan=False),
    st.floats(-1e3, 1e3, allow_nan=False),
)
def test_bit_fields_scale_and_offset(
    word: int, bit: int, width: int, scale: float, offset: float
) -> None:
    width = min(width, 16 - bit)
    p = Point(
        "f",
        Function.HOLDING,
        10,
        DataType.UINT16,
        bit=bit,
        width=width,
        scale=scale,
        offset=offset,
        metric="m",
    )
    [read] = plan_reads([p])
    got = decode([read], [[word]])
    bits = ModbusClientMixin.convert_from_registers([word], PM.BITS)
    assert isinstance(bits, list)
    # pymodbus lists a register's bits least significant first within each byte, low byte last
    lsb_first = bits[8:16] + bits[0:8]
    raw = sum(1 << i for i in range(width) if lsb_first[bit + i])
    assert got.values["m"] == pytest.approx(raw * scale + offset)


def test_non_finite_floats_are_unusable_not_sent() -> None:
    p = Point("t", Function.INPUT, 0, DataType.FLOAT32, metric="room_temp")
    q = Point("h", Function.INPUT, 2, DataType.FLOAT32, metric="room_humidity")
    reads = plan_reads([p, q])
    nan = raw_to_registers(float("nan"), DataType.FLOAT32, "big", "big")
    ok = raw_to_registers(55.5, DataType.FLOAT32, "big", "big")
    got = decode(reads, [nan + ok])
    assert got.values == {"room_humidity": 55.5}
    assert got.unusable == ("t",)


def test_plan_merges_contiguous_registers_within_the_limit() -> None:
    points = [
        Point(f"p{a}", Function.HOLDING, a, DataType.FLOAT32, metric=f"m{a}")
        for a in range(0, 20, 2)
    ]
    points.append(Point("far", Function.HOLDING, 100, DataType.UINT16, metric="far"))
    points.append(Point("c", Function.COILS, 3, DataType.BOOL, metric="c3"))
    points.append(Point("c2", Function.COILS, 4, DataType.BOOL, metric="c4"))
    reads = plan_reads(points, max_registers=8)
    shape = [(r.function, r.address, r.count) for r in reads]
    assert shape == [
        (Function.COILS, 3, 2),
        (Function.HOLDING, 0, 8),
        (Function.HOLDING, 8, 8),
        (Function.HOLDING, 16, 4),
        (Function.HOLDING, 100, 1),
    ]
    # a gap allowance merges the far register only when the request stays under the limit
    assert len(plan_reads(points, max_registers=125, max_gap=80)) == 2
    assert len(plan_reads(points, max_registers=125, max_gap=79)) == 3


@given(
    st.lists(st.tuples(st.integers(0, 300), st.sampled_from(list(PYMODBUS_TYPE))), max_size=40),
    st.integers(4, 130),
    st.integers(0, 5),
)
def test_plan_covers_every_point_within_limits(
    spec: list[tuple[int, DataType]], limit: int, gap: int
) -> None:
    points = [Point(f"p{i}", Function.INPUT, a, dt) for i, (a, dt) in enumerate(spec)]
    reads = plan_reads(points, max_registers=limit, max_gap=gap)
    covered = [p for r in reads for p in r.points]
    assert sorted(p.name for p in covered) == sorted(p.name for p in points)
    for r in reads:
        assert r.count <= limit
        assert all(r.address <= p.address and p.end <= r.address + r.count for p in r.points)


def test_overlapping_bit_fields_share_one_register() -> None:
    whole = Point("status", Function.HOLDING, 5, DataType.UINT16, metric="status")
    run = Point("run", Function.HOLDING, 5, DataType.UINT16, bit=0, metric="pump1_run")
    fault = Point(
        "fault",
        Function.HOLDING,
        5,
        DataType.UINT16,
        bit=3,
        metric="pump1_fault",
        event=EventRule("PUMP_FAULT", frozenset({1})),
    )
    reads = plan_reads([whole, run, fault])
    assert [(r.address, r.count) for r in reads] == [(5, 1)]
    got = decode(reads, [[0b1001]])
    assert got.values == {"status": 9.0, "pump1_run": 1.0, "pump1_fault": 1.0}
    assert got.discrete == {"fault": 1}


def test_event_codes_are_active_while_any_point_is_and_sent_on_change() -> None:
    rule = EventRule("PUMP_FAULT", frozenset({1}))
    p1 = Point("pump1_fault", Function.DISCRETE_INPUTS, 0, DataType.BOOL, event=rule)
    p2 = Point("pump2_fault", Function.DISCRETE_INPUTS, 1, DataType.BOOL, event=rule)
    flood = Point(
        "flood",
        Function.DISCRETE_INPUTS,
        2,
        DataType.BOOL,
        event=EventRule("FLOOD", frozenset({1})),
    )
    pts = [p1, p2, flood]
    first = active_codes(pts, {"pump1_fault": 0, "pump2_fault": 1, "flood": 0})
    assert first == {"PUMP_FAULT": True, "FLOOD": False}
    assert edges(None, first) == [("PUMP_FAULT", True)]
    second = active_codes(pts, {"pump1_fault": 1, "pump2_fault": 0, "flood": 1})
    assert edges(first, second) == [("FLOOD", True)]
    third = active_codes(pts, {"pump1_fault": 0, "pump2_fault": 0, "flood": 1})
    assert edges(second, third) == [("PUMP_FAULT", False)]
    assert edges(third, third) == []


def test_wrong_answer_length_is_an_error() -> None:
    p = Point("x", Function.INPUT, 0, DataType.FLOAT64, metric="x")
    with pytest.raises(ValueError, match="answered 2"):
        decode(plan_reads([p]), [[1, 2]])
