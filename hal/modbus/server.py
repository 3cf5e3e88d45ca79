"""A real pymodbus server (TCP or RTU) in front of simulated devices written in plain Python.

With ``hal.modbus.bus`` this is the only module that imports pymodbus; ``hal.sim`` builds its
simulated meter and EVSE board on the small ``RegisterDevice`` interface below, so it never sees a
pymodbus name.

How it uses pymodbus 3.16.1 (the SimData/SimDevice API; the old datastore classes log deprecation
warnings): every device is a ``SimDevice`` whose one shared block covers the whole address space,
and whose ``action`` hook (run on every access) asks the Python device for the registers, passes
writes on, or answers an exception code.  A device that is not responding raises
``NoSuchIdException`` from the hook, which the server (``ignore_missing_devices=True``) turns into
silence, like a dead RS-485 meter.  A catch-all device id 0 does the same for unknown unit ids
(without it 3.16.1 answers them with exception 4 after a ``KeyError`` traceback).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hal.modbus.bus import quiet_pymodbus_logging

logger = logging.getLogger(__name__)

# Modbus exception codes a simulated device may answer with.
ILLEGAL_FUNCTION = 1
ILLEGAL_ADDRESS = 2
ILLEGAL_VALUE = 3
DEVICE_FAILURE = 4

TABLE_HOLDING = 3  # holding registers (FC3 read, FC6/FC16 write)
TABLE_INPUT = 4  # input registers (FC4 read)


class DeviceException(Exception):
    """Raised by a simulated device to answer with Modbus exception ``code``."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or f"Modbus exception {code}")
        self.code = code


@runtime_checkable
class RegisterDevice(Protocol):
    """A simulated Modbus device (one unit id) as plain Python."""

    @property
    def unit_id(self) -> int:
        """1..247."""

    @property
    def responding(self) -> bool:
        """False: requests get no answer at all (a dead or unpowered device)."""

    def read_registers(self, table: int, address: int, count: int) -> list[int]:
        """``count`` registers (0..0xFFFF) of ``table`` (TABLE_HOLDING / TABLE_INPUT) from
        ``address``.  Raise ``DeviceException`` to answer with an exception code."""

    def write_registers(self, address: int, values: list[int]) -> None:
        """FC6/FC16 write of holding registers.  Raise ``DeviceException`` to refuse."""


@dataclass(frozen=True)
class ServedRequest:
    """One request that reached a simulated device.  ``time`` is ``time.monotonic()`` when it
    arrived; ``answered`` False when the device was not responding."""

    time: float
    unit: int
    function_code: int
    address: int
    count: int
    answered: bool


# The hook signature pymodbus calls: (fc, block start, address, count, registers, values).
_READ_TABLE = {3: TABLE_HOLDING, 4: TABLE_INPUT, 6: TABLE_HOLDING, 16: TABLE_HOLDING}


class RegisterServer:
    """A pymodbus server for several ``RegisterDevice`` (one per unit id) on one TCP port or one
    serial port.  Add devices before ``start_*``; start and stop as often as needed (a stopped
    server does not answer at all, and a TCP client sees its connection closed)."""

    def __init__(self, devices: Iterable[RegisterDevice] = ()) -> None:
        quiet_pymodbus_logging()
        self._devices: dict[int, RegisterDevice] = {}
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._tcp_port: int | None = None
        self.requests: list[ServedRequest] = []
        for device in devices:
            self.add(device)

    @property
    def devices(self) -> dict[int, RegisterDevice]:
        return dict(self._devices)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def tcp_port(self) -> int | None:
        """The bound TCP port while serving TCP (also after a start with port 0)."""
        return self._tcp_port if self._server is not None else None

    def add(self, device: RegisterDevice) -> None:
        if self._server is not None:
            raise RuntimeError("add devices before starting the server (or stop it first)")
        if not 1 <= device.unit_id <= 247:
            raise ValueError(f"unit id {device.unit_id} outside 1..247")
        if device.unit_id in self._devices:
            raise ValueError(f"two devices with unit id {device.unit_id}")
        self._devices[device.unit_id] = device

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve on ``host:port`` (0: any free port); returns the bound port."""
        self._check_stopped()
        server = ModbusTcpServer(
            self._sim_devices(), address=(host, port), ignore_missing_devices=True
        )
        await server.serve_forever(background=True)
        self._server = server
        transport = server.transport
        sockets = getattr(transport, "sockets", None)
        self._tcp_port = int(sockets[0].getsockname()[1]) if sockets else port
        return self._tcp_port

    async def start_rtu(
        self, port: str, *, baudrate: int = 9600, parity: str = "N", stopbits: int = 1
    ) -> None:
        """Serve Modbus RTU on the serial device ``port`` (e.g. one end of a socat pty pair)."""
        self._check_stopped()
        server = ModbusSerialServer(
            self._sim_devices(),
            framer=FramerType.RTU,
            port=port,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=8,
            ignore_missing_devices=True,
        )
        await server.serve_forever(background=True)
        self._server = server
        self._tcp_port = None

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()

    def set_responding(self, responding: bool) -> None:
        """Make every device answer or fall silent (see each device's own ``set_responding``)."""
        for device in self._devices.values():
            setter = getattr(device, "set_responding", None)
            if setter is None:
                raise TypeError(f"{device!r} has no set_responding()")
            setter(responding)

    # --- internals -------------------------------------------------------------------------------

    def _check_stopped(self) -> None:
        if self._server is not None:
            raise RuntimeError("server already running")
        if not self._devices:
            raise RuntimeError("no devices to serve")

    def _sim_devices(self) -> list[SimDevice]:
        devices = [self._sim_device(0, None)]
        devices += [self._sim_device(uid, dev) for uid, dev in sorted(self._devices.items())]
        return devices

    def _sim_device(self, unit_id: int, device: RegisterDevice | None) -> SimDevice:
        requests = self.requests

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if device is None:
                raise NoSuchIdException(f"no simulated device with unit id {unit_id}")
            answered = device.responding
            requests.append(
                ServedRequest(time.monotonic(), unit_id, function_code, address, count, answered)
            )
            if not answered:
                # ignore_missing_devices=True: the server sends nothing, the client times out.
                raise NoSuchIdException(f"simulated device {unit_id} is not responding")
            try:
                if values is not None and function_code in (6, 16):
                    device.write_registers(address, [int(v) for v in values])
                    return None
                table = _READ_TABLE.get(function_code)
                if table is None:
                    return ExcCodes.ILLEGAL_FUNCTION
                words = device.read_registers(table, address, count)
                if len(words) != count or any(not 0 <= w <= 0xFFFF for w in words):
                    raise ValueError(f"device returned bad registers {words!r}")
                offset = address - start_address
                registers[offset : offset + count] = words
                return None
            except DeviceException as exc:
                return ExcCodes(exc.code)
            except Exception:
                # pymodbus would log this at ERROR, which the quietened pymodbus logger hides.
                logger.exception(
                    "simulated device %d failed on FC%d %d", unit_id, function_code, address
                )
                return ExcCodes.DEVICE_FAILURE

        # One block over the whole address space: the hook, not pymodbus, decides which
        # addresses exist, so a silent device stays silent at every address.
        block = SimData(0, count=0x10000, values=0, datatype=DataType.REGISTERS)
        return SimDevice(id=unit_id, simdata=[block], action=action)
