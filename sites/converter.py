"""Gateway: registers to readings and events (pure).

A device profile (``sites/profiles.py``) describes each value a field device holds as a
:class:`Point`: which Modbus table it sits in, at which address, how its registers encode it, and
which catalogue metric or event code it feeds. This module turns the words a poll returned into
metric values, turns discrete values into event edges, and plans the reads themselves: points
that sit next to each other are fetched in one request, as long as a request stays within the
count the device allows.

Nothing here touches a socket or a clock; the connector (``gateway/connector.py``) does the I/O.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

Order = Literal["big", "little"]


class Function(StrEnum):
    """The four Modbus tables a point can be read from."""

    COILS = "coils"  # FC 1, one bit each
    DISCRETE_INPUTS = "discrete_inputs"  # FC 2, one bit each
    HOLDING = "holding"  # FC 3, 16-bit registers
    INPUT = "input"  # FC 4, 16-bit registers

    @property
    def bits(self) -> bool:
        return self in (Function.COILS, Function.DISCRETE_INPUTS)


class DataType(StrEnum):
    BOOL = "bool"  # a coil or discrete input
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def words(self) -> int:
        """How many 16-bit registers (or, for BOOL, bits) one value takes."""
        return _WORDS[self]


_WORDS: Final = {
    DataType.BOOL: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
}
_STRUCT: Final = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}

# What the Modbus specification lets one request read (FC 3/4: 125 registers; FC 1/2: 2000 bits).
MAX_REGISTERS_PER_READ: Final = 125
MAX_BITS_PER_READ: Final = 2000
ADDRESS_SPACE: Final = 65536


@dataclass(frozen=True, slots=True)
class EventRule:
    """A discrete value that raises an event code of the device's class: the code is active
    while the point's value is one of ``active_values``."""

    code: str
    active_values: frozenset[int]


@dataclass(frozen=True, slots=True)
class Point:
    """One value of a device, as its profile describes it.

    ``bit`` and ``width`` take a bit field out of a 16-bit register (bit 0 is the least
    significant). ``byte_order`` is the order of the two bytes inside each register, and
    ``word_order`` the order of the registers of a 32 or 64-bit value ("big": most significant
    first, as Modbus itself). The value is ``raw * scale + offset``.
    """

    name: str
    function: Function
    address: int
    data_type: DataType
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = None
    width: int = 1
    metric: str | None = None
    event: EventRule | None = None

    @property
    def count(self) -> int:
        return self.data_type.words

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True, slots=True)
class Read:
    """One request: ``count`` registers or bits from ``address`` of ``function``, covering
    ``points``."""

    function: Function
    address: int
    count: int
    points: tuple[Point, ...]


def plan_reads(
    points: tuple[Point, ...] | list[Point],
    *,
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
    max_gap: int = 0,
) -> list[Read]:
    """As few requests as cover every point, none longer than the device allows.

    Points of one table are taken in address order and merged into the current request while
    the request, extended to cover them, stays within the limit and the hole before them is at
    most ``max_gap`` registers (reading a few unused registers is cheaper than a round trip, but
    some devices answer an address they do not map with an exception). Overlapping points (a
    register read whole and as bit fields) share their registers.
    """
    reads: list[Read] = []
    for function in Function:
        mine = sorted((p for p in points if p.function is function), key=lambda p: p.address)
        limit = max_bits if function.bits else max_registers
        start, end, group = 0, 0, list[Point]()
        for p in mine:
            if p.count > limit:
                raise ValueError(f"point {p.name!r} takes {p.count} words, over the limit {limit}")
            if group and p.address - end <= max_gap and max(end, p.end) - start <= limit:
                end = max(end, p.end)
                group.append(p)
                continue
            if group:
                reads.append(Read(function, start, end - start, tuple(group)))
            start, end, group = p.address, p.end, [p]
        if group:
            reads.append(Read(function, start, end - start, tuple(group)))
    return reads


