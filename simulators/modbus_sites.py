"""Simulators: the demo's field devices as real Modbus TCP servers (pymodbus), one per site.

Pump-room controllers, fire-water transmitters, water-quality analysers and residual-current
monitors do not speak MQTT on a real site: they answer Modbus behind the site's gateway. Here each
community is a site: one Modbus TCP server on loopback holds many unit ids (as a serial server in
front of an RS-485 line does), one per device, laid out as the device's register map says (the
demo builds the maps from the gateway's shipped profiles, ``shouwang/demo_sites.py``). The
registers follow the simulator's behaviour
(``simulators/behaviour.py``) on the simulated clock, with the injected faults applied: a forced
value becomes the register a real device would hold (a pump fault is bit 1 of the pump status
word), a fault's device events set the points that raise them, and a device that went offline
answers every request with Modbus exception 0x0B (gateway target failed to respond), as a serial
server does for a unit that stays silent on its line.

The pure part (register maps, register values from readings, unit layout) is separate from the
servers themselves (:class:`ModbusSite`).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from simulators.behaviour import Behaviour
from simulators.faults import Fault, apply_values

UNITS_PER_PORT: Final = 247  # Modbus unit ids 1 ... 247

Order = Literal["big", "little"]


class Table(StrEnum):
    """The four Modbus tables, by the function code that reads each."""

    COILS = "coils"
    DISCRETE_INPUTS = "discrete_inputs"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def bits(self) -> bool:
        return self in (Table.COILS, Table.DISCRETE_INPUTS)

    @property
    def code(self) -> int:
        return _CODES[self]


_CODES: Final = {Table.COILS: 1, Table.DISCRETE_INPUTS: 2, Table.HOLDING: 3, Table.INPUT: 4}
_STRUCT: Final = {
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "float32": "f",
    "float64": "d",
}
_INT_RANGE: Final = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}


@dataclass(frozen=True, slots=True)
class Point:
    """Where a device holds one value and how: a Modbus table and address, the data type
    (``bool`` for a coil or discrete input; ``int16`` … ``float64``), byte and word order, value
    = raw × ``scale`` + ``offset``, an optional bit field of a 16-bit register, the catalogue
    metric it holds and the event code it raises while its value is one of ``active``."""

    table: Table
    address: int
    data_type: str
    byte_order: Order = "big"
    word_order: Order = "big"
    scale: float = 1.0
    offset: float = 0.0
    bit: int | None = None
    width: int = 1
    metric: str | None = None
    event: str | None = None
    active: frozenset[int] = frozenset({1})

    @property
    def words(self) -> int:
        return 1 if self.data_type == "bool" else struct.calcsize(_STRUCT[self.data_type]) // 2


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """The register layout of one device model."""

    model: str
    device_class: str
    points: tuple[Point, ...]


Words = dict[tuple[Table, int], int]


def encode(value: int | float, data_type: str, byte_order: Order, word_order: Order) -> list[int]:
    """The 16-bit registers holding ``value`` as ``data_type`` in the given orders."""
    data = struct.pack(f">{_STRUCT[data_type]}", value)
    words = [int.from_bytes(data[i : i + 2], byte_order) for i in range(0, len(data), 2)]
    return words if word_order == "big" else words[::-1]


def _raw(point: Point, value: float) -> int | float:
    """The raw number a device holds for ``value`` (the inverse of scale and offset), brought
    into what the point's type can hold."""
    raw = (value - point.offset) / point.scale
    if point.data_type in ("float32", "float64"):
        return raw
    if point.data_type == "bool":
        return 1 if raw else 0
    if not math.isfinite(raw):
        return 0
    lo, hi = _INT_RANGE[point.data_type]
    if point.bit is not None:
        lo, hi = 0, (1 << point.width) - 1
    return max(lo, min(hi, round(raw)))


def _event_value(point: Point, active: bool) -> int:
    """The value of an event point while its event is (not) active."""
    values = point.active
    if active:
        return min(values)
    return next(v for v in range(0, 65536) if v not in values)


def registers_for(
    registers: RegisterMap, values: dict[str, float], events: Iterable[str] = ()
) -> Words:
    """The registers and bits that make a device of ``registers`` hold ``values`` (catalogue
    metric -> value) and the event codes ``events`` as active. Bit fields are or-ed into their
    register; a point whose metric has no value keeps 0."""
    active = set(events)
    out: Words = {}
    for p in registers.points:
        if p.event is not None and p.event in active:
            raw: int | float = _event_value(p, True)
        elif p.metric is not None and p.metric in values:
            raw = _raw(p, values[p.metric])
        elif p.event is not None:
            raw = _event_value(p, False)
        else:
            continue
        key = (p.table, p.address)
        if p.data_type == "bool":
            out[key] = 1 if raw else 0
        elif p.bit is not None:
            mask = ((1 << p.width) - 1) << p.bit
            out[key] = (out.get(key, 0) & ~mask) | ((int(raw) << p.bit) & mask)
        else:
            for i, w in enumerate(encode(raw, p.data_type, p.byte_order, p.word_order)):
                out[(p.table, p.address + i)] = w
    return out


