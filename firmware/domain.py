"""The firmware's own vocabulary.

The charging core speaks these types; ``firmware.ocpp.mapping`` is the one place that turns them
into OCPP 1.6 enums and dataclasses and back.  The string values are the OCPP 1.6 spellings so the
mapping is mechanical and logs read like the protocol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from hal.types import HardwareFault


class ConnectorStatus(enum.Enum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargePointErrorCode(enum.Enum):
    """OCPP 1.6 §7.6 ChargePointErrorCode: what a StatusNotification reports as a connector's
    fault (``NO_ERROR`` when there is none)."""

    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    GROUND_FAILURE = "GroundFailure"
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    LOCAL_LIST_CONFLICT = "LocalListConflict"
    NO_ERROR = "NoError"
    OTHER_ERROR = "OtherError"
    OVER_CURRENT_FAILURE = "OverCurrentFailure"
    OVER_VOLTAGE = "OverVoltage"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    READER_FAILURE = "ReaderFailure"
    RESET_FAILURE = "ResetFailure"
    UNDER_VOLTAGE = "UnderVoltage"
    WEAK_SIGNAL = "WeakSignal"

    @classmethod
    def of(cls, fault: HardwareFault) -> ChargePointErrorCode:
        """The code a HAL fault is reported as (an emergency stop is OtherError: 1.6 has no
        code of its own for it)."""
        return _ERROR_CODE_OF[fault]


_ERROR_CODE_OF = {
    HardwareFault.GROUND_FAILURE: ChargePointErrorCode.GROUND_FAILURE,
    HardwareFault.EMERGENCY_STOP: ChargePointErrorCode.OTHER_ERROR,
    HardwareFault.POWER_SWITCH_FAILURE: ChargePointErrorCode.POWER_SWITCH_FAILURE,
    HardwareFault.CONNECTOR_LOCK_FAILURE: ChargePointErrorCode.CONNECTOR_LOCK_FAILURE,
    HardwareFault.POWER_METER_FAILURE: ChargePointErrorCode.POWER_METER_FAILURE,
    HardwareFault.EV_COMMUNICATION_ERROR: ChargePointErrorCode.EV_COMMUNICATION_ERROR,
    HardwareFault.READER_FAILURE: ChargePointErrorCode.READER_FAILURE,
    HardwareFault.INTERNAL_ERROR: ChargePointErrorCode.INTERNAL_ERROR,
}


class StopReason(enum.Enum):
    DE_AUTHORIZED = "DeAuthorized"
    EMERGENCY_STOP = "EmergencyStop"
    EV_DISCONNECTED = "EVDisconnected"
    HARD_RESET = "HardReset"
    LOCAL = "Local"
    OTHER = "Other"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    REMOTE = "Remote"
    SOFT_RESET = "SoftReset"
    UNLOCK_COMMAND = "UnlockCommand"


class AuthorizationStatus(enum.Enum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class RegistrationStatus(enum.Enum):
    ACCEPTED = "Accepted"
    PENDING = "Pending"
    REJECTED = "Rejected"


@dataclass(frozen=True)
class IdTagInfo:
    status: AuthorizationStatus
    parent_id_tag: str | None = None
    expiry_date: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.status is AuthorizationStatus.ACCEPTED

    def as_of(self, now: datetime) -> IdTagInfo:
        """This idTagInfo at ``now``: an Accepted one whose expiryDate has passed reads
        Expired (OCPP 1.6 §3.5.2-3.5.3, the cache and the local list alike)."""
        if self.accepted and self.expiry_date is not None and self.expiry_date <= now:
            return IdTagInfo(AuthorizationStatus.EXPIRED, self.parent_id_tag, self.expiry_date)
        return self


@dataclass(frozen=True)
class SampledValue:
    """One OCPP SampledValue in domain terms (value already formatted as the decimal string)."""

    value: str
    measurand: str = "Energy.Active.Import.Register"
    unit: str | None = "Wh"
    context: str = "Sample.Periodic"
    phase: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class MeterSample:
    timestamp: datetime
    values: tuple[SampledValue, ...]


@dataclass(frozen=True)
class ConnectorError:
    """A fault shown on a connector (vendor_code and info: CiString50, OCPP 1.6 §6.47)."""

    code: ChargePointErrorCode
    vendor_code: str = ""
    info: str = ""


class UpdateType(enum.Enum):
    """SendLocalList's updateType (OCPP 1.6 §7.49)."""

    DIFFERENTIAL = "Differential"
    FULL = "Full"


class UpdateStatus(enum.Enum):
    """SendLocalList.conf's status (OCPP 1.6 §7.48)."""

    ACCEPTED = "Accepted"
    FAILED = "Failed"
    NOT_SUPPORTED = "NotSupported"
    VERSION_MISMATCH = "VersionMismatch"


@dataclass(frozen=True)
class AuthorizationData:
    """One entry of a SendLocalList (OCPP 1.6 §7.2): ``id_tag_info`` None in a Differential
    update removes ``id_tag`` from the list."""

    id_tag: str
    id_tag_info: IdTagInfo | None = None


@dataclass(frozen=True)
class UpdateOutcome:
    """What a SendLocalList came to: ``status``, and for anything but Accepted the one-line
    reason (logged by the OCPP block)."""

    status: UpdateStatus
    reason: str = ""


def id_token_key(id_tag: str) -> str:
    """The form an IdToken is compared and stored under: ASCII letters lower-cased, every other
    character as it is.  IdToken is a CiString20 (OCPP 1.6 §3.5.2, §7.28): case-insensitive in
    the ASCII sense the identifiers are written in; a Unicode fold would make distinct cards one
    ("Straße" and "STRASSE")."""
    return id_tag.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def same_id_token(a: str | None, b: str | None) -> bool:
    """Both given and the same IdToken (``id_token_key``)."""
    return a is not None and b is not None and id_token_key(a) == id_token_key(b)


@dataclass(frozen=True)
class Reservation:
    """A ReserveNow the charger holds (OCPP 1.6 §3.11, §5.13): ``connector_id`` 0 is the charger
    as a whole (one connector held back); ``expiry_date`` is UTC; ``parent_id_tag`` the group
    the reservation also admits (ReserveNow.parentIdTag), None: only ``id_tag``."""

    reservation_id: int
    connector_id: int
    id_tag: str
    expiry_date: datetime
    parent_id_tag: str | None = None

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """``id_tag`` (with the parentIdTag its authorization gave) may use this reservation:
        the reserving idTag itself, or a card of the reservation's group (§5.13, TC_053).
        IdTokens compare case-insensitively (§3.5.2)."""
        if same_id_token(id_tag, self.id_tag):
            return True
        return same_id_token(parent_id_tag, self.parent_id_tag)
