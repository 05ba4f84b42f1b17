"""Gateway: the Modbus connector (I/O), polling field devices over TCP and RTU with pymodbus.

Each device is polled by its own asyncio task on its own schedule, so a device that stops
answering costs only its own polls: its task waits out its timeout while the others go on. The
devices of one connection (an RS-485 line, or a Modbus TCP gateway in front of several unit ids)
share one client and take turns on it, as the line allows only one request at a time.

A poll reads the plan of the device's profile (``sites/converter.py``: as few requests as the
device allows) and hands a :class:`Poll` to the caller's sink: the words decoded into values, or
the reason the device did not answer. What happens next (buffering, events, status) is the
caller's (``gateway/collector.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from sites.config import DeviceConfig, Serial, Tcp
from sites.converter import Decoded, Function, Read, decode

log = logging.getLogger("shouwang.gateway")

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


@dataclass(frozen=True, slots=True)
class Poll:
    device: DeviceConfig
    ts_ms: int  # when the poll began, by the gateway's clock
    decoded: Decoded | None  # None: the device did not answer
    error: str = ""


Sink = Callable[[Poll], None]


class DeviceSilent(Exception):
    """A device did not answer a request, or answered it with a Modbus exception."""


class Line:
    """One connection (a TCP endpoint or a serial port) and the lock its devices take turns
    with."""

    def __init__(self, link: Tcp | Serial, timeout_s: float) -> None:
        self.link = link
        self.lock = asyncio.Lock()
        # Retries are the connector's (per device), not the client's: a dead device must not
        # hold the line for the client's retries on top of its own.
        self.client: Client
        if isinstance(link, Tcp):
            self.client = AsyncModbusTcpClient(
                link.host, port=link.port, timeout=timeout_s, retries=0, reconnect_delay=0
            )
        else:
            self.client = AsyncModbusSerialClient(
                link.port,
                baudrate=link.baudrate,
                parity=link.parity,
                bytesize=link.bytesize,
                stopbits=link.stopbits,
                timeout=timeout_s,
                retries=0,
                reconnect_delay=0,
            )

    async def ensure_connected(self) -> None:
        if self.client.connected:
            return
        if not await self.client.connect():
            raise DeviceSilent(f"cannot connect to {describe(self.link)}")

    def close(self) -> None:
        self.client.close()


def describe(link: Tcp | Serial) -> str:
    return f"{link.host}:{link.port}" if isinstance(link, Tcp) else link.port


async def read_once(client: Client, read: Read, unit: int) -> list[int]:
    """The words (or bits, as 0 and 1) of one request."""
    fn = {
        Function.COILS: client.read_coils,
        Function.DISCRETE_INPUTS: client.read_discrete_inputs,
        Function.HOLDING: client.read_holding_registers,
        Function.INPUT: client.read_input_registers,
    }[read.function]
    answer: ModbusPDU = await fn(read.address, count=read.count, device_id=unit)
    if answer.isError():
        raise DeviceSilent(f"{read.function} {read.address}+{read.count}: {answer}")
    if read.function.bits:
        return [1 if b else 0 for b in answer.bits[: read.count]]
    return list(answer.registers)


class Connector:
    """Polls every device of a site until :meth:`stop`; holds nothing but its lines."""

    def __init__(self, devices: tuple[DeviceConfig, ...], sink: Sink) -> None:
        self.devices = devices
        self.sink = sink
        self.lines: dict[Tcp | Serial, Line] = {}
        self._stopping = asyncio.Event()
        self.unexpected = 0  # polls that failed in a way not foreseen (a bug: see the log)

    def _line(self, device: DeviceConfig) -> Line:
        line = self.lines.get(device.link)
        if line is None:
            timeout = max(d.timeout_s for d in self.devices if d.link == device.link)
            line = self.lines[device.link] = Line(device.link, timeout)
        return line

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for d in self.devices:
                    tg.create_task(self._poll_forever(d), name=f"poll {d.uid}")
        finally:
            for line in self.lines.values():
                line.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _poll_forever(self, device: DeviceConfig) -> None:
        line = self._line(device)
        next_at = time.monotonic()
        while not self._stopping.is_set():
            self.sink(await self.poll(device, line))
            next_at += device.poll_s
            now = time.monotonic()
            if next_at < now:  # a poll overran its interval: skip the missed ones, do not race
                next_at = now + device.poll_s - (now - next_at) % device.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=next_at - now)

    async def poll(self, device: DeviceConfig, line: Line) -> Poll:
        """One poll of ``device``: every read of its plan, each tried ``1 + retries`` times."""
        ts_ms = time.time_ns() // 1_000_000
        reads = list(device.profile.reads)
        answers: list[list[int]] = []
        try:
            async with line.lock:
                for read in reads:
                    answers.append(await self._read(line, read, device))
            return Poll(device, ts_ms, decode(reads, answers))
        except DeviceSilent as e:
            return Poll(device, ts_ms, None, str(e))
        except ValueError as e:  # a short answer: the device does not match its profile
            return Poll(device, ts_ms, None, f"answer does not fit the profile: {e}")
        except Exception as e:  # the one broad catch of the loop: one device, not the site
            self.unexpected += 1
            log.exception("polling %s failed unexpectedly", device.uid)
            return Poll(device, ts_ms, None, f"unexpected {type(e).__name__}: {e}")

    async def _read(self, line: Line, read: Read, device: DeviceConfig) -> list[int]:
        last = ""
        for _attempt in range(1 + device.retries):
            try:
                await line.ensure_connected()
                return await asyncio.wait_for(
                    read_once(line.client, read, device.unit), device.timeout_s * 2 + 0.5
                )
            except (ModbusException, TimeoutError, OSError, DeviceSilent) as e:
                last = f"{type(e).__name__}: {e}"
                if not isinstance(e, DeviceSilent):
                    line.close()  # a half-read answer would confuse the next request
        raise DeviceSilent(f"unit {device.unit} at {describe(line.link)}: {last}")
