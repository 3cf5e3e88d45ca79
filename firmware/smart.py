"""Smart Charging schedule arithmetic (OCPP 1.6 §3.13, §7.7-7.15): pure, no I/O, no asyncio.

Installed charging profiles -> the limit of one connector at an instant (``limit_at``), the
GetCompositeSchedule answer over a window (``composite_schedule``), the next instant the limit may
change (``next_change``, so the caller sleeps until then), and the reason a SetChargingProfile must
be Rejected (``rejection_reason``). Installing, replacing and clearing profiles, persistence and the
pilot are other modules' business: here a profile is a value.

Times are aware UTC ``datetime`` values, and so is every profile time: a Recurring Daily profile
repeats every 86 400 s from its ``start_schedule``, so in a time zone with summer time it moves by
an hour of local time at each change (the central system sends UTC; OCPP 1.6 has no time zone).

Precedence (§3.13.2, §3.13.3, errata 3.8), at an instant t, for a connector c > 0:

- a profile *applies* at t when ``valid_from <= t < valid_to`` (each bound optional), its schedule
  has started and, if it has a ``duration``, not yet ended: a schedule past its duration no longer
  limits, so a lower stack level takes over again;
- ChargePointMaxProfile (installed on connector 0): the applying one of highest ``stack_level``;
- TxProfile (installed on c, only during a transaction): the applying one of highest level; when
  none applies, TxDefaultProfile: of those installed on c or on 0, the highest level wins, and at
  equal level the one installed on c (our reading of §3.13.1 "connector 0 = every connector, a
  connector's own overrides it": the override keeps to the stacking rule rather than masking a
  higher connector-0 level);
- the limit is the minimum of the ChargePointMax and the Tx/TxDefault limit, in A per phase;
  ``None`` when neither applies.

Connector 0 means the whole charger: only ChargePointMaxProfile applies (no sum over connectors).

Units: a limit in A is per phase; in W it is the total power.  The charger has no phase
switching: the EV may draw the pilot's current on every phase of the connector, whatever a
period's ``numberPhases`` says, so W -> A divides by ``nominal voltage * the connector's phases``
(``to_amps``; ``to_watts`` is the reverse) and a limit's phases are the connector's.
``minChargingRate`` is carried but does not change the limit.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
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
class Limit:
    """An effective limit: ``amps`` per phase over ``number_phases`` phases."""

    amps: float
    number_phases: int


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


def _recurrence(profile: ChargingProfile) -> timedelta:
    return WEEK if profile.recurrency_kind is RecurrencyKind.Weekly else DAY


def _base(profile: ChargingProfile, anchor: datetime) -> datetime:
    """The start of a non-recurring schedule; ``anchor`` is the transaction's start (or now)."""
    schedule = profile.charging_schedule
    if profile.charging_profile_kind is ChargingProfileKind.Relative:
        return anchor
    return schedule.start_schedule or anchor


