"""One owner per Modbus bus: the only module of the project that imports pymodbus client code.

pymodbus renames keywords in nearly every minor release (``unit`` -> ``slave`` -> ``device_id``,
``FramerType``, keyword-only arguments); keeping every client call here confines that churn to one
file.  Pinned: pymodbus 3.16.1.

A ``ModbusBus`` serialises all requests to one endpoint (an RS-485 line or a TCP gateway) with an
asyncio lock, keeps a quiet gap between the end of one request and the start of the next (many
meters need >= 100 ms), passes an explicit timeout and retry count to pymodbus (its defaults,
3 s x 3 retries, block a dead meter's poll for 12 s), and (re)connects lazily on the next request
after any error.  Every failure is raised as ``BusError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from hal.config import ModbusEndpoint
from hal.timing import SYSTEM_CLOCK, Clock
from hal.types import ConfigurationError

logger = logging.getLogger(__name__)

EXCEPTION_NAMES: dict[int, str] = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}

FC_READ_HOLDING = 3
FC_READ_INPUT = 4
FC_WRITE_MULTIPLE = 16


def quiet_pymodbus_logging(level: int = logging.CRITICAL) -> None:
    """Stop pymodbus dumping its frame ring buffer at WARNING/ERROR on every timeout.

    Left alone when someone set the "pymodbus" logger's level on purpose (e.g. to debug)."""
    pymodbus_logger = logging.getLogger("pymodbus")
    if pymodbus_logger.level == logging.NOTSET:
        pymodbus_logger.setLevel(level)


# --------------------------------------------------------------------------------------------------
# Errors


