"""Real pymodbus servers for the gateway's tests: Modbus TCP on loopback, Modbus RTU on one end
of a pseudo-terminal pair (socat), each holding the registers of a device profile."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimType
from pymodbus.simulator import SimData, SimDevice

from sites.converter import DataType, Function, raw_to_registers
from sites.profiles import Profile

FC_WRITE = {Function.COILS: 1, Function.DISCRETE_INPUTS: 2, Function.HOLDING: 3, Function.INPUT: 4}
SIZE = 64


def sim_device(unit: int) -> SimDevice:
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, count=SIZE, values=False, datatype=SimType.BITS)],
            [SimData(0, count=SIZE, values=False, datatype=SimType.BITS)],
            [SimData(0, count=SIZE, values=0, datatype=SimType.REGISTERS)],
            [SimData(0, count=SIZE, values=0, datatype=SimType.REGISTERS)],
        ),
    )


def words_for(profile: Profile, raw: dict[str, float]) -> dict[tuple[Function, int], int]:
    """The register (or bit) values that make the points of ``profile`` read ``raw`` (values
    before scale and offset; bit fields are or-ed into their register)."""
    out: dict[tuple[Function, int], int] = {}
    for p in profile.points:
        if p.name not in raw:
            continue
        v = raw[p.name]
        if p.data_type is DataType.BOOL:
            out[(p.function, p.address)] = int(v)
        elif p.bit is not None:
            key = (p.function, p.address)
            out[key] = out.get(key, 0) | (int(v) << p.bit)
        else:
            number: int | float = v if p.data_type.name.startswith("FLOAT") else int(v)
            words = raw_to_registers(number, p.data_type, p.byte_order, p.word_order)
            for i, w in enumerate(words):
                out[(p.function, p.address + i)] = w
    return out


async def load(
    server: ModbusTcpServer | ModbusSerialServer, unit: int, words: dict[tuple[Function, int], int]
) -> None:
    for (fn, address), w in words.items():
        value: list[int] | list[bool] = [bool(w)] if fn.bits else [w]
        await server.context.async_setValues(unit, FC_WRITE[fn], address, value)


@asynccontextmanager
async def tcp_server(port: int, units: list[int]) -> AsyncIterator[ModbusTcpServer]:
    server = ModbusTcpServer([sim_device(u) for u in units], address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    try:
        yield server
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@asynccontextmanager
async def rtu_server(port: str, units: list[int]) -> AsyncIterator[ModbusSerialServer]:
    server = ModbusSerialServer(
        [sim_device(u) for u in units], framer=FramerType.RTU, port=port, baudrate=115200
    )
    await server.serve_forever(background=True)
    try:
        yield server
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@contextmanager
def pty_pair(folder: Path) -> Iterator[tuple[str, str]]:
    """Two linked serial ports (a null-modem cable in software)."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat is needed for the RTU tests: apt-get install socat")
    a, b = folder / "ttyA", folder / "ttyB"
    proc = subprocess.Popen(
        [socat, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()):
            if time.monotonic() > deadline:
                pytest.fail("socat did not create the pseudo-terminals")
            time.sleep(0.01)
        yield str(a), str(b)
    finally:
        proc.terminate()
        proc.wait(5)


@asynccontextmanager
async def silent_server(port: int) -> AsyncIterator[None]:
    """Accepts connections and never answers: a device that stopped responding."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(1024):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
