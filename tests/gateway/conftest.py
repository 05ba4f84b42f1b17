"""Fixtures of the gateway's tests: Modbus servers in a thread of the test process, and a site
config for the demo county's gateway C01-GW (the ingest worker is ``tests/conftest.py``'s)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.county import County
from sites.converter import Function
from tests.conftest import Broker, free_port
from tests.gateway.modbus_servers import load, tcp_server


@dataclass
class ModbusSite:
    """A Modbus TCP server on loopback, served by its own loop in a thread."""

    port: int
    loop: asyncio.AbstractEventLoop
    stopped: asyncio.Event
    thread: threading.Thread

    def call(self, fn: Callable[[], object]) -> None:
        fut: Future[None] = asyncio.run_coroutine_threadsafe(_wrap(fn), self.loop)
        fut.result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(10)


async def _wrap(fn: Callable[[], object]) -> None:
    out = fn()
    if asyncio.iscoroutine(out):
        await out


@pytest.fixture
def modbus_site() -> Iterator[Callable[[dict[int, dict[tuple[Function, int], int]]], ModbusSite]]:
    sites: list[ModbusSite] = []

    def start(units: dict[int, dict[tuple[Function, int], int]]) -> ModbusSite:
        port = free_port()
        ready = threading.Event()
        holder: dict[str, object] = {}

        async def serve() -> None:
            stopped = asyncio.Event()
            holder["loop"], holder["stopped"] = asyncio.get_running_loop(), stopped
            async with tcp_server(port, list(units)) as server:
                for unit, words in units.items():
                    await load(server, unit, words)
                ready.set()
                await stopped.wait()

        thread = threading.Thread(target=lambda: asyncio.run(serve()), name="modbus", daemon=True)
        thread.start()
        assert ready.wait(10), "the Modbus server did not start"
        loop = holder["loop"]
        stopped = holder["stopped"]
        assert isinstance(loop, asyncio.AbstractEventLoop)
        assert isinstance(stopped, asyncio.Event)
        site = ModbusSite(port, loop, stopped, thread)
        sites.append(site)
        return site

    yield start
    for s in sites:
        if s.thread.is_alive():
            s.stop()


def site_config(
    tmp_path: Path,
    broker: Broker,
    county: tuple[County, dict[str, str]],
    devices: list[tuple[str, str, int, int]],
    *,
    poll_s: float = 0.1,
    max_bytes: int = 8 * 1024 * 1024,
    batch_interval_s: float = 0.1,
    ack_timeout_s: float = 3.0,
    state_every_s: float = 1.0,
) -> Path:
    """A site config for C01-GW; ``devices``: (uid, profile, port, unit)."""
    (tmp_path / "gw.secret").write_text(county[1]["C01-GW"] + "\n")
    lines = [
        "gateway: C01-GW",
        f"broker: {{host: {broker.host}, port: {broker.port}, password_file: gw.secret}}",
        f"buffer: {{path: buffer.db, max_bytes: {max_bytes}}}",
        f"uplink: {{batch_interval_s: {batch_interval_s}, batch_max_bytes: 16384,"
        f" ack_timeout_s: {ack_timeout_s}, state_every_s: {state_every_s}}}",
        "networks: [127.0.0.0/8]",
        "devices:",
    ]
    lines += [
        f"  - {{uid: {uid}, profile: {profile}, tcp: {{host: 127.0.0.1, port: {port}}},"
        f" unit: {unit}, poll_s: {poll_s}, timeout_s: 0.3, retries: 0}}"
        for uid, profile, port, unit in devices
    ]
    path = tmp_path / "site.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path
