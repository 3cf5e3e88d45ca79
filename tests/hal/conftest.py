"""Modbus fixtures only (simulated pymodbus servers, socat pty pairs, the bus registry).

GPIO tests keep their fixtures in their own files."""

from __future__ import annotations

import selectors
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
import pytest_asyncio

from hal.modbus.bus import close_all_buses
from hal.modbus.server import RegisterDevice
from hal.sim.modbus_devices import SimulatedModbusServer


@pytest_asyncio.fixture
async def modbus_server_factory() -> AsyncIterator[Callable[..., SimulatedModbusServer]]:
    """``make(*devices) -> SimulatedModbusServer`` (not started).  At teardown every server made
    is stopped and the Modbus bus registry is closed, so no client or server outlives the test's
    event loop."""
    servers: list[SimulatedModbusServer] = []

    def make(*devices: RegisterDevice) -> SimulatedModbusServer:
        server = SimulatedModbusServer(devices)
        servers.append(server)
        return server

    yield make
    await close_all_buses()
    for server in servers:
        await server.stop()


@pytest.fixture
def modbus_pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: (server end, client end) paths.

    A null-modem cable for Modbus RTU tests; ptys ignore the baud rate."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed")
    server_end, client_end = str(tmp_path / "ttyModbusServer"), str(tmp_path / "ttyModbusClient")
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={server_end}", f"pty,raw,echo=0,link={client_end}"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 5.0
        seen = b""
        while b"starting data transfer loop" not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                pytest.fail(f"socat did not start: {seen.decode(errors='replace')}")
            if selector.select(timeout=remaining):
                seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
        selector.close()
        yield server_end, client_end
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """gpiozero's mock pin factory with PWM-capable pins, for the gpio driver tests; tests
    assert the pins' recorded history (``pin.states``)."""
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()
    f.close()
