"""The simulated bench's wiring and physics: what happens on the wires between two steps.

On gpiozero's mock pin factory, ``BenchWiring`` plays what a real charger's copper does: the
contactor's mirror contact follows its coil (unless welded), the lock's feedback switch follows
the motor pulses (unless stuck), the RCD and emergency-stop inputs sit at their healthy levels,
the UPS HAT's mains-lost line follows mains; and, per step, each connector's EV draws what the
pilot offers while the contactor is closed and mains is on, which the simulated meter measures
and integrates.  ``SimConnector`` is one connector's simulated parts.

Apart from ``hal.sim.bench`` (the bench's life cycle, servers, the physics task and the bench
control commands) because this is the physics itself: a step is a function of the pins and the
parts, with no task, no server and no file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hal.config import ConnectorHardware, HardwareConfig
from hal.modbus.server import RegisterServer
from hal.sim.ev import SimulatedEv
from hal.sim.modbus_devices import SimulatedEvseBoard, SimulatedMeter
from hal.sim.pins import wired_pin_class


@dataclass
class SimConnector:
    """One connector's simulated parts: its EV, EVSE board, meter and their Modbus server, and
    the faults injected into its wiring."""

    hw: ConnectorHardware
    ev: SimulatedEv
    board: SimulatedEvseBoard
    meter: SimulatedMeter
    server: RegisterServer
    weld: bool = False
    lock_stuck: bool = False
    locked: bool = False
    lock_drive_s: float = 0.0  # how long the lock motor has been driven in one direction


class BenchWiring:
    """The wires of ``hardware`` on ``factory`` (a mock pin factory of ``wired_pin_class``)."""

    def __init__(self, hardware: HardwareConfig, factory: Any) -> None:
        self.hardware = hardware
        self.factory = factory

    def pin(self, number: int) -> Any:
        return self.factory.pin(number)

    @staticmethod
    def drive(pin: Any, level: bool) -> None:
        """Hold ``pin`` at ``level`` (high: True), whatever pull its driver sets."""
        pin.wire = level
        if level:
            pin.drive_high()
        else:
            pin.drive_low()

    def output_on(self, pin: int, active_high: bool = True) -> bool:
        """Whether the output on ``pin`` is driven active."""
        return bool(self.pin(pin).state) == active_high

    def level(self, pin: int) -> bool:
        """The level on ``pin`` (high: True)."""
        return bool(self.pin(pin).state)

    def inputs_healthy(self, mains: bool) -> None:
        """Every input at its healthy level: RCD not tripped, emergency stop closed, mirror
        contacts and lock feedback at rest; the mains-lost line as ``mains`` says."""
        s = self.hardware.safety
        self.drive(self.pin(s.residual_current_pin), not s.residual_current_active_high)
        if s.emergency_stop_pin is not None:
            # A normally-closed switch: healthy is the contact closed.
            self.drive(self.pin(s.emergency_stop_pin), s.emergency_stop_healthy_high)
        for hw in self.hardware.connectors:
            c = hw.contactor
            if c.mirror_pin is not None:
                self.drive(self.pin(c.mirror_pin), not c.mirror_active_high)
            if hw.lock is not None:
                self.drive(self.pin(hw.lock.feedback_pin), not hw.lock.feedback_active_high)
        self.drive_mains(mains)

    def drive_mains(self, mains: bool) -> None:
        """The UPS HAT's mains-lost line at the level of ``mains`` (without one: nothing)."""
        power_fail = self.hardware.power_fail
        if power_fail is not None:
            self.drive(self.pin(power_fail.pin), mains != power_fail.active_high)

    def step(self, c: SimConnector, dt: float, *, mains: bool, time_scale: float) -> None:
        """``dt`` s of connector ``c``: the board shows the EV's pilot state, the EV draws what
        is offered, the meter measures it and integrates ``dt * time_scale`` s of energy, the
        mirror contact and the lock follow their outputs."""
        hw = c.hw
        closed = self.output_on(hw.contactor.pin, hw.contactor.active_high)
        pwm = c.board.pwm_running
        c.board.vehicle_state = c.ev.pilot_state(pwm)
        # Without mains a closed contactor passes nothing (only the controller is backed up).
        amps = c.ev.current_a(c.board.offered_a, closed and mains, pwm)
        phases = (amps,) * c.ev.phases + (0.0,) * (3 - c.ev.phases)
        c.meter.current_a = phases
        power = c.ev.power_w(amps)
        c.meter.power_w = power
        c.meter.add_energy_wh(power * dt / 3600.0 * time_scale)
        # Mirror contact follows the coil, unless the contacts are welded shut.
        if hw.contactor.mirror_pin is not None:
            mirror_closed = closed or c.weld
            self.drive(
                self.pin(hw.contactor.mirror_pin), mirror_closed == hw.contactor.mirror_active_high
            )
        if hw.lock is not None:
            self._step_lock(c, dt)

    def _step_lock(self, c: SimConnector, dt: float) -> None:
        lock = c.hw.lock
        assert lock is not None
        locking = self.output_on(lock.lock_pin)
        unlocking = self.output_on(lock.unlock_pin)
        if locking != unlocking and not c.lock_stuck:
            c.lock_drive_s += dt
            # The motor needs a part of the pulse to travel.
            if c.lock_drive_s >= min(0.1, lock.pulse_s / 2):
                c.locked = locking
        else:
            c.lock_drive_s = 0.0
        self.drive(self.pin(lock.feedback_pin), c.locked == lock.feedback_active_high)


__all__ = ["BenchWiring", "SimConnector", "wired_pin_class"]
