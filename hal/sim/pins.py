"""gpiozero's mock pin with a wire, alone in a module of its own: the benchmarks' controller
process (bench/controller.py) uses it without loading the bench's Modbus servers and physics."""

from __future__ import annotations


def wired_pin_class() -> type:
    """gpiozero's mock pin plus a wire: a switch or module output that holds an input at a level
    whatever pull resistor the driver configures (the plain mock lets the pull win, which would
    make a closed NC emergency stop read as pressed)."""
    from gpiozero.pins.mock import MockPWMPin

    class WiredPin(MockPWMPin):
        wire: bool | None = None

        def _set_pull(self, value: str) -> None:
            super()._set_pull(value)
            if self.wire is not None:
                self.drive_high() if self.wire else self.drive_low()

    return WiredPin


__all__ = ["wired_pin_class"]
