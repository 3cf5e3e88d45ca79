"""Smart Charging profiles as values (OCPP 1.6 §3.13, §7.7-7.15): pure, no I/O, no asyncio.

The profile model (``ChargingProfile`` and its schedule, periods and enums; the
GetCompositeSchedule answer's ``CompositeSchedule``), the units (``to_amps``, ``to_watts``), and
the reason a SetChargingProfile must be Rejected (``rejection_reason``).  It is apart from what a
profile *does*: the limit at an instant and the next change (``firmware.smart_limit``), the
composite over a window (``firmware.smart_composite``); installing, replacing and clearing
profiles, persistence and the pilot are other modules' business: here a profile is a value.

Times are aware UTC ``datetime`` values, and so is every profile time: a Recurring Daily profile
repeats every 86 400 s from its ``start_schedule``, so in a time zone with summer time it moves by
an hour of local time at each change (the central system sends UTC; OCPP 1.6 has no time zone).

Units: a limit in A is per phase; in W it is the total power.  The charger has no phase
switching: the EV may draw the pilot's current on every phase of the connector, whatever a
period's ``numberPhases`` says, so W -> A divides by ``nominal voltage * the connector's phases``
(``to_amps``; ``to_watts`` is the reverse) and a limit's phases are the connector's.
``minChargingRate`` is carried but does not change the limit.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
DEFAULT_PHASES = 3  # numberPhases absent (OCPP 1.6 §7.14)
NOMINAL_VOLTAGE = 230.0  # V, phase to neutral


class ChargingProfilePurpose(enum.Enum):
    ChargePointMaxProfile = "ChargePointMaxProfile"
    TxDefaultProfile = "TxDefaultProfile"
    TxProfile = "TxProfile"


class ChargingProfileKind(enum.Enum):
    Absolute = "Absolute"
    Recurring = "Recurring"
    Relative = "Relative"


class RecurrencyKind(enum.Enum):
    Daily = "Daily"
    Weekly = "Weekly"


class ChargingRateUnit(enum.Enum):
    A = "A"
    W = "W"


@dataclass(frozen=True)
class ChargingSchedulePeriod:
    """One period (§7.14): from ``start_period`` s after the schedule's start, ``limit`` in the
    schedule's unit (A per phase, or W in total) over ``number_phases`` (None: 3)."""

    start_period: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class ChargingSchedule:
    """§7.13: periods in ascending ``start_period``, the first at 0; ``duration`` in s (None: the
    last period lasts until the profile ends or, Recurring, the next recurrence);
    ``start_schedule`` the start of an Absolute or Recurring schedule (absent on Absolute: the
    transaction's start, as Relative)."""

    charging_rate_unit: ChargingRateUnit
    charging_schedule_period: tuple[ChargingSchedulePeriod, ...]
    duration: int | None = None
    start_schedule: datetime | None = None
    min_charging_rate: float | None = None


@dataclass(frozen=True)
class ChargingProfile:
    """§7.8, plus ``connector_id``: the connectorId of the SetChargingProfile that installed it
    (0: the whole charger; a TxDefaultProfile on 0 applies to every connector)."""

    charging_profile_id: int
    stack_level: int
    charging_profile_purpose: ChargingProfilePurpose
    charging_profile_kind: ChargingProfileKind
    charging_schedule: ChargingSchedule
    connector_id: int = 0
    recurrency_kind: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None


@dataclass(frozen=True)
class CompositePeriod:
    """A GetCompositeSchedule period: ``start_period`` s after the composite's start; ``limit`` in
    the composite's unit, None where no profile limits (and no default was given)."""

    start_period: int
    limit: float | None
    number_phases: int


@dataclass(frozen=True)
class CompositeSchedule:
    """The GetCompositeSchedule.conf chargingSchedule (§6.14, §7.13), ``start_schedule`` in UTC."""

    start_schedule: datetime
    duration: int
    charging_rate_unit: ChargingRateUnit
    charging_schedule_period: tuple[CompositePeriod, ...]


def to_amps(
    limit: float,
    unit: ChargingRateUnit,
    *,
    phases: int = DEFAULT_PHASES,
    voltage: float = NOMINAL_VOLTAGE,
) -> float:
    """A limit in ``unit`` -> A per phase: W / (voltage * the connector's ``phases``); A
    unchanged.  A period's numberPhases plays no part: the charger cannot make the EV use fewer
    phases than the connector has (no phase switching), and the pilot's current holds on every
    phase the EV uses, so a W limit must hold with all of them."""
    if unit is ChargingRateUnit.A:
        return limit
    return limit / (voltage * phases)


