"""A charger as the benchmarks run it: a controller process with a Pi-like configuration, its
Modbus devices in another process (``bench.devices``), the bundled central system on 127.0.0.1
in the benchmark's process.

The configuration (``pi_like_config``) is config/pi.toml's with the real drivers' polling
rates: the control pilot read every 0.2 s (``firmware.connector_senses.PILOT_POLL_S``), the meter
every ``meter_poll_interval_s`` = 1.0 s, pilot and meter on one bus with pi.toml's quiet gap
(0.1 s), timeout (0.5 s) and retries (1), over Modbus TCP to ``bench.devices`` instead of RS-485.
GPIO: the real drivers on gpiozero's mock pin factory inside the controller (``bench.controller``:
event-driven wires, no thread; the mock costs about what lgpio's callbacks cost).  No card
reader (its serial port does not exist here): sessions start with RemoteStartTransaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import REPO
from centralsystem import CentralSystem
from centralsystem.records import MessageRecord

# Pins of config/pi.toml; a second connector gets its own.
CONNECTOR_PINS = {
    1: {"coil": 17, "mirror": 27, "lock": 5, "unlock": 6, "feedback": 13},
    2: {"coil": 19, "mirror": 26, "lock": 7, "unlock": 8, "feedback": 25},
}
RCD_PIN, ESTOP_PIN = 22, 23

# The seed's defaults (Monta, /work/shared/seed): what a central system sets on a charger.
MONTA_KEYS: dict[str, str | int | bool] = {
    "MeterValueSampleInterval": 180,
    "MeterValuesSampledData": "Energy.Active.Import.Register",
    "MeterValuesAlignedData": "Energy.Active.Import.Register",
    "ClockAlignedDataInterval": 0,
    "StopTxnSampledData": "",
    "StopTxnAlignedData": "",
    "ConnectionTimeOut": 180,
    "LocalPreAuthorize": False,
    "LocalAuthorizeOffline": True,
    "AuthorizationCacheEnabled": False,
    "AuthorizeRemoteTxRequests": True,
    "AllowOfflineTxForUnknownId": False,
    "StopTransactionOnInvalidId": True,
    "StopTransactionOnEVSideDisconnect": True,
    "UnlockConnectorOnEVSideDisconnect": True,
}


def _toml_value(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def pi_like_config(
    path: Path,
    modbus_port: int,
    connectors: int = 1,
    *,
    keys: Mapping[str, str | int | bool] | None = None,
    extra: str = "",
) -> Path:
    """Write the Pi-like configuration for ``connectors`` connectors whose devices answer on
    Modbus TCP ``127.0.0.1:modbus_port`` (``bench.devices`` unit ids); ``keys`` go to
    ``[ocpp_keys]``, ``extra`` (TOML) is appended."""
    from bench.devices import board_unit, meter_unit

    lines = [
        "[chargepoint]",
        'id = "BENCH-PI"',
        'csms_url = "ws://127.0.0.1:9/ocpp"',
        'hardware = "gpio"',
        'vendor = "PiChargepoint"',
        'model = "PiCharger"',
        'log_level = "WARNING"',
        "meter_poll_interval_s = 1.0",
        "",
        "[ocpp_keys]",
        *(f"{k} = {_toml_value(v)}" for k, v in (keys or {}).items()),
        "",
        "[safety]",
        f"residual_current_pin = {RCD_PIN}",
        "residual_current_active_high = true",
        f"emergency_stop_pin = {ESTOP_PIN}",
        "emergency_stop_healthy_high = false",
        "",
        "[indicator]",
        "red_pin = 16",
        "green_pin = 20",
        "blue_pin = 21",
        "",
        "[buzzer]",
        "pin = 12",
    ]
    bus = [
        'host = "127.0.0.1"',
        f"tcp_port = {modbus_port}",
        "quiet_gap_s = 0.1",
        "timeout_s = 0.5",
        "retries = 1",
    ]
    for n in range(1, connectors + 1):
        p = CONNECTOR_PINS[n]
        lines += [
            "",
            "[[connectors]]",
            'cable = "socket"',
            "max_current_a = 16.0",
            "[connectors.contactor]",
            f"pin = {p['coil']}",
            f"mirror_pin = {p['mirror']}",
            "[connectors.lock]",
            f"lock_pin = {p['lock']}",
            f"unlock_pin = {p['unlock']}",
            f"feedback_pin = {p['feedback']}",
            "pulse_s = 0.5",
            "settle_s = 0.1",
            "[connectors.pilot]",
            'kind = "evse-wb"',
            f"unit_id = {board_unit(n)}",
            *bus,
            "[connectors.meter]",
            'model = "SDM630"',
            f"unit_id = {meter_unit(n)}",
            *bus,
        ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def wiring(connectors: int, edges: Path | None) -> dict[str, Any]:
    """``bench.controller``'s BENCH_WIRING for ``pi_like_config``."""
    levels = {RCD_PIN: False, ESTOP_PIN: False}
    spec: dict[str, Any] = {"contactors": [], "locks": [], "edges": str(edges) if edges else None}
    for n in range(1, connectors + 1):
        p = CONNECTOR_PINS[n]
        levels[p["mirror"]] = False
        levels[p["feedback"]] = False
        spec["contactors"].append([p["coil"], p["mirror"], True, True])
        spec["locks"].append([p["lock"], p["unlock"], p["feedback"], True])
    spec["levels"] = levels
    return spec


