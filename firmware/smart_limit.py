"""The limit Smart Charging profiles set at an instant (OCPP 1.6 §3.13, errata 3.8): pure.

Installed charging profiles (``firmware.smart`` values) -> the limit of one connector at an
instant (``limit_at``, ``effective_limit``), the next instant the limit may change
(``next_change``, so the caller sleeps until then), and when a schedule starts (``anchored``,
``starting_now``).  Apart from the profile model and its validation (``firmware.smart``) because
this is the evaluation in time: the composite over a window (``firmware.smart_composite``) is
built from it, instant by instant.  No I/O, no asyncio.

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
Units as in ``firmware.smart`` (``to_amps``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from firmware.smart import (
    DAY,
    DEFAULT_PHASES,
    NOMINAL_VOLTAGE,
    WEEK,
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingSchedulePeriod,
    RecurrencyKind,
    to_amps,
)


@dataclass(frozen=True)
class Limit:
    """An effective limit: ``amps`` per phase over ``number_phases`` phases."""

    amps: float
    number_phases: int


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


def relevant(
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
    for profile in relevant(profiles, connector_id, transaction_start is not None):
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


def boundaries(
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
        for profile in relevant(profiles, connector_id, transaction_start is not None)
        for instant in boundaries(profile, anchor, after, until)
        if instant > after
    ]
    return min(candidates, default=None)
