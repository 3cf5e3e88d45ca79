"""Value types and errors shared by every HAL backend and the firmware.

Standard library only: the firmware imports this module, and it must stay cheap and free of any
hardware library.  Units are SI as written in each field name (A, V, W, Wh, Hz, seconds).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

# --------------------------------------------------------------------------------------------------
# Control pilot (IEC 61851-1)


class PilotState(enum.Enum):
    """The EV side of the control pilot, decoded from the CP high level (IEC 61851-1 table A.x)."""

    A = "A"  # +12 V: no vehicle
    B = "B"  # +9 V: vehicle connected, not asking for power
    C = "C"  # +6 V: vehicle asks for power
    D = "D"  # +3 V: asks for power with ventilation; this charger does not support it
    E = "E"  # 0 V: CP shorted to PE, no diode, or the pilot source failed
    F = "F"  # -12 V: the charger itself signals "not available"

    @property
    def plugged(self) -> bool:
        return self in (PilotState.B, PilotState.C, PilotState.D)

    @property
    def wants_power(self) -> bool:
        return self in (PilotState.C, PilotState.D)


# Below 6 A IEC 61851-1 allows no charging, above 80 A the PWM encoding ends.
MIN_PILOT_CURRENT_A = 6.0
MAX_PILOT_CURRENT_A = 80.0


def duty_cycle_for_current(amps: float) -> float:
    """PWM duty (percent) that offers ``amps`` per IEC 61851-1 table A.8 (6-51 A: A/0.6;
    51-80 A: A/2.5+64); ValueError outside 6-80 A."""
    if not MIN_PILOT_CURRENT_A <= amps <= MAX_PILOT_CURRENT_A:
        raise ValueError(f"{amps} A cannot be offered on the pilot (6-80 A)")
    return amps / 0.6 if amps <= 51 else amps / 2.5 + 64


@dataclass(frozen=True)
class PilotReading:
    """One decoded sample of the pilot.

    ``offered_a`` is what the pilot currently advertises (0 when no PWM runs), read back from the
    pilot source, not what the firmware last asked for.  ``cable_limit_a`` is the proximity-pilot
    rating of a plugged cable (None: tethered cable or not measured).
    """

    state: PilotState
    offered_a: float = 0.0
    cable_limit_a: float | None = None


# --------------------------------------------------------------------------------------------------
# Contactor


@dataclass(frozen=True)
class ContactorStatus:
    """``commanded_closed`` is the last request; ``feedback_closed`` the mirror contact (None: no
    mirror contact fitted).  ``welded`` is latched once the mirror shows closed while the contactor
    has been commanded open for longer than the settle time; it never clears by itself."""

    commanded_closed: bool
    feedback_closed: bool | None
    welded: bool = False
    failed_to_close: bool = False


# --------------------------------------------------------------------------------------------------
# Lock


class LockState(enum.Enum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    UNKNOWN = "unknown"  # no feedback yet, or feedback contradicts the last command


# --------------------------------------------------------------------------------------------------
# Indicator and buzzer


@dataclass(frozen=True)
class Colour:
    """Linear RGB, each channel 0.0-1.0, before brightness scaling."""

    red: float
    green: float
    blue: float

    def __post_init__(self) -> None:
        for channel in (self.red, self.green, self.blue):
            if not 0.0 <= channel <= 1.0:
                raise ValueError(f"colour channel {channel} outside 0..1")


OFF = Colour(0, 0, 0)
GREEN = Colour(0, 1, 0)
BLUE = Colour(0, 0, 1)
YELLOW = Colour(1, 0.6, 0)
CYAN = Colour(0, 1, 1)
RED = Colour(1, 0, 0)
WHITE = Colour(1, 1, 1)


class LightPattern(enum.Enum):
    OFF = "off"
    STEADY = "steady"
    BLINK = "blink"  # 0.5 s on, 0.5 s off
    FAST_BLINK = "fast-blink"  # 0.15 s on, 0.15 s off
    PULSE = "pulse"  # breathing: fade in 1 s, fade out 1 s


class BeepPattern(enum.Enum):
    """Sounds a driver hears, as commercial chargers use them (see docs/hardware.md)."""

    CARD_READ = "card-read"  # one short
    ACCEPTED = "accepted"  # two short
    REJECTED = "rejected"  # three long
    FAULT = "fault"  # three long

    @property
    def beeps(self) -> tuple[tuple[float, float], ...]:
        """(on seconds, off seconds) for each beep."""
        short, long_ = (0.08, 0.08), (0.4, 0.2)
        return {
            BeepPattern.CARD_READ: (short,),
            BeepPattern.ACCEPTED: (short, short),
            BeepPattern.REJECTED: (long_, long_, long_),
            BeepPattern.FAULT: (long_, long_, long_),
        }[self]


# --------------------------------------------------------------------------------------------------
# Energy meter


class MeterHealth(enum.Enum):
    OK = "ok"
    STALE = "stale"  # the last poll failed: values are the last good ones, not current
    UNAVAILABLE = "unavailable"  # several polls in a row failed (OCPP PowerMeterFailure)


@dataclass(frozen=True)
class MeterReading:
    """One poll of an energy meter, converted to OCPP's default units.

    Any value the meter model does not provide, or that the meter flagged invalid, is None.
    Per-phase tuples are (L1, L2, L3); voltages are phase-to-neutral.  ``timestamp`` is when the
    values were read (UTC); on a STALE or UNAVAILABLE reading it is the time of the last good read
    (or of the failed poll when there never was a good one, in which case every value is None).
    """

    timestamp: datetime
    health: MeterHealth = MeterHealth.OK
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    power_w: float | None = None
    current_a: tuple[float | None, float | None, float | None] = (None, None, None)
    voltage_v: tuple[float | None, float | None, float | None] = (None, None, None)
    frequency_hz: float | None = None


class Quantity(enum.Enum):
    """What a meter model can measure; the firmware maps these to OCPP measurands."""

    ENERGY_IMPORT = "energy_import_wh"
    ENERGY_EXPORT = "energy_export_wh"
    POWER = "power_w"
    CURRENT_PER_PHASE = "current_a"
    VOLTAGE_PER_PHASE = "voltage_v"
    FREQUENCY = "frequency_hz"


# --------------------------------------------------------------------------------------------------
# Safety inputs


class SafetyInput(enum.Enum):
    RESIDUAL_CURRENT = "residual-current"  # RCD / RDC-DD trip
    EMERGENCY_STOP = "emergency-stop"


@dataclass(frozen=True)
class SafetyEvent:
    """A safety input changed.  ``active`` True means tripped.  When it is delivered to the
    firmware the driver has already opened every contactor it guards."""

    source: SafetyInput
    active: bool


# --------------------------------------------------------------------------------------------------
# Errors


class HardwareFault(enum.Enum):
    """Hardware failures, named for what broke.  ``firmware.ocpp`` maps each to an OCPP 1.6
    ChargePointErrorCode (the name in the comment)."""

    GROUND_FAILURE = "GroundFailure"
    EMERGENCY_STOP = "OtherError"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    POWER_METER_FAILURE = "PowerMeterFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    READER_FAILURE = "ReaderFailure"
    INTERNAL_ERROR = "InternalError"


@dataclass
class HardwareError(Exception):
    """A device failed.  ``vendor_code`` is a short stable code for the operator (CiString50)."""

    fault: HardwareFault
    vendor_code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.fault.name} ({self.vendor_code}): {self.detail}"


class LockFailure(HardwareError):
    def __init__(self, detail: str, vendor_code: str = "LOCK") -> None:
        super().__init__(HardwareFault.CONNECTOR_LOCK_FAILURE, vendor_code, detail)


class ContactorFailure(HardwareError):
    def __init__(self, detail: str, vendor_code: str = "WELD") -> None:
        super().__init__(HardwareFault.POWER_SWITCH_FAILURE, vendor_code, detail)


class PilotFailure(HardwareError):
    def __init__(self, detail: str, vendor_code: str = "CP") -> None:
        super().__init__(HardwareFault.EV_COMMUNICATION_ERROR, vendor_code, detail)


class MeterFailure(HardwareError):
    def __init__(self, detail: str, vendor_code: str = "METER") -> None:
        super().__init__(HardwareFault.POWER_METER_FAILURE, vendor_code, detail)


class ConfigurationError(ValueError):
    """A hardware section of the configuration file is wrong (bad pin, unknown meter model...)."""