def status_of(
    connector: int, status: str | None = None, cp_id: str | None = None
) -> Callable[[MessageRecord], bool]:
    """A predicate: a StatusNotification of ``connector`` (with ``status``, of ``cp_id``, if
    given)."""

    def matches(r: MessageRecord) -> bool:
        return (
            r.action == "StatusNotification"
            and (cp_id is None or r.cp_id == cp_id)
            and r.message_type == "CALL"
            and r.payload.get("connectorId") == connector
            and (status is None or r.payload.get("status") == status)
        )

    return matches


class DevicesProcess:
    """``bench.devices`` as a child process: ``command("plug 1")``; ``pilot_edges`` are the
    (connector, state, monotonic time) of every vehicle-state change."""

    def __init__(self, connectors: int) -> None:
        self.connectors = connectors
        self.port = 0
        self.pilot_edges: list[tuple[int, str, float]] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._acks: asyncio.Queue[str] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.devices",
            "--connectors",
            str(self.connectors),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=REPO,
        )
        assert self._proc.stdout is not None
        first = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        if not first.startswith(b"ready "):
            raise RuntimeError(f"bench.devices did not start: {first!r}")
        self.port = int(first.split()[1])
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := (await self._proc.stdout.readline()).decode():
            word, *rest = line.split()
            if word == "pilot":
                self.pilot_edges.append((int(rest[0]), rest[1], float(rest[2])))
            else:
                await self._acks.put(line.strip())

    async def command(self, line: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(line.encode() + b"\n")
        await self._proc.stdin.drain()
        ack = await asyncio.wait_for(self._acks.get(), 10)
        if not ack.startswith("ok"):
            raise RuntimeError(f"bench.devices: {line!r}: {ack}")

    async def stop(self) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(Exception):
            assert self._proc.stdin is not None
            self._proc.stdin.write(b"quit\n")
            await self._proc.stdin.drain()
        try:
            await asyncio.wait_for(self._proc.wait(), 10)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        if self._reader is not None:
            self._reader.cancel()


@dataclass
class Charger:
    """A running controller process on the rig."""

    cs: CentralSystem
    devices: DevicesProcess
    proc: subprocess.Popen[bytes]
    state_dir: Path
    edges: Path
    cp_id: str
    began: float  # time.monotonic() just before the process was started
    log: Path = field(default_factory=Path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def wait_booted(self, connectors: int, timeout: float = 60) -> float:
        """Seconds from process start to the BootNotification, once every connector has sent
        its first StatusNotification."""
        await self.cs.wait_for(
            lambda r: (
                r.action == "BootNotification"
                and r.message_type == "CALL"
                and r.cp_id == self.cp_id
            ),
            timeout=timeout,
        )
        booted = time.monotonic() - self.began
        for n in range(1, connectors + 1):
            await self.cs.wait_for(status_of(n, cp_id=self.cp_id), timeout)
        return booted

    async def start_session(self, connector: int, id_tag: str = "BENCH") -> None:
        """Plug, RemoteStartTransaction, the EV asks for power; returns once Charging."""
        from ocpp.v16 import call

        mark = self.cs.mark()
        await self.devices.command(f"plug {connector}")
        await self.cs.call(
            self.cp_id, call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector)
        )
        await self.devices.command(f"charge {connector}")
        await self.cs.wait_for(status_of(connector, "Charging", self.cp_id), timeout=30, since=mark)

    def contactor_edges(self, coil: int) -> list[tuple[bool, float]]:
        """(closed, monotonic time) of every change of the coil on ``coil``."""
        out = []
        if self.edges.exists():
            for line in self.edges.read_text().splitlines():
                pin, closed, at = line.split()
                if int(pin) == coil:
                    out.append((closed == "1", float(at)))
        return out


@contextlib.asynccontextmanager
async def charger(
    work: Path,
    connectors: int = 1,
    *,
    keys: Mapping[str, str | int | bool] | None = None,
    extra: str = "",
    cs: CentralSystem | None = None,
    devices: DevicesProcess | None = None,
    wrap: list[str] | None = None,
    boot_interval: int = 300,
    csms_url: str | None = None,
) -> AsyncIterator[Charger]:
    """A controller process on the rig in ``work`` (a fresh state directory each time); its
    devices process and central system are started unless given.  ``wrap`` prefixes the
    command (e.g. strace); ``csms_url`` replaces the central system's (a proxy in
    front of it).  Stops what it started."""
    async with contextlib.AsyncExitStack() as stack:
        if cs is None:
            cs = await stack.enter_async_context(
                CentralSystem(host="127.0.0.1", port=0, boot_interval=boot_interval)
            )
        if devices is None:
            devices = DevicesProcess(connectors)
            await devices.start()
            stack.push_async_callback(devices.stop)
        work.mkdir(parents=True, exist_ok=True)
        n = len(list(work.glob("state-*")))
        state = work / f"state-{n}"
        edges = work / f"edges-{n}.txt"
        config = pi_like_config(work / f"pi-like-{n}.toml", devices.port, connectors, keys=keys)
        if extra:
            config.write_text(config.read_text() + extra)
        cp_id = f"BENCH-{n}"
        env = {**os.environ, "BENCH_WIRING": json.dumps(wiring(connectors, edges))}
        log = work / f"controller-{n}.log"
        command = [
            *(wrap or []),
            sys.executable,
            "-m",
            "bench.controller",
            "run",
            "--config",
            str(config),
            "--csms-url",
            csms_url or cs.url,
            "--state-dir",
            str(state),
            "--id",
            cp_id,
            "--log-level",
            "WARNING",
        ]
        with log.open("wb") as out:
            began = time.monotonic()
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
            )
        ch = Charger(cs, devices, proc, state, edges, cp_id, began, log)
        try:
            yield ch
        finally:
            if wrap:  # the controller is the wrapper's child: stop it, then the wrapper ends
                _terminate_children(proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _terminate_children(pid: int) -> None:
    import signal

    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGTERM)
    time.sleep(1.0)


__all__ = [
    "CONNECTOR_PINS",
    "MONTA_KEYS",
    "Charger",
    "DevicesProcess",
    "charger",
    "pi_like_config",
    "wiring",
]
