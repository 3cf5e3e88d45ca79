"""The simulated bench's state as bench control shows it (``bench-status``, the tests' view).

One JSON-ready dict: per connector the EV (plugged, wants power, pilot state), the outputs
(contactor, the offered current, the lock motor), the lock, the meter and the faults injected;
then the grid meter, mains (with ``[power_fail]``), the RCD, and the indicator, buzzer and
display as the drivers left them.  Apart from ``hal.sim.bench`` because it only reads: the
bench drives the parts, this module reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hal.assembly import Devices
from hal.config import HardwareConfig
from hal.sim.grid import SimulatedGrid
from hal.sim.wiring import BenchWiring, SimConnector


def bench_status(
    connectors: Mapping[int, SimConnector],
    wiring: BenchWiring,
    *,
    hardware: HardwareConfig,
    grid: SimulatedGrid | None,
    mains: bool,
    devices: Devices | None,
) -> dict[str, Any]:
    """The state of ``connectors`` (keys: their ids as strings) and of the bench's other parts:
    "grid" with a grid meter, "power" with ``[power_fail]``, "safety" always, "indicator",
    "buzzer", "display" when the devices have them."""
    out: dict[str, Any] = {}
    for n, c in connectors.items():
        hw = c.hw
        out[str(n)] = {
            "ev": {
                "plugged": c.ev.plugged,
                "wants_power": c.ev.wants_power,
                "pilot": c.board.vehicle_state.value,
            },
            "outputs": {
                "contactor": wiring.output_on(hw.contactor.pin, hw.contactor.active_high),
                "pwm_offered_a": c.board.offered_a,
                "lock_motor": (
                    "locking"
                    if hw.lock and wiring.output_on(hw.lock.lock_pin)
                    else "unlocking"
                    if hw.lock and wiring.output_on(hw.lock.unlock_pin)
                    else "off"
                ),
            },
            "lock": None if hw.lock is None else ("locked" if c.locked else "unlocked"),
            "meter": {
                "energy_wh": round(c.meter.energy_import_wh or 0.0, 1),
                "power_w": round(c.meter.power_w or 0.0, 1),
                "responding": c.meter.responding,
            },
            "faults": [
                name
                for name, active in (
                    ("weld", c.weld),
                    ("lock", c.lock_stuck),
                    ("meter", not c.meter.responding),
                    ("diode", c.ev.diode_fault),
                )
                if active
            ],
        }
    if grid is not None:
        out["grid"] = grid.status()
    if hardware.power_fail is not None:
        out["power"] = {"mains": mains}
    s = hardware.safety
    out["safety"] = {
        "rcd_tripped": wiring.level(s.residual_current_pin) == s.residual_current_active_high
    }
    d = devices
    if d is not None and d.indicator is not None:
        colour = getattr(d.indicator, "colour", None)
        out["indicator"] = {
            "brightness": d.indicator.brightness,
            "colour": None if colour is None else [colour.red, colour.green, colour.blue],
            "pattern": getattr(getattr(d.indicator, "pattern", None), "value", None),
        }
    if d is not None and d.buzzer is not None:
        out["buzzer"] = {"enabled": d.buzzer.enabled, "volume": d.buzzer.volume}
    if d is not None and d.display is not None:
        out["display"] = {"brightness": d.display.brightness}
    return out


__all__ = ["bench_status"]
