"""Composite schedules (OCPP 1.6 §5.7, §6.14, §7.13): pure, no I/O, no asyncio.

``composite_schedule`` gives one connector's composite from its profiles, instant by instant
from ``firmware.smart_limit`` (the limit at t); the Smart Charging service
(``firmware.smart_charging``) caps it by local limits (the connector's maximum current, its
share of the site allowance) and adds the connectors' composites up for connector 0, the whole
charger's expected draw.  Apart from the limit at an instant because it is the answer over a
window (GetCompositeSchedule), merged into periods on whole seconds.  A composite here is in A
per phase unless its unit says W; ``in_unit`` converts it for the answer.

A *step function* is a list of (offset in s, limit or None), ascending: from each offset the
limit holds until the next one; None means no limit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from firmware.smart import (
    DEFAULT_PHASES,
    NOMINAL_VOLTAGE,
    ChargingProfile,
    ChargingRateUnit,
    CompositePeriod,
    CompositeSchedule,
    to_watts,
)
from firmware.smart_limit import Limit, boundaries, effective_limit, relevant

Steps = Sequence[tuple[int, float | None]]


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
    for profile in relevant(profiles, connector_id, transaction_start is not None):
        for instant in boundaries(profile, anchor, start, end):
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


def least(*values: float | None) -> float | None:
    """The least of the values given that are not None; None when all are."""
    present = [v for v in values if v is not None]
    return min(present) if present else None


def value_at(schedule: CompositeSchedule, offset: int) -> float | None:
    """The composite's limit ``offset`` s after its start (None: no limit, or before it)."""
    started = [p for p in schedule.charging_schedule_period if p.start_period <= offset]
    return started[-1].limit if started else None


def capped(schedule: CompositeSchedule, caps: Sequence[Steps]) -> CompositeSchedule:
    """``schedule`` with each instant capped by every step function of ``caps`` (in the
    schedule's unit; offsets past its duration ignored), equal neighbours merged."""
    offsets = {p.start_period for p in schedule.charging_schedule_period}
    offsets |= {o for steps in caps for o, _ in steps if o < schedule.duration}
    periods: list[CompositePeriod] = []
    for offset in sorted(offsets):
        current = [p for p in schedule.charging_schedule_period if p.start_period <= offset][-1]
        limits = [current.limit]
        for steps in caps:
            started = [limit for o, limit in steps if o <= offset]
            limits.append(started[-1] if started else None)
        limit = least(*limits)
        if not periods or (periods[-1].limit, periods[-1].number_phases) != (
            limit,
            current.number_phases,
        ):
            periods.append(CompositePeriod(offset, limit, current.number_phases))
    return replace(schedule, charging_schedule_period=tuple(periods))


def summed(
    parts: Sequence[CompositeSchedule],
    start: datetime,
    duration: int,
    phases: int,
    unit: ChargingRateUnit = ChargingRateUnit.A,
) -> CompositeSchedule:
    """The sum of ``parts`` (each in ``unit``, over the same window) at every instant, over
    ``phases`` phases; a part's None (no limit) counts as 0, so give every part a default."""
    offsets = sorted(
        {0} | {p.start_period for part in parts for p in part.charging_schedule_period}
    )
    periods: list[CompositePeriod] = []
    for offset in offsets:
        amps = sum(value_at(part, offset) or 0.0 for part in parts)
        if not periods or periods[-1].limit != amps:
            periods.append(CompositePeriod(offset, amps, phases))
    return CompositeSchedule(start, duration, unit, tuple(periods))


def in_unit(
    schedule: CompositeSchedule, unit: ChargingRateUnit, *, phases: int, voltage: float
) -> CompositeSchedule:
    """A composite in A per phase, in ``unit``: W = A x voltage x ``phases`` (the wiring's)
    (``smart.to_watts``)."""
    if unit is ChargingRateUnit.A:
        return schedule
    periods = tuple(
        CompositePeriod(
            p.start_period,
            None if p.limit is None else to_watts(p.limit, phases=phases, voltage=voltage),
            p.number_phases,
        )
        for p in schedule.charging_schedule_period
    )
    return replace(schedule, charging_rate_unit=unit, charging_schedule_period=periods)


def steps_in_unit(steps: Steps, unit: ChargingRateUnit, *, phases: int, voltage: float) -> Steps:
    """A step function in A per phase, in ``unit`` (W: x voltage x ``phases``)."""
    if unit is ChargingRateUnit.A:
        return steps
    return [
        (o, None if a is None else to_watts(a, phases=phases, voltage=voltage)) for o, a in steps
    ]


__all__ = [
    "Steps",
    "capped",
    "composite_schedule",
    "in_unit",
    "least",
    "steps_in_unit",
    "summed",
    "value_at",
]