class BusError(Exception):
    """A Modbus request failed.  Subclasses say how; every one carries where it failed.

    ``endpoint`` is ``ModbusEndpoint.key``; ``function_code`` the Modbus function (3, 4, 16...);
    ``exception_code`` the code of an exception response (None for other failures)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str,
        unit: int,
        function_code: int,
        address: int,
        count: int,
        exception_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.unit = unit
        self.function_code = function_code
        self.address = address
        self.count = count
        self.exception_code = exception_code


class BusTimeout(BusError):
    """No (valid) answer within timeout x (1 + retries): a dead or mis-addressed device."""


class BusExceptionResponse(BusError):
    """The device answered with a Modbus exception (``exception_code``)."""


class BusDisconnected(BusError):
    """The serial port could not be opened, or the TCP connection failed or dropped."""


# --------------------------------------------------------------------------------------------------
# The bus owner


_Client = AsyncModbusTcpClient | AsyncModbusSerialClient


class ModbusBus:
    """The single owner of one Modbus endpoint (use ``bus_for`` to share it between devices).

    Methods are coroutines for the event loop the bus is used on; requests from several tasks or
    devices queue on the lock, so they never overlap on the wire.  ``clock`` times the quiet
    gap (tests pass ``hal.sim.clock.SimulatedClock``).
    """

    def __init__(self, endpoint: ModbusEndpoint, *, clock: Clock = SYSTEM_CLOCK) -> None:
        quiet_pymodbus_logging()
        self._endpoint = endpoint
        self._clock = clock
        self._client: _Client | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_end: float | None = None  # clock time when the last request finished
        self._users = 0
        self.requests = 0  # requests sent (for diagnostics)
        self.failures = 0  # of which failed

    def __repr__(self) -> str:
        return f"ModbusBus({self._endpoint.key})"

    @property
    def endpoint(self) -> ModbusEndpoint:
        return self._endpoint

    @property
    def key(self) -> str:
        return self._endpoint.key

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # --- public requests -------------------------------------------------------------------------

    async def read_holding_registers(self, unit: int, address: int, count: int) -> list[int]:
        """FC3: ``count`` registers (ints 0..0xFFFF) from ``address`` of device ``unit``."""
        return await self.read_registers(FC_READ_HOLDING, unit, address, count)

    async def read_input_registers(self, unit: int, address: int, count: int) -> list[int]:
        """FC4: ``count`` input registers (ints 0..0xFFFF) from ``address`` of device ``unit``."""
        return await self.read_registers(FC_READ_INPUT, unit, address, count)

    async def read_registers(
        self, function_code: int, unit: int, address: int, count: int
    ) -> list[int]:
        """FC3 or FC4 by ``function_code``.  Raises ``BusError``."""
        if function_code not in (FC_READ_HOLDING, FC_READ_INPUT):
            raise ValueError(f"function code {function_code} is not a register read (3 or 4)")
        if not 1 <= count <= 125:
            raise ValueError(f"cannot read {count} registers in one request (1..125)")

        def call(client: _Client) -> Awaitable[Any]:
            if function_code == FC_READ_HOLDING:
                return client.read_holding_registers(address, count=count, device_id=unit)
            return client.read_input_registers(address, count=count, device_id=unit)

        response = await self._request(function_code, unit, address, count, call)
        registers = list(response.registers)
        if len(registers) != count:
            raise self._error(
                BusError,
                f"answered {len(registers)} registers, not {count}",
                function_code,
                unit,
                address,
                count,
            )
        return registers

    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        """FC16: write ``values`` (ints 0..0xFFFF) from ``address`` of device ``unit``."""
        values = list(values)
        if not 1 <= len(values) <= 123:
            raise ValueError(f"cannot write {len(values)} registers in one request (1..123)")
        for value in values:
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"register value {value!r} outside 0..0xFFFF")

        def call(client: _Client) -> Awaitable[Any]:
            return client.write_registers(address, values, device_id=unit)

        await self._request(FC_WRITE_MULTIPLE, unit, address, len(values), call)

    # --- lifetime --------------------------------------------------------------------------------

    async def close(self) -> None:
        """Close the connection (the next request reconnects)."""
        self._drop_client()

    def acquire(self) -> None:
        """One more device uses the bus (``bus_for`` counts each caller; ``release`` undoes)."""
        self._users += 1

    async def release(self) -> None:
        """A device obtained from ``bus_for`` no longer needs the bus; the last one closes it."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            await self.close()
            if _REGISTRY.get(self.key) is self:
                del _REGISTRY[self.key]

    # --- internals -------------------------------------------------------------------------------

    def _bind_loop(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._lock is None:
            # A pymodbus client and an asyncio.Lock belong to one event loop; a bus kept in the
            # registry can outlive one (tests, restarts), so start afresh on the new loop.
            self._drop_client()
            self._lock = asyncio.Lock()
            self._loop = loop
            self._last_end = None
        return self._lock

    def _make_client(self) -> _Client:
        ep = self._endpoint
        # reconnect_delay=0: no background reconnect task; this class reconnects on demand.
        if ep.port is not None:
            return AsyncModbusSerialClient(
                ep.port,
                framer=FramerType.RTU,
                baudrate=ep.baudrate,
                bytesize=8,
                parity=ep.parity,
                stopbits=ep.stopbits,
                timeout=ep.timeout_s,
                retries=ep.retries,
                reconnect_delay=0,
            )
        assert ep.host is not None
        return AsyncModbusTcpClient(
            ep.host,
            port=ep.tcp_port,
            timeout=ep.timeout_s,
            retries=ep.retries,
            reconnect_delay=0,
        )

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a client of a dead loop may fail; nothing to do about it
                logger.debug("closing the Modbus client of %s failed", self.key, exc_info=True)

    def _error(
        self,
        kind: type[BusError],
        what: str,
        function_code: int,
        unit: int,
        address: int,
        count: int,
        exception_code: int | None = None,
    ) -> BusError:
        message = (
            f"Modbus {self.key} unit {unit} FC{function_code} address {address} "
            f"(count {count}): {what}"
        )
        return kind(
            message,
            endpoint=self.key,
            unit=unit,
            function_code=function_code,
            address=address,
            count=count,
            exception_code=exception_code,
        )

    async def _request(
        self,
        function_code: int,
        unit: int,
        address: int,
        count: int,
        call: Callable[[_Client], Awaitable[Any]],
    ) -> Any:
        ep = self._endpoint
        lock = self._bind_loop()
        async with lock:
            if self._last_end is not None:
                wait = ep.quiet_gap_s - (self._clock.monotonic() - self._last_end)
                if wait > 0:
                    await self._clock.sleep(wait)
            self.requests += 1
            try:
                return await self._request_locked(function_code, unit, address, count, call)
            except BusError:
                self.failures += 1
                raise
            finally:
                self._last_end = self._clock.monotonic()

    async def _request_locked(
        self,
        function_code: int,
        unit: int,
        address: int,
        count: int,
        call: Callable[[_Client], Awaitable[Any]],
    ) -> Any:
        ep = self._endpoint
        args = (function_code, unit, address, count)
        if self._client is None:
            self._client = self._make_client()
        client = self._client
        if not client.connected:
            try:
                ok = await client.connect()
            except (OSError, ModbusException) as exc:
                ok = False
                reason = f": {exc}"
            else:
                reason = ""
            if not ok:
                self._drop_client()
                where = ep.port if ep.port is not None else f"{ep.host}:{ep.tcp_port}"
                raise self._error(BusDisconnected, f"cannot connect to {where}{reason}", *args)
        # pymodbus enforces timeout per attempt; this outer bound only guards against a hang in
        # the library itself (it should never fire).
        hard_limit = ep.timeout_s * (ep.retries + 2) + 1.0
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        try:
            async with asyncio.timeout(hard_limit):
                response = await call(client)
        except ModbusIOException as exc:
            # Mostly "no response received"; also a reply from the wrong unit.
            raise self._error(
                BusTimeout,
                f"no valid answer within {ep.timeout_s:g} s x {ep.retries + 1} attempts ({exc})",
                *args,
            ) from exc
        except TimeoutError as exc:
            self._drop_client()
            raise self._error(BusTimeout, f"request hung for {hard_limit:g} s", *args) from exc
        except ConnectionException as exc:
            self._drop_client()
            raise self._error(BusDisconnected, f"connection lost ({exc})", *args) from exc
        except (ModbusException, OSError) as exc:
            self._drop_client()
            raise self._error(BusError, f"{type(exc).__name__}: {exc}", *args) from exc
        if task is not None and task.cancelling() > cancels:
            # Python 3.11's asyncio.wait_for, with which pymodbus awaits its answers, returns an
            # answer that arrived together with a cancellation of this task and drops the
            # cancellation (gh-86296).  Honour it here, for every poller at once: a daemon's
            # stop cancels them and waits.  Only a cancellation that came during this request:
            # a cancelled task's clean-up (a last write) still gets its answer.
            raise asyncio.CancelledError
        if response is None:
            raise self._error(BusError, "no response object", *args)
        if response.isError():
            code = getattr(response, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, "unknown") if code is not None else "unknown"
            raise self._error(
                BusExceptionResponse, f"exception response {code} ({name})", *args, code
            )
        return response


# --------------------------------------------------------------------------------------------------
# Registry: one owner per endpoint

_REGISTRY: dict[str, ModbusBus] = {}


def bus_for(endpoint: ModbusEndpoint) -> ModbusBus:
    """The shared owner of ``endpoint`` (created on first use; keyed by ``endpoint.key``).

    Each call counts as one user; a device calls ``await bus.release()`` when it closes.
    ConfigurationError when the same bus is configured twice with different settings (e.g. two
    baud rates on one serial port)."""
    bus = _REGISTRY.get(endpoint.key)
    if bus is None:
        bus = _REGISTRY[endpoint.key] = ModbusBus(endpoint)
    elif bus.endpoint != endpoint:
        raise ConfigurationError(
            f"Modbus bus {endpoint.key} is configured twice with different settings: "
            f"{bus.endpoint} and {endpoint}"
        )
    bus.acquire()
    return bus


def open_buses() -> list[ModbusBus]:
    """Every bus in the registry (diagnostics and tests)."""
    return list(_REGISTRY.values())


async def close_all_buses() -> None:
    """Close every bus and empty the registry (shutdown, and between tests)."""
    buses = list(_REGISTRY.values())
    _REGISTRY.clear()
    for bus in buses:
        await bus.close()
