"""The firmware's own vocabulary.

The charging core speaks these types; ``firmware.ocpp.mapping`` is the one place that turns them
into OCPP 1.6 enums and dataclasses and back.  The string values are the OCPP 1.6 spellings so the
mapping is mechanical and logs read like the protocol.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


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
    """A fault shown on a connector: ``code`` is an OCPP ChargePointErrorCode spelling."""

    code: str
    vendor_code: str = ""
    info: str = ""