def registers_to_raw(
    words: list[int], data_type: DataType, byte_order: Order, word_order: Order
) -> int | float:
    """The number ``words`` (16-bit registers, as received) encode."""
    if len(words) != data_type.words or data_type is DataType.BOOL:
        raise ValueError(f"{data_type} takes {data_type.words} registers, not {len(words)}")
    ordered = words if word_order == "big" else words[::-1]
    data = bytearray()
    for w in ordered:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"register value {w} is not 16 bits")
        data += w.to_bytes(2, byte_order)
    value: int | float = struct.unpack(f">{_STRUCT[data_type]}", data)[0]
    return value


def raw_to_registers(
    value: int | float, data_type: DataType, byte_order: Order, word_order: Order
) -> list[int]:
    """The inverse of :func:`registers_to_raw` (for the test servers and the simulator)."""
    data = struct.pack(f">{_STRUCT[data_type]}", value)
    words = [int.from_bytes(data[i : i + 2], byte_order) for i in range(0, len(data), 2)]
    return words if word_order == "big" else words[::-1]


def raw_of(point: Point, words: list[int]) -> int | float:
    """The point's raw number (before scale and offset), from the words or bits it spans."""
    if point.data_type is DataType.BOOL:
        return 1 if words[0] else 0
    raw = registers_to_raw(words, point.data_type, point.byte_order, point.word_order)
    if point.bit is not None:
        return (int(raw) >> point.bit) & ((1 << point.width) - 1)
    return raw


def scaled(point: Point, raw: int | float) -> float:
    return float(raw) * point.scale + point.offset


@dataclass(frozen=True, slots=True)
class Decoded:
    """What one poll of a device yields: metric values, the raw value of each event point, and
    the names of points whose value could not be used (NaN or infinite floats)."""

    values: dict[str, float]
    discrete: dict[str, int]
    unusable: tuple[str, ...]


def decode(reads: list[Read], answers: list[list[int]]) -> Decoded:
    """Metric values and discrete values from the answers to ``reads`` (one list of words or
    bits per read, in the same order)."""
    if len(reads) != len(answers):
        raise ValueError(f"{len(answers)} answers for {len(reads)} reads")
    values: dict[str, float] = {}
    discrete: dict[str, int] = {}
    unusable: list[str] = []
    for read, words in zip(reads, answers, strict=True):
        if len(words) < read.count:
            raise ValueError(
                f"{read.function} {read.address}+{read.count}: the device answered {len(words)}"
            )
        for p in read.points:
            lo = p.address - read.address
            raw = raw_of(p, words[lo : lo + p.count])
            if isinstance(raw, float) and not math.isfinite(raw):
                unusable.append(p.name)
                continue
            if p.event is not None:
                discrete[p.name] = int(raw)
            if p.metric is not None:
                value = scaled(p, raw)
                if math.isfinite(value):
                    values[p.metric] = value
                else:
                    unusable.append(p.name)
    return Decoded(values, discrete, tuple(unusable))


def active_codes(
    points: tuple[Point, ...] | list[Point], discrete: dict[str, int]
) -> dict[str, bool]:
    """Each event code the points feed, and whether it is active now. A code fed by several
    points (a fault bit per pump) is active while any of them is."""
    out: dict[str, bool] = {}
    for p in points:
        if p.event is None or p.name not in discrete:
            continue
        on = discrete[p.name] in p.event.active_values
        out[p.event.code] = out.get(p.event.code, False) or on
    return out


def edges(before: dict[str, bool] | None, now: dict[str, bool]) -> list[tuple[str, bool]]:
    """The events to send: codes whose state changed since ``before``. On the first poll
    (``before`` None) only the codes already active are sent: an inactive condition that was
    never reported has nothing to clear."""
    if before is None:
        return [(code, True) for code, on in sorted(now.items()) if on]
    return [
        (code, on) for code, on in sorted(now.items()) if code in before and before[code] != on
    ] + [(code, True) for code, on in sorted(now.items()) if code not in before and on]
