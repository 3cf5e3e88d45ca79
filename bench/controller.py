"""Run the controller as a Pi runs it (``hardware = "gpio"``, the real drivers) on gpiozero's
mock pin factory, with the wires of a charger and nothing else in its process:

    BENCH_WIRING='{...}' python -m bench.controller run --config pi-like.toml ...

The arguments after the module are ``python -m firmware``'s.  ``BENCH_WIRING`` (JSON, written
by ``bench.rig``) says what the copper does, event-driven (no thread, no polling: the figures of
this process stay the controller's):

* ``"levels": {pin: level}`` holds inputs at their healthy levels whatever pull the driver sets
  (RCD not tripped, emergency stop closed, mirror contact open, lock unlocked);
* ``"contactors": [[coil, mirror, coil_active_high, mirror_active_high]]``: the mirror contact
  follows the coil at once (``mirror`` may be null);
* ``"locks": [[lock_pin, unlock_pin, feedback, feedback_active_high]]``: the feedback switch
  follows the motor's last drive;
* ``"edges": PATH``: every change of a coil is appended there as ``PIN LEVEL T`` with ``T`` =
  ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process of the machine).

The mock pins keep no history (gpiozero's mock appends every change to a list, which would grow
the controller's memory with each LED fade step).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
from collections.abc import Callable
from typing import IO, Any


def install_wiring(spec: dict[str, Any]) -> Any:
    """Make gpiozero's default pin factory a mock one wired as ``spec`` says; returns it."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, PinState

    from hal.sim.pins import wired_pin_class

    on_change: dict[int, Callable[[float], None]] = {}

    wired: Any = wired_pin_class()  # made at run time: gpiozero is imported lazily

    class WiredPin(wired):
        def _change_state(self, value: float) -> bool:
            changed = bool(super()._change_state(value))
            if changed:
                self.states = [PinState(0.0, value)]
                action = on_change.get(id(self))
                if action is not None:
                    action(float(value))
            return changed

    factory = MockFactory(pin_class=WiredPin)
    Device.pin_factory = factory

    def hold(pin: int, level: bool) -> None:
        p = factory.pin(pin)
        p.wire = level
        p.drive_high() if level else p.drive_low()

    for pin, level in spec.get("levels", {}).items():
        hold(int(pin), bool(level))
    edges: IO[str] | None = None
    if spec.get("edges"):
        edges = open(spec["edges"], "a", buffering=1)  # noqa: SIM115 - lives with the process

    for coil, mirror, coil_high, mirror_high in spec.get("contactors", []):

        def follow(
            value: float,
            coil: int = coil,
            mirror: int | None = mirror,
            high: bool = coil_high,
            mirror_high: bool = mirror_high,
        ) -> None:
            closed = bool(value) == high
            if edges is not None:
                edges.write(f"{coil} {int(closed)} {time.monotonic():.6f}\n")
            if mirror is not None:
                hold(mirror, closed == mirror_high)

        on_change[id(factory.pin(coil))] = follow

    for lock_pin, unlock_pin, feedback, feedback_high in spec.get("locks", []):

        def drive(value: float, feedback: int = feedback, high: bool = feedback_high) -> None:
            if value:
                hold(feedback, high)

        def release(value: float, feedback: int = feedback, high: bool = feedback_high) -> None:
            if value:
                hold(feedback, not high)

        on_change[id(factory.pin(lock_pin))] = drive
        on_change[id(factory.pin(unlock_pin))] = release
    return factory


def main() -> None:
    install_wiring(json.loads(os.environ.get("BENCH_WIRING", "{}")))
    sys.argv = ["firmware", *sys.argv[1:]]
    runpy.run_module("firmware", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
