"""Composition root: read the settings, pick ONE hardware backend, wire the tasks, run.

This is the only firmware module that names a HAL backend, and it imports them lazily so that a
Pi never loads the simulator and a test of the core never loads gpiozero or pymodbus.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.charger import Charger
from firmware.config_keys import KeyRegistry, default_registry
from firmware.connector import ConnectorController, ConnectorDevices
from firmware.settings import Settings

log = logging.getLogger("chargepoint")

BENCH_SOCKET = "bench.sock"


@dataclass
class Running:
    """A started controller, for the CLI, the demo and tests."""

    settings: Settings
    keys: KeyRegistry
    charger: Charger
    session: Any  # firmware.ocpp.session.OcppSession
    devices: Any  # hal.assembly.Devices
    bench: Any | None  # hal.sim.bench.SimulatedBench when simulated
    stop: asyncio.Event
    reset_requested: bool | None = None  # None, or True for hard / False for soft


def build_keys(settings: Settings) -> KeyRegistry:
    tethered = any(c.tethered for c in settings.hardware.connectors)
    keys = default_registry(len(settings.hardware.connectors), tethered)
    keys.apply_file_overrides(settings.ocpp_keys)
    return keys


async def start(settings: Settings) -> Running:
    """Build everything and start the tasks; returns once the controller runs."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    keys = build_keys(settings)
    bench = None
    if settings.hardware_kind == "simulated":
        from hal.sim.bench import SimulatedBench

        log.warning("SIMULATED BENCH: no real hardware is driven (hardware = \"simulated\")")
        bench = SimulatedBench(settings.hardware, settings.bench, settings.state_dir)
        devices = await bench.start()
    else:
        from hal.assembly import build_devices

        devices = build_devices(settings.hardware)
    devices.safe_state()

    from firmware.ocpp.session import OcppSession

    stop = asyncio.Event()
    session = OcppSession(
        url=settings.url, charge_point_id=settings.charge_point_id, keys=keys,
        control=None,  # type: ignore[arg-type]  # set below: the charger needs the session too
        boot_fields=_boot_fields(settings),
    )
    connectors = [
        ConnectorController(
            c.connector_id,
            ConnectorDevices(c.pilot, c.contactor, c.meter, c.lock, c.max_current_a),
            session, keys, meter_poll_s=settings.meter_poll_interval_s)
        for c in devices.connectors
    ]
    running = Running(settings, keys, None, session, devices, bench, stop)  # type: ignore[arg-type]

    def on_reset(hard: bool) -> None:
        running.reset_requested = hard
        # Give the StopTransactions a moment to leave before the process restarts.
        asyncio.get_running_loop().create_task(_stop_after_outbox(running))

    charger = Charger(connectors, session, keys, indicator=devices.indicator,
                      buzzer=devices.buzzer, safety=devices.safety,
                      card_reader=devices.card_reader, on_reset=on_reset)
    session.control = charger
    running.charger = charger
    tasks = [asyncio.create_task(session.run(), name="ocpp-session"),
             asyncio.create_task(charger.run(), name="charger")]
    if bench is not None:
        from hal.sim.control import BenchControlServer

        server = BenchControlServer(settings.state_dir / BENCH_SOCKET, bench,
                                    status=charger.status)
        await server.start()
        bench.control_server = server
    running._tasks = tasks  # type: ignore[attr-defined]
    for task in tasks:
        task.add_done_callback(lambda t: _crashed(t, stop))
    return running


def _crashed(task: asyncio.Task[Any], stop: asyncio.Event) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.critical("task %s crashed: %r", task.get_name(), exc, exc_info=exc)
        stop.set()


async def _stop_after_outbox(running: Running) -> None:
    await asyncio.sleep(0.5)
    await running.session.wait_outbox_empty(timeout=10)
    running.stop.set()


async def shutdown(running: Running) -> None:
    """Outputs safe first, then tasks, then devices."""
    running.devices.safe_state()
    with suppress(Exception):
        await running.charger.shutdown()
    for task in getattr(running, "_tasks", []):
        task.cancel()
    await asyncio.gather(*getattr(running, "_tasks", []), return_exceptions=True)
    if running.bench is not None:
        server = getattr(running.bench, "control_server", None)
        if server is not None:
            await server.stop()
    await running.devices.close()
    if running.bench is not None:
        await running.bench.stop()


async def run(settings: Settings) -> int:
    """The daemon: runs until SIGTERM/SIGINT or a Reset; returns the exit status."""
    running = await start(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, running.stop.set)
    try:
        await running.stop.wait()
    finally:
        await shutdown(running)
    if running.reset_requested is not None:
        log.info("%s reset: exiting so that the service manager restarts us",
                 "hard" if running.reset_requested else "soft")
        return 3
    return 0


def _boot_fields(settings: Settings) -> dict[str, str]:
    fields = {"charge_point_vendor": settings.vendor, "charge_point_model": settings.model,
              "firmware_version": settings.firmware_version}
    if settings.serial_number:
        fields["charge_point_serial_number"] = settings.serial_number
    return fields


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # pymodbus dumps its frame ring buffer on every timeout; our drivers log failures once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("ocpp").setLevel(logging.WARNING)


async def bench_command(state_dir: Path, command: dict[str, Any]) -> dict[str, Any]:
    from hal.sim.control import send_command

    return await send_command(state_dir / BENCH_SOCKET, command)


__all__ = ["Running", "start", "shutdown", "run", "build_keys", "bench_command",
           "setup_logging", "Callable"]
