"""A simulated electric vehicle: what it does with the pilot and how much current it draws.

Pure physics, no I/O: the bench feeds it the offered current and the contactor state and reads
back the pilot state and the current it draws.
"""

from __future__ import annotations

from dataclasses import dataclass

from hal.types import MIN_PILOT_CURRENT_A, PilotState


@dataclass
class SimulatedEv:
    max_current_a: float = 32.0
    phases: int = 3
    voltage_v: float = 230.0
    plugged: bool = False
    wants_power: bool = False  # the driver/EV asks for charge (would go to C once PWM is seen)
    diode_fault: bool = False  # CP diode missing/shorted: the pilot reads E

    def pilot_state(self, pwm_on: bool) -> PilotState:
        """A real EV only closes S2 (state C) when it sees PWM."""
        if not self.plugged:
            return PilotState.A
        if self.diode_fault:
            return PilotState.E
        return PilotState.C if (self.wants_power and pwm_on) else PilotState.B

    def current_a(self, offered_a: float, contactor_closed: bool, pwm_on: bool) -> float:
        """Per-phase current drawn right now (A)."""
        if not (contactor_closed and self.pilot_state(pwm_on) is PilotState.C):
            return 0.0
        if offered_a < MIN_PILOT_CURRENT_A:
            return 0.0
        return min(offered_a, self.max_current_a)

    def power_w(self, current_a: float) -> float:
        return current_a * self.voltage_v * self.phases
