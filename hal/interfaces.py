"""The contracts between the firmware and the hardware.

Each device is a small Protocol.  Every backend (gpiozero on a Pi, Modbus boards and meters, the
simulated bench) implements these in full; the firmware knows nothing else about hardware.

Threading: synchronous methods are cheap and may be called from the event loop.  Listener
callbacks (safety inputs, card reader) may be called from *any* thread; the firmware hops back to
its loop itself.  Async methods must be awaited on the firmware's event loop.

Safety: the firmware only *asks* for power.  A safety input opens the contactors it guards in its
own callback, before the firmware hears of it, so a stalled event loop cannot delay a trip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from hal.types import (
    BeepPattern,
    Colour,
    ContactorStatus,
    LightPattern,
    LockState,
    MeterReading,
    PilotReading,
    Quantity,
    SafetyEvent,
)


@runtime_checkable
class ControlPilot(Protocol):
    """The IEC 61851 control pilot of one connector (generation and sampling live in hardware)."""

    async def read(self) -> PilotReading:
        """Sample the pilot.  Raises ``PilotFailure`` when the pilot source does not answer."""

    async def offer_current(self, amps: float) -> float | None:
        """Start (or change) the 1 kHz PWM to offer ``amps`` (6-80 A; ``ValueError`` outside).
        Returns the current really offered when the pilot source has a coarser step (rounded
        down, never up), None when it offers ``amps`` as asked."""

    async def stop_offering(self) -> None:
        """Steady +12 V (states x1): the EV must stop drawing within 3 s."""

    async def set_unavailable(self) -> None:
        """State F (-12 V steady): the charger is not available."""

    async def close(self) -> None: ...


@runtime_checkable
class Contactor(Protocol):
    """The power contactor of one connector, with an optional mirror (auxiliary) contact."""

    def request_closed(self) -> None:
        """Ask for power.  Refused with ``ContactorFailure`` while a safety trip is latched or the
        contactor is known welded."""

    def open(self) -> None:
        """Open at once.  Always allowed, from any thread."""

    def status(self) -> ContactorStatus:
        """Commanded state, mirror feedback, latched weld / failed-to-close diagnosis."""

    def close(self) -> None:
        """Release the outputs (contactor open)."""


@runtime_checkable
class ConnectorLock(Protocol):
    """Motor or solenoid lock of a socket outlet, with a feedback switch."""

    async def lock(self) -> None:
        """Drive the lock, confirm by feedback, retry as configured; ``LockFailure`` if it never
        confirms."""

    async def unlock(self) -> None:
        """As ``lock``, towards unlocked."""

    @property
    def state(self) -> LockState: ...

    def close(self) -> None: ...


@runtime_checkable
class StatusIndicator(Protocol):
    """The status light (usually one RGB LED or strip)."""

    def show(self, colour: Colour, pattern: LightPattern) -> None: ...

    @property
    def brightness(self) -> float:
        """0.0-1.0, scales every colour shown."""

    @brightness.setter
    def brightness(self, value: float) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Buzzer(Protocol):
    def play(self, pattern: BeepPattern) -> None:
        """Start a pattern in the background; a new pattern replaces a running one."""

    @property
    def enabled(self) -> bool: ...

    @enabled.setter
    def enabled(self, value: bool) -> None: ...

    @property
    def volume(self) -> float:
        """0.0-1.0."""

    @volume.setter
    def volume(self, value: float) -> None: ...

    def silence(self) -> None:
        """Stop a running pattern and leave the output silent (the safe state); synchronous,
        from any thread.  ``play`` works again afterwards."""

    def close(self) -> None: ...


@runtime_checkable
class Display(Protocol):
    """A display's backlight (the text on it is the manufacturer's business)."""

    @property
    def brightness(self) -> float:
        """0.0-1.0."""

    @brightness.setter
    def brightness(self, value: float) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class EnergyMeter(Protocol):
    """A metering device of one connector.

    ``poll`` never raises for communication failures: it returns the last good values marked
    STALE at once, then UNAVAILABLE after a few failed cycles, and OK again when the meter
    answers (see ``MeterHealth``)."""

    @property
    def quantities(self) -> frozenset[Quantity]:
        """What this meter model can measure."""

    async def poll(self) -> MeterReading: ...

    @property
    def latest(self) -> MeterReading | None:
        """The last reading ``poll`` returned (None before the first poll)."""

    async def close(self) -> None: ...


@runtime_checkable
class SafetyInputs(Protocol):
    """Residual-current monitor and emergency stop inputs."""

    def set_listener(self, listener: Callable[[SafetyEvent], None]) -> None:
        """``listener`` is called from any thread after the guarded contactors were opened."""

    def active(self) -> list[SafetyEvent]:
        """The inputs tripped right now (used at start-up and for status)."""

    def reset(self) -> bool:
        """A person's action (or the EV unplugged) after a trip: release the contactor
        interlock.  Refused (False) while an input is still tripped."""

    def close(self) -> None: ...


@runtime_checkable
class PowerFailInput(Protocol):
    """The mains-lost (power-fail) signal of a backup supply: a UPS HAT's power-loss line
    (Geekworm X728/X708 "PLD"), a supercapacitor module's power-fail output (PFO).  Only a
    charger with backup power has one (``[power_fail]``); it reports, it acts on nothing: the
    firmware decides what a loss means after its hold-off (``firmware.power_loss``)."""

    def set_listener(self, listener: Callable[[bool], None]) -> None:
        """``listener(lost)`` on every change of the (contact-debounced) line, from any thread:
        True when mains was lost, False when it is back."""

    def mains_lost(self) -> bool:
        """The line right now: True while the supply runs on its backup (used at start-up)."""

    def close(self) -> None: ...


@runtime_checkable
class CardReader(Protocol):
    """An RFID reader; ``listener`` receives the idTag (upper-case hex UID) from any thread."""

    def set_listener(self, listener: Callable[[str], None]) -> None: ...

    def close(self) -> None: ...


@dataclass
class ConnectorDevices:
    """The devices of one connector, as a backend built them (``hal.assembly``) and as the
    firmware drives them (``firmware.connector``): the one bundle type for both sides."""

    connector_id: int  # OCPP connectorId, 1..n
    pilot: ControlPilot
    contactor: Contactor
    meter: EnergyMeter
    lock: ConnectorLock | None  # None: tethered cable
    max_current_a: float  # the connector's rating (A)
