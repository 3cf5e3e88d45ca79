"""The one place where domain types become OCPP 1.6 payload pieces and back."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from firmware.clock import from_ocpp, to_ocpp
from firmware.domain import AuthorizationStatus, IdTagInfo, MeterSample
from firmware.smart import (
    WEEK,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    CompositeSchedule,
    RecurrencyKind,
)

#: The integers of a charging profile (ids, stack level, seconds) are 32-bit in every OCPP
#: implementation we know and in SQLite's comfortable range; a schema-valid 2**63 or 10**30 is
#: not a profile anyone meant (and would overflow the date arithmetic and the store).
INT32 = range(-(2**31), 2**31)
COMPOSITE_LIMIT_MAX = 1e9  # A or W: a GetCompositeSchedule limit is below this
E = TypeVar("E", ChargingProfilePurpose, ChargingProfileKind, RecurrencyKind, ChargingRateUnit)


#: The SampledValue fields OCPP 1.6 §7.45 gives a default, with that default: a receiver reads
#: an absent field as this value, so a compact MeterValue leaves them out.  ``unit`` defaults to
#: Wh only for an energy measurand (``UNIT_DEFAULT``).
SAMPLED_VALUE_DEFAULTS: dict[str, str] = {
    "context": "Sample.Periodic",
    "format": "Raw",
    "measurand": "Energy.Active.Import.Register",
    "location": "Outlet",
}
UNIT_DEFAULT = "Wh"


def sampled_value_fields(sampled: dict[str, Any]) -> dict[str, Any]:
    """A wire SampledValue with every defaulted field written out: what the value means, in
    either form (unit Wh only where the measurand is an energy one)."""
    full = {**SAMPLED_VALUE_DEFAULTS, **sampled}
    if "unit" not in full and full["measurand"].startswith("Energy."):
        full["unit"] = UNIT_DEFAULT
    return full


def meter_value(sample: MeterSample, compact: bool = True) -> dict[str, Any]:
    """A MeterValue in its wire form (OCPP 1.6 JSON field names), as sent and as the outbox
    stores it.  ``compact`` (the key PiCP.CompactMessages) leaves out every SampledValue field
    whose value is the spec's default (``SAMPLED_VALUE_DEFAULTS``; unit Wh of an energy
    measurand): a periodic energy reading is then ``{"value": "1697"}``."""
    values = []
    for sv in sample.values:
        fields = {
            "value": sv.value,
            "context": sv.context,
            "measurand": sv.measurand,
            "phase": sv.phase,
            "location": sv.location,
            "unit": sv.unit,
        }
        if compact:
            energy = sv.measurand.startswith("Energy.")
            fields = {
                k: v
                for k, v in fields.items()
                if SAMPLED_VALUE_DEFAULTS.get(k) != v
                and not (k == "unit" and energy and v == UNIT_DEFAULT)
            }
        values.append({k: v for k, v in fields.items() if v is not None})
    return {"timestamp": to_ocpp(sample.timestamp), "sampledValue": values}


def id_tag_info(raw: dict[str, Any] | None) -> IdTagInfo:
    """IdTagInfo from a response (snake_case keys); anything unreadable counts as Invalid."""
    if not isinstance(raw, dict):
        return IdTagInfo(AuthorizationStatus.INVALID)
    try:
        status = AuthorizationStatus(raw.get("status"))
    except ValueError:
        status = AuthorizationStatus.INVALID
    expiry = raw.get("expiry_date")
    return IdTagInfo(status, raw.get("parent_id_tag"), from_ocpp(expiry))


class NotAProfile(ValueError):
    """A chargingProfile the OCPP 1.6 schema lets through but that cannot be a profile (a
    date-time Python cannot read, an integer beyond 32 bits, a limit that is not a finite
    number, a schedule running past the year 9999); the message is the one-line reason."""


def _integer(raw: dict[str, Any], name: str, wire: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if type(value) is not int:  # the schema says integer; a bool or float is not one
        raise NotAProfile(f"{wire} {value!r} is not an integer")
    if value not in INT32:
        raise NotAProfile(f"{wire} {value} is beyond a 32-bit integer")
    return value


def _required_integer(raw: dict[str, Any], name: str, wire: str) -> int:
    value = _integer(raw, name, wire)
    if value is None:
        raise NotAProfile(f"{wire} is missing")
    return value


def _number(raw: dict[str, Any], name: str, wire: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise NotAProfile(f"{wire} {value!r} is not a number")
    number = float(value)  # the library hands decimals (multipleOf 0.1 holds on them)
    if not math.isfinite(number):
        raise NotAProfile(f"{wire} {value} is not a finite number")
    return number


def _date_time(raw: dict[str, Any], name: str, wire: str) -> datetime | None:
    text = raw.get(name)
    if text is None:
        return None
    moment = from_ocpp(text)
    if moment is None:
        raise NotAProfile(f"{wire} {text!r} is not a date-time")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise NotAProfile(f"{wire} {text!r} is outside the years 1-9999 in UTC") from None


def _enum(kind: type[E], raw: dict[str, Any], name: str, wire: str) -> E | None:
    value = raw.get(name)
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise NotAProfile(f"{wire} {value!r} is not one of the OCPP 1.6 values") from None


def charging_profile(raw: object, connector_id: int) -> ChargingProfile:
    """A chargingProfile (OCPP 1.6 §7.8, the ``ocpp`` library's snake_case keys, as
    SetChargingProfile's csChargingProfiles or RemoteStartTransaction's chargingProfile) as the
    domain's ChargingProfile, installed on ``connector_id``.  ``transaction_id`` is still the
    central system's.  Times become UTC.  Raises NotAProfile with the reason; what makes a
    readable profile unacceptable (stack level, periods, purposes) is
    ``firmware.smart.rejection_reason``'s business, not this function's."""
    if not isinstance(raw, dict):
        raise NotAProfile("chargingProfile is not an object")
    schedule = raw.get("charging_schedule")
    if not isinstance(schedule, dict):
        raise NotAProfile("chargingSchedule is not an object")
    periods_raw = schedule.get("charging_schedule_period")
    if not isinstance(periods_raw, list) or not all(isinstance(p, dict) for p in periods_raw):
        raise NotAProfile("chargingSchedulePeriod is not a list of objects")
    periods = []
    for p in periods_raw:
        limit = _number(p, "limit", "limit")
        if limit is None:
            raise NotAProfile("a chargingSchedulePeriod without limit")
        periods.append(
            ChargingSchedulePeriod(
                _required_integer(p, "start_period", "startPeriod"),
                limit,
                _integer(p, "number_phases", "numberPhases"),
            )
        )
    unit = _enum(ChargingRateUnit, schedule, "charging_rate_unit", "chargingRateUnit")
    purpose = _enum(
        ChargingProfilePurpose, raw, "charging_profile_purpose", "chargingProfilePurpose"
    )
    kind = _enum(ChargingProfileKind, raw, "charging_profile_kind", "chargingProfileKind")
    if unit is None or purpose is None or kind is None:
        raise NotAProfile("chargingRateUnit, chargingProfilePurpose or chargingProfileKind missing")
    start = _date_time(schedule, "start_schedule", "startSchedule")
    duration = _integer(schedule, "duration", "duration")
    if start is not None:
        # Every instant the arithmetic derives from startSchedule must be a datetime: its
        # periods, its duration and a recurrence beyond them.
        furthest = max([duration or 0, *(p.start_period for p in periods)])
        try:
            start + timedelta(seconds=max(furthest, 0)) + WEEK
        except OverflowError:
            raise NotAProfile(
                f"startSchedule {start.isoformat()} runs past the year 9999"
            ) from None
    return ChargingProfile(
        charging_profile_id=_required_integer(raw, "charging_profile_id", "chargingProfileId"),
        stack_level=_required_integer(raw, "stack_level", "stackLevel"),
        charging_profile_purpose=purpose,
        charging_profile_kind=kind,
        charging_schedule=ChargingSchedule(
            charging_rate_unit=unit,
            charging_schedule_period=tuple(periods),
            duration=duration,
            start_schedule=start,
            min_charging_rate=_number(schedule, "min_charging_rate", "minChargingRate"),
        ),
        connector_id=connector_id,
        recurrency_kind=_enum(RecurrencyKind, raw, "recurrency_kind", "recurrencyKind"),
        valid_from=_date_time(raw, "valid_from", "validFrom"),
        valid_to=_date_time(raw, "valid_to", "validTo"),
        transaction_id=_integer(raw, "transaction_id", "transactionId"),
    )


def _tenths_down(value: float) -> float:
    """A limit to the one decimal the schema allows (multipleOf 0.1), rounded down so the
    answer never promises more than the limit (the round() first absorbs float noise: 8.7 A
    must stay 8.7, not become 8.6)."""
    return math.floor(round(value * 10, 6)) / 10


def composite_schedule(composite: CompositeSchedule) -> dict[str, Any]:
    """GetCompositeSchedule.conf's chargingSchedule (§7.13, snake_case keys for the library):
    duration, startSchedule (the composite's start, UTC), chargingRateUnit and the periods with
    startPeriod, limit (to 0.1, down) and numberPhases.  ValueError for a period without a
    limit or with one outside 0..COMPOSITE_LIMIT_MAX."""
    periods: list[dict[str, Any]] = []
    for period in composite.charging_schedule_period:
        if period.limit is None:
            raise ValueError(f"the composite has no limit from {period.start_period} s")
        if not 0 <= period.limit < COMPOSITE_LIMIT_MAX:
            # Beyond any charger, and beyond what the schema's multipleOf 0.1 can be checked on.
            raise ValueError(f"the composite's limit {period.limit} is not a charging limit")
        limit = _tenths_down(period.limit)
        last = periods[-1] if periods else None
        if last and (last["limit"], last["number_phases"]) == (limit, period.number_phases):
            continue  # equal after rounding: one period
        periods.append(
            {
                "start_period": period.start_period,
                "limit": limit,
                "number_phases": period.number_phases,
            }
        )
    return {
        "duration": composite.duration,
        "start_schedule": to_ocpp(composite.start_schedule),
        "charging_rate_unit": composite.charging_rate_unit.value,
        "charging_schedule_period": periods,
    }
