"""Control-pilot decoding and debounce (IEC 61851-1 annex A): pure, no I/O, no asyncio.

The layer below the connector state machine (``firmware.charging``): ``firmware.connector_senses``
feeds every pilot reading to ``read`` and posts the events it returns to the connector.

States (``hal.types.PilotState``, decoded from the CP high level by the pilot source):

- A (+12 V) no vehicle; B (+9 V) vehicle connected; C (+6 V) vehicle asks for power;
- D (+3 V) asks for power with ventilation: this charger does not ventilate, so D is a fault;
- E (0 V) CP shorted to PE, no diode, or the pilot source failed: a fault;
- F (-12 V) the pilot source signals "not available" (this firmware never asks for it): a fault.

Debounce: a change that could add power (A -> B, B -> C, into D) must be read ``DEBOUNCE_READS``
times in a row (IEC 61851-1 asks 250-500 ms; at 0.2 s a read that is 0.4 s); a change that can
only take power away (to A, E or F, or out of C/D) acts on the first reading.
"""

from __future__ import annotations

from dataclasses import dataclass

from firmware.charging_types import (
    Event,
    EvPaused,
    EvRequestsPower,
    FaultCleared,
    FaultDetected,
    Plugged,
    Unplugged,
)
from firmware.domain import ChargePointErrorCode, ConnectorError
from hal.types import PilotState

A, B, C, D, E, F = (
    PilotState.A,
    PilotState.B,
    PilotState.C,
    PilotState.D,
    PilotState.E,
    PilotState.F,
)

# Readings in a row a change that could add power needs before it counts.
DEBOUNCE_READS = 2
# States that end power at once, whatever came before.
SAFETY_STATES = frozenset({A, E, F})
# States the pilot reports as a fault of the connector (EVCommunicationError, OCPP 1.6 §7.6).
FAULT_STATES = {
    D: "CP state D",
    E: "CP state E (short or no diode)",
    F: "CP state F (pilot turned off)",
}


@dataclass(frozen=True)
class Debounce:
    """What the connector takes the pilot to be (``settled``), and a different state being read
    but not yet believed (``candidate``, read ``count`` times in a row)."""

    settled: PilotState = A
    candidate: PilotState | None = None
    count: int = 0


def acts_at_once(previous: PilotState, new: PilotState) -> bool:
    """True for a change that can only take power away: it is never debounced."""
    return new in SAFETY_STATES or (previous.wants_power and not new.wants_power)


def read(debounce: Debounce, state: PilotState) -> tuple[Debounce, list[Event]]:
    """One pilot reading: the debounce after it, and the events a settled change means (none
    while a change is still being debounced)."""
    previous = debounce.settled
    if state is previous:
        return Debounce(previous), []
    if not acts_at_once(previous, state):
        count = debounce.count + 1 if debounce.candidate is state else 1
        if count < DEBOUNCE_READS:
            return Debounce(previous, state, count), []
    return Debounce(state), events(previous, state)


def events(previous: PilotState, new: PilotState) -> list[Event]:
    """The state-machine events a settled change from ``previous`` to ``new`` means."""
    if new in FAULT_STATES:
        error = ConnectorError(
            ChargePointErrorCode.EV_COMMUNICATION_ERROR, f"CP-{new.value}", FAULT_STATES[new]
        )
        return [FaultDetected(error)]
    out: list[Event] = []
    if previous in FAULT_STATES:
        out.append(FaultCleared(ChargePointErrorCode.EV_COMMUNICATION_ERROR))
    if not previous.plugged and new.plugged:
        out.append(Plugged())
    if new is A and previous is not A:
        out.append(Unplugged())
    elif new is C and previous is not C:
        out.append(EvRequestsPower())
    elif new is B and previous.wants_power:
        out.append(EvPaused())
    return out
