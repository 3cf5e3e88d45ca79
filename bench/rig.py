"""A charger as the benchmarks run it: a controller process with a Pi-like configuration, its
Modbus devices in another process (``bench.devices``), the bundled central system on 127.0.0.1
in the benchmark's process.

The configuration (``pi_like``) is config/pi.toml as it is in this checkout, so the real
drivers' polling rates and bus settings are the shipped ones (``poll_rates`` names them: the
firmware's pilot and meter periods and the file's ``meter_poll_interval_s``; pilot and meter
share one bus with pi.toml's quiet gap, timeout and retries), with three changes: the bus is
Modbus TCP to ``bench.devices`` instead of RS-485, there is no card reader (its serial port does
not exist here: sessions start with RemoteStartTransaction), and a second connector, when asked
for, is a copy of the first on other pins. GPIO: the real drivers on gpiozero's mock pin factory
inside the controller (``bench.controller``: event-driven wires, no thread)."""

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

PI_TOML = REPO / "config" / "pi.toml"
# A second connector's pins (config/pi.toml has one connector).
SECOND_CONNECTOR_PINS = {
    "contactor": {"pin": 19, "mirror_pin": 26},
    "lock": {"lock_pin": 7, "unlock_pin": 8, "feedback_pin": 25},
}

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


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def _toml(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """``data`` as TOML (scalars, lists of scalars, tables, arrays of tables)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not _is_table(v)]
    for k, v in data.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            lines += ["", f"[{name}]", *_toml(v, f"{name}.")]
        elif _is_table(v):
            for item in v:
                lines += ["", f"[[{name}]]", *_toml(item, f"{name}.")]
    return lines


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


POLL_NAMES = ("PILOT_POLL_S", "PILOT_IDLE_POLL_S", "METER_IDLE_POLL_S")


def poll_rates() -> str:
    """The polling periods in force, read by name (``firmware.connector_senses`` constants
    that exist in this checkout, and pi.toml's ``meter_poll_interval_s``), for a table note."""
    import tomllib

    from firmware import connector_senses

    found = [
        f"{name} {getattr(connector_senses, name):g} s"
        for name in POLL_NAMES
        if hasattr(connector_senses, name)
    ]
    meter = tomllib.loads(PI_TOML.read_text())["chargepoint"].get("meter_poll_interval_s")
    if meter is not None:
        found.append(f"meter_poll_interval_s {meter:g} s")
    return ", ".join(found)


def pi_like(
    modbus_port: int,
    connectors: int = 1,
    keys: Mapping[str, str | int | bool] | None = None,
) -> dict[str, Any]:
    """config/pi.toml as read now, for ``connectors`` connectors (the second one a copy of the
    first on ``SECOND_CONNECTOR_PINS``) whose pilot and meter answer on Modbus TCP
    ``127.0.0.1:modbus_port`` (``bench.devices`` unit ids) with the file's bus settings, no
    card reader (its serial port does not exist here), ``keys`` in ``[ocpp_keys]``."""
    import copy
    import tomllib

    from bench.devices import board_unit, meter_unit

    config: dict[str, Any] = tomllib.loads(PI_TOML.read_text())
    config["chargepoint"].update(
        id="BENCH-PI", csms_url="ws://127.0.0.1:9/ocpp", log_level="WARNING"
    )
    config.pop("card_reader", None)
    config["ocpp_keys"] = {**config.get("ocpp_keys", {}), **(keys or {})}
    first = config["connectors"][0]
    config["connectors"] = [first]
    if connectors > 1:
        second = copy.deepcopy(first)
        for table, pins in SECOND_CONNECTOR_PINS.items():
            if table in second:
                second[table].update(pins)
        config["connectors"].append(second)
    for n, connector in enumerate(config["connectors"], start=1):
        for role, unit in (("pilot", board_unit(n)), ("meter", meter_unit(n))):
            bus = connector[role]
            bus.pop("port", None)
            bus.update(host="127.0.0.1", tcp_port=modbus_port, unit_id=unit)
    return config


def pi_like_config(
    path: Path,
    modbus_port: int,
    connectors: int = 1,
    *,
    keys: Mapping[str, str | int | bool] | None = None,
) -> dict[str, Any]:
    """Write ``pi_like(...)`` to ``path``; returns it."""
    config = pi_like(modbus_port, connectors, keys)
    path.write_text("\n".join(_toml(config)) + "\n")
    return config


def wiring(config: Mapping[str, Any], edges: Path | None) -> dict[str, Any]:
    """``bench.controller``'s BENCH_WIRING for ``config`` (a ``pi_like`` dict): inputs at
    their healthy levels, mirrors following coils, lock feedback following the motor."""
    safety = config["safety"]
    levels = {
        int(safety["residual_current_pin"]): not safety.get("residual_current_active_high", True)
    }
    if "emergency_stop_pin" in safety:
        levels[int(safety["emergency_stop_pin"])] = bool(
            safety.get("emergency_stop_healthy_high", False)
        )
    spec: dict[str, Any] = {"contactors": [], "locks": [], "edges": str(edges) if edges else None}
    for connector in config["connectors"]:
        c = connector["contactor"]
        mirror, mirror_high = c.get("mirror_pin"), c.get("mirror_active_high", True)
        if mirror is not None:
            levels[int(mirror)] = not mirror_high  # open
        spec["contactors"].append([c["pin"], mirror, c.get("active_high", True), mirror_high])
        lock = connector.get("lock")
        if lock is not None:
            high = lock.get("feedback_active_high", True)
            levels[int(lock["feedback_pin"])] = not high  # unlocked
            spec["locks"].append([lock["lock_pin"], lock["unlock_pin"], lock["feedback_pin"], high])
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
    config: dict[str, Any]  # its configuration file, as read (``pi_like``)
    log: Path = field(default_factory=Path)
    since: int = 0  # the central system's mark when the process was started

    def coil(self, connector: int = 1) -> int:
        """The BCM pin of ``connector``'s contactor coil."""
        return int(self.config["connectors"][connector - 1]["contactor"]["pin"])

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
            since=self.since,
        )
        booted = time.monotonic() - self.began
        for n in range(1, connectors + 1):
            await self.cs.wait_for(status_of(n, cp_id=self.cp_id), timeout, since=self.since)
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
    cs: CentralSystem | None = None,
    devices: DevicesProcess | None = None,
    wrap: list[str] | None = None,
    boot_interval: int = 300,
    csms_url: str | None = None,
    state_dir: Path | None = None,
) -> AsyncIterator[Charger]:
    """A controller process on the rig in ``work`` (a fresh state directory each time); its
    devices process and central system are started unless given.  ``wrap`` prefixes the
    command (e.g. strace); ``csms_url`` replaces the central system's (a proxy in
    front of it); ``state_dir``: an earlier controller's (a restart), else a fresh one.
    Stops what it started."""
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
        n = len(list(work.glob("pi-like-*.toml")))
        state = state_dir or work / f"state-{n}"
        edges = work / f"edges-{n}.txt"
        config_path = work / f"pi-like-{n}.toml"
        config = pi_like_config(config_path, devices.port, connectors, keys=keys)
        cp_id = f"BENCH-{n}"
        env = {**os.environ, "BENCH_WIRING": json.dumps(wiring(config, edges))}
        log = work / f"controller-{n}.log"
        command = [
            *(wrap or []),
            sys.executable,
            "-m",
            "bench.controller",
            "run",
            "--config",
            str(config_path),
            "--csms-url",
            csms_url or cs.url,
            "--state-dir",
            str(state),
            "--id",
            cp_id,
            "--log-level",
            "WARNING",
        ]
        since = cs.mark()
        with log.open("wb") as out:
            began = time.monotonic()
            proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=env
            )
        ch = Charger(cs, devices, proc, state, edges, cp_id, began, config, log, since)
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
    "SECOND_CONNECTOR_PINS",
    "MONTA_KEYS",
    "Charger",
    "DevicesProcess",
    "charger",
    "poll_rates",
    "pi_like",
    "pi_like_config",
    "wiring",
]