def to_watts(
    amps: float, *, phases: int = DEFAULT_PHASES, voltage: float = NOMINAL_VOLTAGE
) -> float:
    """A per phase -> W in total over the connector's ``phases`` (the reverse of ``to_amps``)."""
    return amps * voltage * phases


def rejection_reason(
    profile: ChargingProfile,
    *,
    number_of_connectors: int,
    active_transaction_id: int | None,
    max_stack_level: int,
    max_periods: int,
    allowed_units: Iterable[ChargingRateUnit] = tuple(ChargingRateUnit),
    remote_start: bool = False,
) -> str | None:
    """Why SetChargingProfile(profile.connector_id, profile) must be answered Rejected (§5.16,
    §3.13.1, §9.4), or None to accept. ``active_transaction_id``: the transaction running on that
    connector, if any. Keys: ChargeProfileMaxStackLevel, ChargingScheduleMaxPeriods,
    ChargingScheduleAllowedChargingRateUnit (Current = A, Power = W; errata 3.86).
    ``remote_start``: the profile came in RemoteStartTransaction (§5.11: a TxProfile without
    transactionId, for the transaction about to start; ``connector_id`` the chosen connector)."""
    tx, cp_max = ChargingProfilePurpose.TxProfile, ChargingProfilePurpose.ChargePointMaxProfile
    purpose = profile.charging_profile_purpose
    recurring = profile.charging_profile_kind is ChargingProfileKind.Recurring
    schedule = profile.charging_schedule
    periods = schedule.charging_schedule_period
    connector = profile.connector_id
    checks: list[tuple[bool, str]] = [
        (
            not 0 <= connector <= number_of_connectors,
            f"connector {connector} does not exist (0..{number_of_connectors})",
        ),
        (purpose is cp_max and connector != 0, "ChargePointMaxProfile is only for connector 0"),
        (remote_start and purpose is not tx, "RemoteStartTransaction takes only a TxProfile"),
        (
            remote_start and profile.transaction_id is not None,
            "a RemoteStartTransaction profile has no transactionId",
        ),
        (purpose is tx and connector == 0, "TxProfile needs a connector, not 0"),
        (
            purpose is tx and active_transaction_id is None and not remote_start,
            "TxProfile without a transaction on the connector",
        ),
        (
            purpose is tx
            and profile.transaction_id is not None
            and active_transaction_id is not None
            and profile.transaction_id != active_transaction_id,
            f"transactionId {profile.transaction_id} is not the connector's transaction",
        ),
        (
            purpose is not tx and profile.transaction_id is not None,
            "transactionId is only for a TxProfile",
        ),
        (
            not 0 <= profile.stack_level <= max_stack_level,
            f"stackLevel {profile.stack_level} outside 0..{max_stack_level}"
            " (ChargeProfileMaxStackLevel)",
        ),
        (recurring and profile.recurrency_kind is None, "Recurring without recurrencyKind"),
        (recurring and schedule.start_schedule is None, "Recurring without startSchedule"),
        (
            profile.valid_from is not None
            and profile.valid_to is not None
            and profile.valid_from >= profile.valid_to,
            "validFrom is not before validTo",
        ),
        (schedule.duration is not None and schedule.duration <= 0, "duration is not positive"),
        (schedule.charging_rate_unit not in set(allowed_units), "chargingRateUnit not allowed"),
        (not periods, "no chargingSchedulePeriod"),
        (
            len(periods) > max_periods,
            f"{len(periods)} periods, more than {max_periods} (ChargingScheduleMaxPeriods)",
        ),
        (bool(periods) and periods[0].start_period != 0, "the first startPeriod is not 0"),
        (
            any(a.start_period >= b.start_period for a, b in pairwise(periods)),
            "startPeriod values are not ascending",
        ),
        (any(p.limit < 0 for p in periods), "a negative limit"),
        (
            any(p.number_phases is not None and not 1 <= p.number_phases <= 3 for p in periods),
            "numberPhases outside 1..3",
        ),
        (
            schedule.min_charging_rate is not None and schedule.min_charging_rate < 0,
            "a negative minChargingRate",
        ),
    ]
    return next((reason for failed, reason in checks if failed), None)