def assign_units(uids: list[str], per_port: int = UNITS_PER_PORT) -> dict[str, tuple[int, int]]:
    """Each device's place at its site: (index of the server port, unit id), in the given
    order, ``per_port`` unit ids to a port."""
    if not 1 <= per_port <= UNITS_PER_PORT:
        raise ValueError(f"a Modbus port serves 1 to {UNITS_PER_PORT} unit ids, not {per_port}")
    return {uid: (i // per_port, i % per_port + 1) for i, uid in enumerate(uids)}


@dataclass(frozen=True, slots=True)
class Reading:
    """What a field device holds at one moment: its values, the events its points raise, and
    whether it answers at all."""

    values: dict[str, float]
    events: frozenset[str]
    answering: bool


def reading_at(
    behaviour: Behaviour, faults: Iterable[Fault], t: float, rng: random.Random
) -> Reading:
    """The device's state at simulated time ``t``, its active faults applied as the simulator
    applies them to what a device publishes (``simulators/run.py``)."""
    values = behaviour.sample(t)
    events: set[str] = set()
    answering = True
    for f in faults:
        if not f.active(t):
            continue
        values = apply_values(f, t, values, rng)
        events.update(f.events)
        if f.transport == "offline":
            answering = False
    return Reading(values, frozenset(events), answering)


@dataclass(slots=True)
class FieldDevice:
    """One Modbus device of a site: where it answers and what drives its registers."""

    uid: str
    registers: RegisterMap
    port_index: int
    unit: int
    interval_s: float
    behaviour: Behaviour
    faults: list[Fault] = field(default_factory=list)
    next_t: float = -math.inf  # simulated time of its next update
    answering: bool = True
    updates: int = 0


def _block_size(registers: RegisterMap, table: Table) -> int:
    ends = [p.address + p.words for p in registers.points if p.table is table]
    return max(16, max(ends, default=0) + 8)


class ModbusSite:
    """The Modbus TCP servers of one site on ``host`` (one per ``ports`` entry), holding its
    devices' registers. Runs in an asyncio loop: :meth:`start`, :meth:`refresh` as often as the
    devices should change, :meth:`stop`."""

    def __init__(
        self, code: str, devices: list[FieldDevice], ports: list[int], host: str = "127.0.0.1"
    ) -> None:
        needed = 1 + max((d.port_index for d in devices), default=0)
        if len(ports) < needed:
            raise ValueError(f"site {code}: its devices need {needed} ports, {len(ports)} given")
        self.code = code
        self.devices = devices
        self.ports = ports
        self.host = host
        self.servers: dict[int, ModbusTcpServer] = {}  # port index -> its server
        self._silent: set[tuple[int, int]] = set()  # (port index, unit) answering 0x0B
        self._rng = random.Random(f"modbus-site:{code}")
        self.requests_refused = 0

    def _sim_device(self, d: FieldDevice) -> SimDevice:
        key = (d.port_index, d.unit)

        async def action(
            _fc: int,
            _start: int,
            _address: int,
            _count: int,
            _registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if set_values is None and key in self._silent:
                self.requests_refused += 1
                return ExcCodes.GATEWAY_NO_RESPONSE
            return None

        def block(table: Table) -> list[SimData]:
            n = _block_size(d.registers, table)
            if table.bits:
                return [SimData(0, count=n, values=False, datatype=SimType.BITS)]
            return [SimData(0, count=n, values=0, datatype=SimType.REGISTERS)]

        return SimDevice(
            id=d.unit,
            simdata=(
                block(Table.COILS),
                block(Table.DISCRETE_INPUTS),
                block(Table.HOLDING),
                block(Table.INPUT),
            ),
            action=action,
        )

    async def start(self, t: float) -> None:
        """Fill every device's registers for simulated time ``t`` and start answering."""
        for i, port in enumerate(self.ports):
            mine = [self._sim_device(d) for d in self.devices if d.port_index == i]
            if not mine:
                continue
            self.servers[i] = ModbusTcpServer(mine, address=(self.host, port))
        await self.refresh(t)
        for server in self.servers.values():
            await server.serve_forever(background=True)

    async def refresh(self, t: float) -> int:
        """Bring the devices due by simulated time ``t`` up to it; returns how many changed."""
        n = 0
        for d in self.devices:
            if d.next_t > t:
                continue
            reading = reading_at(d.behaviour, d.faults, t, self._rng)
            await self._write(d, registers_for(d.registers, reading.values, reading.events))
            d.answering = reading.answering
            key = (d.port_index, d.unit)
            if reading.answering:
                self._silent.discard(key)
            else:
                self._silent.add(key)
            d.next_t = t + d.interval_s if d.next_t == -math.inf else d.next_t + d.interval_s
            if d.next_t <= t:  # fell behind (a slow loop): catch up without a burst
                d.next_t = t + d.interval_s
            # a fault's start or end is a change the device shows at once
            for f in d.faults:
                for edge in (f.start, f.end):
                    if t < edge < d.next_t:
                        d.next_t = edge
            d.updates += 1
            n += 1
        return n

    async def _write(self, d: FieldDevice, words: Words) -> None:
        server = self.servers[d.port_index]
        runs: dict[Table, list[tuple[int, int]]] = {}
        for (table, address), w in sorted(words.items()):
            runs.setdefault(table, []).append((address, w))
        for table, pairs in runs.items():
            if table.bits:
                for address, w in pairs:
                    await server.context.async_setValues(d.unit, table.code, address, [bool(w)])
                continue
            start, chunk = pairs[0][0], [pairs[0][1]]
            for address, w in pairs[1:]:
                if address == start + len(chunk):
                    chunk.append(w)
                    continue
                await server.context.async_setValues(d.unit, table.code, start, chunk)
                start, chunk = address, [w]
            await server.context.async_setValues(d.unit, table.code, start, chunk)

    async def stop(self) -> None:
        for server in self.servers.values():
            await server.shutdown()  # type: ignore[no-untyped-call]
        self.servers = {}