def _run_start(profile: ChargingProfile, t: datetime, anchor: datetime) -> datetime | None:
    """The start of the schedule run covering t (Recurring: the last recurrence at or before t);
    None before the schedule starts."""
    if profile.charging_profile_kind is ChargingProfileKind.Recurring:
        first = profile.charging_schedule.start_schedule
        if first is None or t < first:
            return None
        period = _recurrence(profile)
        return first + period * ((t - first) // period)
    base = _base(profile, anchor)
    return base if t >= base else None


def anchored(profile: ChargingProfile) -> bool:
    """A schedule that starts with the transaction (Relative; Absolute without a start)."""
    kind = profile.charging_profile_kind
    return kind is ChargingProfileKind.Relative or (
        kind is ChargingProfileKind.Absolute and profile.charging_schedule.start_schedule is None
    )


def starting_now(profile: ChargingProfile, now: datetime) -> ChargingProfile:
    """An ``anchored`` ChargePointMaxProfile as Absolute from ``now`` (or its later
    ``valid_from``): the whole charger has no transaction to start it, and started again at
    each look it would never leave its first period.  Other profiles are returned as they are."""
    if profile.charging_profile_purpose is not ChargingProfilePurpose.ChargePointMaxProfile:
        return profile
    if not anchored(profile):
        return profile
    start = max(now, profile.valid_from or now)
    schedule = replace(profile.charging_schedule, start_schedule=start)
    return replace(
        profile, charging_profile_kind=ChargingProfileKind.Absolute, charging_schedule=schedule
    )


def period_at(
    profile: ChargingProfile, t: datetime, anchor: datetime
) -> ChargingSchedulePeriod | None:
    """The period of ``profile`` in force at t, or None when the profile does not apply at t
    (outside validFrom/validTo, before its start, past its duration)."""
    valid = (profile.valid_from is None or profile.valid_from <= t) and (
        profile.valid_to is None or t < profile.valid_to
    )
    start = _run_start(profile, t, anchor) if valid else None
    if start is None:
        return None
    offset = (t - start).total_seconds()
    schedule = profile.charging_schedule
    if schedule.duration is not None and offset >= schedule.duration:
        return None
    started = [p for p in schedule.charging_schedule_period if p.start_period <= offset]
    return started[-1] if started else None


def _relevant(
    profiles: Iterable[ChargingProfile], connector_id: int, in_transaction: bool
) -> Iterator[ChargingProfile]:
    """The profiles that may limit ``connector_id`` (0: the whole charger)."""
    for profile in profiles:
        purpose = profile.charging_profile_purpose
        if purpose is ChargingProfilePurpose.ChargePointMaxProfile:
            yield profile
        elif connector_id == 0:
            continue
        elif purpose is ChargingProfilePurpose.TxProfile:
            if in_transaction and profile.connector_id == connector_id:
                yield profile
        elif profile.connector_id in (0, connector_id):
            yield profile


def _top(
    candidates: Iterable[tuple[ChargingProfile, ChargingSchedulePeriod]], connector_id: int
) -> tuple[ChargingProfile, ChargingSchedulePeriod] | None:
    """Highest stack level; at equal level the connector's own over connector 0's."""
    return max(
        candidates,
        key=lambda pair: (
            pair[0].stack_level,
            pair[0].connector_id == connector_id,
            pair[0].charging_profile_id,
        ),
        default=None,
    )


def effective_limit(
    profiles: Iterable[ChargingProfile],
    connector_id: int,
    t: datetime,
    *,
    transaction_start: datetime | None = None,
    now: datetime | None = None,
    phases: int = DEFAULT_PHASES,
    voltage: float = NOMINAL_VOLTAGE,
) -> Limit | None:
    """``limit_at`` with the phase count of the limit that won (see the module's rules)."""
    anchor = transaction_start or now or t
    by_purpose: dict[ChargingProfilePurpose, list[tuple[ChargingProfile, ChargingSchedulePeriod]]]
    by_purpose = {purpose: [] for purpose in ChargingProfilePurpose}
    for profile in _relevant(profiles, connector_id, transaction_start is not None):
        period = period_at(profile, t, anchor)
        if period is not None:
            by_purpose[profile.charging_profile_purpose].append((profile, period))
    winners = [
        _top(by_purpose[ChargingProfilePurpose.ChargePointMaxProfile], connector_id),
        _top(by_purpose[ChargingProfilePurpose.TxProfile], connector_id)
        or _top(by_purpose[ChargingProfilePurpose.TxDefaultProfile], connector_id),
    ]
    limits = []
    for profile, period in filter(None, winners):
        unit = profile.charging_schedule.charging_rate_unit
        amps = to_amps(period.limit, unit, phases=phases, voltage=voltage)
        limits.append(Limit(amps, phases))
    return min(limits, key=lambda limit: (limit.amps, limit.number_phases), default=None)


def limit_at(
    profiles: Iterable[ChargingProfile],
    connector_id: int,
    t: datetime,
    *,
    transaction_start: datetime | None = None,
    now: datetime | None = None,
    phases: int = DEFAULT_PHASES,
    voltage: float = NOMINAL_VOLTAGE,
) -> float | None:
    """The effective limit of ``connector_id`` at instant t, in A per phase; None when no profile
    applies. ``transaction_start``: the start of the connector's transaction (None: no
    transaction, so no TxProfile applies); Relative schedules start there, or at ``now`` (default
    t) without one. ``phases`` and ``voltage``: the connector's wiring, for W limits."""
    limit = effective_limit(
        profiles,
        connector_id,
        t,
        transaction_start=transaction_start,
        now=now,
        phases=phases,
        voltage=voltage,
    )
    return None if limit is None else limit.amps


def _boundaries(
    profile: ChargingProfile, anchor: datetime, after: datetime, until: datetime
) -> Iterator[datetime]:
    """Instants at which ``profile``'s contribution may change: validity bounds, period starts,
    the end of the duration; Recurring ones from the run covering ``after`` up to ``until``."""
    for bound in (profile.valid_from, profile.valid_to):
        if bound is not None:
            yield bound
    schedule = profile.charging_schedule
    offsets = [timedelta(seconds=p.start_period) for p in schedule.charging_schedule_period]
    if schedule.duration is not None:
        offsets.append(timedelta(seconds=schedule.duration))
    if profile.charging_profile_kind is not ChargingProfileKind.Recurring:
        base = _base(profile, anchor)
        yield base
        yield from (base + offset for offset in offsets)
        return
    first = schedule.start_schedule
    if first is None:
        return
    period = _recurrence(profile)
    run = first + period * max(0, (after - first) // period)
    while run <= until:
        yield run
        yield from (run + offset for offset in offsets)
        run += period


def next_change(
    profiles: Iterable[ChargingProfile],
    connector_id: int,
    after: datetime,
    *,
    transaction_start: datetime | None = None,
    now: datetime | None = None,
) -> datetime | None:
    """The first instant later than ``after`` at which the limit of ``connector_id`` may change
    (a period boundary, validFrom/validTo, a duration's end, a recurrence), or None when it
    cannot change any more. It may be an instant where the limit stays the same: it is a time to
    look again, not a promise of change."""
    anchor = transaction_start or now or after
    until = after + WEEK + DAY  # a later recurrence repeats what one week holds
    candidates = [
        instant
        for profile in _relevant(profiles, connector_id, transaction_start is not None)
        for instant in _boundaries(profile, anchor, after, until)
        if instant > after
    ]
    return min(candidates, default=None)


def composite_schedule(
    profiles: Iterable[ChargingProfile],
    connector_id: int,
    start: datetime,
    duration: int,
    unit: ChargingRateUnit = ChargingRateUnit.A,
    *,
    transaction_start: datetime | None = None,
    phases: int = DEFAULT_PHASES,
    voltage: float = NOMINAL_VOLTAGE,
    default_limit_a: float | None = None,
) -> CompositeSchedule | None:
    """The GetCompositeSchedule answer (§5.7, §6.14) for ``connector_id`` (0: the whole charger,
    ChargePointMaxProfile only) from ``start`` for ``duration`` s, in ``unit``: at each instant
    the ``limit_at`` value (Relative schedules without a transaction start at ``start``), adjacent
    equal periods merged; periods start on whole seconds (a bound between two seconds shows from
    the next one). Where no profile applies the limit is ``default_limit_a`` (the
    connector's own maximum, if given) or None; None as a whole when no profile applies anywhere
    in the window and no default is given."""
    profiles = list(profiles)
    end = start + timedelta(seconds=duration)
    anchor = transaction_start or start
    # A boundary between whole seconds starts its period at the next second, where the new
    # limit is already in force: periods start on whole seconds (startPeriod is an integer).
    offsets = {0}
    for profile in _relevant(profiles, connector_id, transaction_start is not None):
        for instant in _boundaries(profile, anchor, start, end):
            offset = math.ceil((instant - start).total_seconds())
            if 0 < offset < duration:
                offsets.add(offset)
    periods: list[CompositePeriod] = []
    limited = False
    for offset in sorted(offsets):
        limit = effective_limit(
            profiles,
            connector_id,
            start + timedelta(seconds=offset),
            transaction_start=transaction_start,
            now=start,
            phases=phases,
            voltage=voltage,
        )
        limited = limited or limit is not None
        if limit is None and default_limit_a is not None:
            limit = Limit(default_limit_a, phases)
        if limit is None:
            value, number_phases = None, phases
        elif unit is ChargingRateUnit.W:
            value = to_watts(limit.amps, phases=limit.number_phases, voltage=voltage)
            number_phases = limit.number_phases
        else:
            value, number_phases = limit.amps, limit.number_phases
        if not periods or (periods[-1].limit, periods[-1].number_phases) != (value, number_phases):
            periods.append(CompositePeriod(offset, value, number_phases))
    if not limited and default_limit_a is None:
        return None
    return CompositeSchedule(start, duration, unit, tuple(periods))


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
