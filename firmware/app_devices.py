"""The doors to the hardware: the real drivers built, with one line saying why when they cannot
be (``build_hardware``, ``HardwareUnavailable``), the devices the bring-up tools (doctor,
hw-test) open, probe and close, and the simulated bench's control socket (``bench_command``).

Apart from the start sequence (``firmware.app``) because the command line reaches the hardware
through these without starting a controller.  Like the composition root, this module may name
HAL backends, only inside functions, so importing it loads none.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from firmware.settings import Settings

log = logging.getLogger("chargepoint")

BENCH_SOCKET = "bench.sock"


class HardwareUnavailable(Exception):
    """The configured hardware cannot be opened at start (no GPIO on this machine, no access to
    it, pins held by another process, a serial port missing): a startup error, exit 2."""


def build_hardware(hardware: Any, pin_factory: object | None = None) -> Any:
    """hal.assembly.Devices for ``hardware`` (hal.config.HardwareConfig); HardwareUnavailable."""
    import warnings

    from hal.assembly import build_devices

    # gpiozero warns once per pin library it could not load; they explain a failure, so they
    # go into its one line instead of onto stderr.
    with warnings.catch_warnings(record=True) as tried:
        warnings.simplefilter("always")
        try:
            return build_devices(hardware, pin_factory=pin_factory)
        except Exception as exc:  # noqa: BLE001 - whatever the driver library raises, one line
            reasons = "; ".join(str(w.message) for w in tried)
            raise HardwareUnavailable(
                f"cannot open the hardware ({type(exc).__name__}: {exc}"
                f"{f' {reasons}' if reasons else ''}); is this a Raspberry Pi, is this user in "
                "groups gpio and dialout, and is no other process (the service) holding the "
                "pins?"
            ) from exc
        finally:
            for w in tried:
                log.debug("while opening the hardware: %s", w.message)


async def bench_command(state_dir: Path, command: dict[str, Any]) -> dict[str, Any]:
    """One command to the simulated bench of ``state_dir`` (docs/bench.md): its answer;
    ConnectionError when no controller with a simulated bench runs there."""
    from hal.sim.control import send_command

    return await send_command(state_dir / BENCH_SOCKET, command)


# ------------------------------------------------------------------ bring-up tools
# firmware.cli.doctor and firmware.cli.hwtest reach hardware only through these (with
# firmware.app, the modules that name backends).


async def open_devices(
    settings: Settings, *, pin_factory: object | None = None
) -> tuple[Any, Any | None]:
    """(hal.assembly.Devices, SimulatedBench or None) as ``start`` builds them, outputs safe,
    without the card reader (its serial port is not ours to hold during a hardware test)."""
    from dataclasses import replace

    hardware = replace(settings.hardware, card_reader=None)
    if settings.hardware_kind == "simulated":
        from hal.sim.bench import SimulatedBench

        bench = SimulatedBench(hardware, settings.bench, settings.state_dir)
        devices = await bench.start()
        devices.safe_state()
        return devices, bench
    devices = build_hardware(hardware, pin_factory)
    devices.safe_state()
    return devices, None


async def close_devices(devices: Any, bench: Any | None) -> None:
    """Outputs safe, drivers closed, bench stopped."""
    try:
        await devices.close()
    finally:
        if bench is not None:
            await bench.stop()


async def probe_meter(meter: Any) -> dict[Any, Any]:
    """Read a meter (hal.config.MeterConfig) once; raises the bus error with its reason."""
    from hal.assembly import probe_meter as probe

    return await probe(meter)


async def probe_pilot(pilot: Any) -> Any:
    """Read a control pilot board (hal.config.PilotConfig) once; raises PilotFailure."""
    from hal.assembly import probe_pilot as probe

    return await probe(pilot)


__all__ = [
    "BENCH_SOCKET",
    "HardwareUnavailable",
    "bench_command",
    "build_hardware",
    "close_devices",
    "open_devices",
    "probe_meter",
    "probe_pilot",
]
