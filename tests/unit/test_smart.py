"""firmware.smart: the Smart Charging schedule arithmetic (OCPP 1.6 §3.13, §7.7-7.15)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.smart import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    CompositePeriod,
    RecurrencyKind,
    rejection_reason,
    to_amps,
    to_watts,
)
from firmware.smart_composite import composite_schedule
from firmware.smart_limit import limit_at, next_change, period_at, starting_now

A, W = ChargingRateUnit.A, ChargingRateUnit.W
MAX = ChargingProfilePurpose.ChargePointMaxProfile
DEFAULT = ChargingProfilePurpose.TxDefaultProfile
TX = ChargingProfilePurpose.TxProfile
ABSOLUTE = ChargingProfileKind.Absolute
RECURRING = ChargingProfileKind.Recurring
RELATIVE = ChargingProfileKind.Relative


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def profile(
    *periods: tuple[int, float] | tuple[int, float, int | None],
    id: int = 1,
    level: int = 0,
    purpose: ChargingProfilePurpose = DEFAULT,
    kind: ChargingProfileKind = ABSOLUTE,
    connector: int = 0,
    unit: ChargingRateUnit = A,
    start: datetime | None = None,
    duration: int | None = None,
    recurrency: RecurrencyKind | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> ChargingProfile:
    schedule = ChargingSchedule(
        unit,
        tuple(ChargingSchedulePeriod(*p) for p in periods),
        duration=duration,
        start_schedule=start,
    )
    return ChargingProfile(
        id,
        level,
        purpose,
        kind,
        schedule,
        connector,
        recurrency,
        valid_from,
        valid_to,
    )


# Modelled on the OCPP 1.6 §3.13.4 example: a daily TxDefaultProfile in W, 11 kW at night and
# 6 kW from 08:00 to 20:00 (UTC), startSchedule 2013-01-01T00:00Z, duration one day.
DAILY = profile(
    (0, 11000, 3),
    (28800, 6000, 3),
    (72000, 11000, 3),
    id=100,
    kind=RECURRING,
    recurrency=RecurrencyKind.Daily,
    unit=W,
    start=at("2013-01-01T00:00"),
    duration=86400,
)


def test_the_daily_example_in_amps_and_watts() -> None:
    tx = at("2024-06-01T07:00")
    assert limit_at([DAILY], 1, at("2024-06-01T07:59:59"), transaction_start=tx) == pytest.approx(
        11000 / 690
    )
    assert limit_at([DAILY], 1, at("2024-06-01T08:00"), transaction_start=tx) == pytest.approx(
        6000 / 690
    )
    assert limit_at([DAILY], 1, at("2024-06-01T20:00"), transaction_start=tx) == pytest.approx(
        11000 / 690
    )
    day = composite_schedule([DAILY], 1, at("2024-06-01T00:00"), 86400, W)
    assert day is not None
    assert [(p.start_period, round(p.limit or 0)) for p in day.charging_schedule_period] == [
        (0, 11000),
        (28800, 6000),
        (72000, 11000),
    ]


def test_recurring_daily_across_midnight_utc() -> None:
    """22:00-06:00 UTC at 10 A, else 32 A: the night period runs on across midnight into the
    next recurrence (profiles are UTC: no local time, no DST shift in the arithmetic)."""
    night = profile(
        (0, 10),
        (6 * 3600, 32),
        (22 * 3600, 10),
        kind=RECURRING,
        recurrency=RecurrencyKind.Daily,
        start=at("2024-01-01T00:00"),
    )
    # 2024-03-31 is the EU summer-time change; UTC does not notice.
    for text, amps in [
        ("2024-03-30T21:59:59", 32),
        ("2024-03-30T22:00", 10),
        ("2024-03-30T23:59:59", 10),
        ("2024-03-31T00:00", 10),
        ("2024-03-31T05:59:59", 10),
        ("2024-03-31T06:00", 32),
    ]:
        assert limit_at([night], 1, at(text)) == amps, text
    assert next_change([night], 1, at("2024-03-30T23:00")) == at("2024-03-31T00:00")
    assert next_change([night], 1, at("2024-03-31T00:00")) == at("2024-03-31T06:00")
    window = composite_schedule([night], 1, at("2024-03-30T20:00"), 12 * 3600)
    assert window is not None
    # The recurrence boundary at midnight is merged away: the limit does not change there.
    assert window.charging_schedule_period == (
        CompositePeriod(0, 32, 3),
        CompositePeriod(2 * 3600, 10, 3),
        CompositePeriod(10 * 3600, 32, 3),
    )


def test_recurring_weekly_and_before_its_start() -> None:
    # 2024-01-01 is a Monday: 16 A from Monday 00:00 for two days, unlimited the rest of the week.
    weekly = profile(
        (0, 16),
        kind=RECURRING,
        recurrency=RecurrencyKind.Weekly,
        start=at("2024-01-01T00:00"),
        duration=2 * 86400,
    )
    assert limit_at([weekly], 1, at("2023-12-31T12:00")) is None  # before startSchedule
    assert limit_at([weekly], 1, at("2024-01-02T23:59")) == 16
    assert limit_at([weekly], 1, at("2024-01-03T00:00")) is None  # past its duration
    assert limit_at([weekly], 1, at("2024-03-04T01:00")) == 16  # a Monday, nine weeks on
    assert limit_at([weekly], 1, at("2024-03-07T01:00")) is None  # the Thursday
    assert next_change([weekly], 1, at("2024-01-03T00:00")) == at("2024-01-08T00:00")


def test_relative_starts_with_the_transaction_or_now() -> None:
    rel = profile((0, 6), (600, 16), kind=RELATIVE, duration=3600)
    tx = at("2024-05-05T10:00")
    assert limit_at([rel], 1, at("2024-05-05T10:09:59"), transaction_start=tx) == 6
    assert limit_at([rel], 1, at("2024-05-05T10:10"), transaction_start=tx) == 16
    assert limit_at([rel], 1, at("2024-05-05T11:00"), transaction_start=tx) is None
    # No transaction: it starts now.
    assert limit_at([rel], 1, at("2024-05-05T10:10")) == 6
    assert limit_at([rel], 1, at("2024-05-05T10:10"), now=at("2024-05-05T09:30")) == 16
    assert next_change([rel], 1, at("2024-05-05T10:00"), transaction_start=tx) == at(
        "2024-05-05T10:10"
    )
    # Absolute without startSchedule is relative to the transaction's start as well (§7.13).
    assert (
        limit_at([replace(rel, charging_profile_kind=ABSOLUTE)], 1, tx, transaction_start=tx) == 6
    )


def test_valid_from_and_valid_to_edges() -> None:
    bounded = profile(
        (0, 10),
        start=at("2024-01-01T00:00"),
        valid_from=at("2024-02-01T00:00"),
        valid_to=at("2024-02-02T00:00"),
    )
    assert limit_at([bounded], 1, at("2024-01-31T23:59:59")) is None
    assert limit_at([bounded], 1, at("2024-02-01T00:00")) == 10  # validFrom is inclusive
    assert limit_at([bounded], 1, at("2024-02-01T23:59:59")) == 10
    assert limit_at([bounded], 1, at("2024-02-02T00:00")) is None  # validTo is exclusive
    assert next_change([bounded], 1, at("2024-01-15T00:00")) == at("2024-02-01T00:00")
    assert next_change([bounded], 1, at("2024-02-01T00:00")) == at("2024-02-02T00:00")
    assert next_change([bounded], 1, at("2024-02-02T00:00")) is None


def test_watts_to_amps_honours_the_connectors_phases_and_voltage() -> None:
    assert to_amps(11000, W) == pytest.approx(11000 / (230 * 3))
    assert to_amps(3680, W, phases=1) == pytest.approx(16)
    assert to_amps(11000, W, phases=1) == pytest.approx(11000 / 230)  # a 1-phase connector
    assert to_amps(7200, W, voltage=240) == pytest.approx(10)
    assert to_amps(16, A, phases=1) == 16  # A is already per phase
    assert to_watts(16) == pytest.approx(11040)
    assert to_watts(16, phases=1) == pytest.approx(3680)
    assert to_amps(to_watts(13.5, phases=2), W, phases=2) == pytest.approx(13.5)
    # numberPhases 1 on a three-phase connector: the EV may still draw on three phases (the
    # charger has no phase switching), so 3680 W in total is 5.3 A on each of them.
    one_phase = profile((0, 3680, 1), unit=W, start=at("2024-01-01T00:00"))
    assert limit_at([one_phase], 1, at("2024-01-01T01:00")) == pytest.approx(3680 / 690)
    assert limit_at([one_phase], 1, at("2024-01-01T01:00"), phases=1) == pytest.approx(16)
    schedule = composite_schedule([one_phase], 1, at("2024-01-01T01:00"), 60, W)
    assert schedule is not None
    ((period,),) = [schedule.charging_schedule_period]
    assert (period.start_period, period.limit, period.number_phases) == (0, pytest.approx(3680), 3)


def test_stack_levels_and_purposes() -> None:
    t0 = at("2024-01-01T00:00")
    now = at("2024-01-01T12:00")
    base = profile((0, 32), id=1, level=0, start=t0)
    higher = profile((0, 20), id=2, level=1, start=t0)
    own = profile((0, 25), id=3, level=1, connector=2, start=t0)
    tx = profile((0, 28), id=4, level=0, purpose=TX, connector=1, start=t0)
    cap = profile((0, 24), id=5, level=0, purpose=MAX, start=t0)
    assert limit_at([base], 1, now) == 32
    assert limit_at([base, higher], 1, now) == 20  # the higher level wins, even if higher
    assert limit_at([base, higher, own], 2, now) == 25  # same level: the connector's own
    assert limit_at([base, higher, own], 1, now) == 20  # connector 2's does not touch 1
    assert limit_at([base, higher, tx], 1, now, transaction_start=t0) == 28  # TxProfile first
    assert limit_at([base, higher, tx], 1, now) == 20  # no transaction, no TxProfile
    assert limit_at([base, higher, tx, cap], 1, now, transaction_start=t0) == 24  # the cap
    assert limit_at([base, higher, cap], 0, now) == 24  # connector 0: the charger's cap only
    assert limit_at([base, higher], 0, now) is None
    assert limit_at([], 1, now) is None


def test_a_higher_level_past_its_duration_gives_way() -> None:
    t0 = at("2024-01-01T00:00")
    low = profile((0, 32), id=1, level=0, start=t0)
    high = profile((0, 8), id=2, level=3, start=t0, duration=3600)
    assert limit_at([low, high], 1, t0 + timedelta(minutes=59)) == 8
    assert limit_at([low, high], 1, t0 + timedelta(hours=1)) == 32
    assert next_change([low, high], 1, t0) == t0 + timedelta(hours=1)


def test_composite_merges_equal_periods_and_fills_gaps() -> None:
    t0 = at("2024-01-01T00:00")
    steps = profile((0, 16), (600, 16), (1200, 10), id=1, start=t0, duration=1800)
    cap = profile((0, 13), id=2, purpose=MAX, start=t0)
    schedule = composite_schedule([steps, cap], 1, t0, 3600)
    assert schedule is not None
    assert schedule.charging_schedule_period == (
        CompositePeriod(0, 13, 3),
        CompositePeriod(1200, 10, 3),
        CompositePeriod(1800, 13, 3),
    )
    only_steps = composite_schedule([steps], 1, t0, 3600)
    assert only_steps is not None
    assert only_steps.charging_schedule_period[-1] == CompositePeriod(1800, None, 3)
    filled = composite_schedule([steps], 1, t0, 3600, default_limit_a=32)
    assert filled is not None
    assert filled.charging_schedule_period[-1] == CompositePeriod(1800, 32, 3)
    assert composite_schedule([steps], 1, t0 + timedelta(hours=2), 600) is None
    assert composite_schedule([steps], 0, t0, 600) is None  # connector 0: no ChargePointMax


def test_rejection_reasons() -> None:
    t0 = at("2024-01-01T00:00")
    ok = profile((0, 16), (60, 8), start=t0)
    limits = dict(number_of_connectors=2, active_transaction_id=None, max_stack_level=8)

    def reason(p: ChargingProfile, **overrides: object) -> str | None:
        options: dict = {**limits, "max_periods": 4, **overrides}
        return rejection_reason(p, **options)

    assert reason(ok) is None
    assert reason(replace(ok, connector_id=3)) == "connector 3 does not exist (0..2)"
    cpmax = replace(ok, charging_profile_purpose=MAX, connector_id=1)
    assert reason(cpmax) == "ChargePointMaxProfile is only for connector 0"
    tx = replace(ok, charging_profile_purpose=TX, connector_id=1)
    assert reason(tx) == "TxProfile without a transaction on the connector"
    assert reason(tx, active_transaction_id=7) is None
    assert "not the connector's transaction" in (
        reason(replace(tx, transaction_id=8), active_transaction_id=7) or ""
    )
    assert reason(replace(tx, connector_id=0), active_transaction_id=7) == (
        "TxProfile needs a connector, not 0"
    )
    assert reason(replace(ok, transaction_id=7)) == "transactionId is only for a TxProfile"
    # RemoteStartTransaction (TC_059, TC_060): a TxProfile, no transactionId, no transaction yet.
    assert reason(tx, remote_start=True) is None
    assert reason(ok, remote_start=True) == "RemoteStartTransaction takes only a TxProfile"
    assert reason(replace(tx, transaction_id=7), remote_start=True) == (
        "a RemoteStartTransaction profile has no transactionId"
    )
    assert "ChargeProfileMaxStackLevel" in (reason(replace(ok, stack_level=9)) or "")
    assert "ChargingScheduleMaxPeriods" in (reason(ok, max_periods=1) or "")
    assert reason(ok, allowed_units=[W]) == "chargingRateUnit not allowed"

    def with_periods(*periods: tuple[int, float]) -> ChargingProfile:
        schedule = replace(
            ok.charging_schedule,
            charging_schedule_period=tuple(ChargingSchedulePeriod(*p) for p in periods),
        )
        return replace(ok, charging_schedule=schedule)

    assert reason(with_periods((10, 16))) == "the first startPeriod is not 0"
    assert reason(with_periods((0, 16), (60, 8), (60, 4))) == "startPeriod values are not ascending"
    assert reason(with_periods()) == "no chargingSchedulePeriod"
    assert reason(with_periods((0, -1))) == "a negative limit"
    recurring = replace(ok, charging_profile_kind=RECURRING)
    assert reason(recurring) == "Recurring without recurrencyKind"
    no_start = replace(ok.charging_schedule, start_schedule=None)
    assert (
        reason(replace(recurring, recurrency_kind=RecurrencyKind.Daily, charging_schedule=no_start))
        == "Recurring without startSchedule"
    )
    assert reason(replace(ok, valid_from=t0, valid_to=t0)) == "validFrom is not before validTo"


# A property over random profile sets: the limit is the one the precedence rules pick, it never
# exceeds the winner of any purpose, and the composite agrees with limit_at at each period start.

EPOCH = at("2024-01-01T00:00")


@st.composite
def profiles(draw: st.DrawFn, id: int) -> ChargingProfile:
    purpose = draw(st.sampled_from(list(ChargingProfilePurpose)))
    connector = 0 if purpose is MAX else draw(st.sampled_from([1, 2] if purpose is TX else [0, 1]))
    kind = draw(st.sampled_from(list(ChargingProfileKind)))
    unit = draw(st.sampled_from([A, W]))
    scale = 690 if unit is W else 1
    starts = sorted(draw(st.sets(st.integers(1, 20), max_size=3)))
    phases = st.none() | st.integers(1, 3)
    periods = [(0, draw(st.integers(0, 32)) * scale, draw(phases))] + [
        (s * 600, draw(st.integers(0, 32)) * scale, draw(phases)) for s in starts
    ]
    # Validity bounds may fall between whole seconds (OCPP dateTime carries milliseconds).
    half = st.sampled_from([0, 500_000]).map(lambda us: timedelta(microseconds=us))
    hours = st.integers(0, 48).map(lambda h: EPOCH + timedelta(hours=h))
    valid_from = draw(st.none() | st.builds(lambda t, d: t + d, hours, half))
    valid_to = draw(st.none() | st.integers(49, 96).map(lambda h: EPOCH + timedelta(hours=h)))
    return profile(
        *periods,
        id=id,
        level=draw(st.integers(0, 3)),
        purpose=purpose,
        kind=kind,
        connector=connector,
        unit=unit,
        start=EPOCH + timedelta(minutes=draw(st.integers(0, 600))),
        duration=draw(st.none() | st.integers(1, 30).map(lambda m: m * 600)),
        recurrency=draw(st.sampled_from(list(RecurrencyKind))) if kind is RECURRING else None,
        valid_from=valid_from,
        valid_to=valid_to,
    )


profile_sets = st.integers(0, 5).flatmap(
    lambda n: st.tuples(*(profiles(i) for i in range(1, n + 1)))
)
instants = st.integers(0, 4 * 24 * 60).map(lambda m: EPOCH + timedelta(minutes=m))


@settings(max_examples=60, deadline=None)
@given(
    profile_sets, instants, st.none() | instants, st.sampled_from([0, 1]), st.sampled_from([1, 3])
)
def test_limit_is_the_minimum_of_the_winners(
    installed: tuple[ChargingProfile, ...],
    t: datetime,
    transaction_start: datetime | None,
    connector: int,
    wiring: int,
) -> None:
    for p in installed:
        assert (
            rejection_reason(
                p,
                number_of_connectors=2,
                active_transaction_id=1,
                max_stack_level=3,
                max_periods=4,
            )
            is None
        )
    anchor = transaction_start or t
    active = {
        p: period
        for p in installed
        if (period := period_at(p, t, anchor)) is not None
        and (connector != 0 or p.charging_profile_purpose is MAX)
        and p.connector_id in (0, connector)
        and (p.charging_profile_purpose is not TX or transaction_start is not None)
    }

    def amps(p: ChargingProfile) -> float:
        period = active[p]
        unit = p.charging_schedule.charging_rate_unit
        return to_amps(period.limit, unit, phases=wiring)

    def top(purpose: ChargingProfilePurpose) -> float | None:
        levels = [p.stack_level for p in active if p.charging_profile_purpose is purpose]
        if not levels:
            return None
        tied = [
            p
            for p in active
            if p.charging_profile_purpose is purpose and p.stack_level == max(levels)
        ]
        own = [p for p in tied if p.connector_id == connector] or tied
        return amps(max(own, key=lambda p: p.charging_profile_id))

    cap, tx = top(MAX), top(TX)
    tx = tx if tx is not None else top(DEFAULT)
    expected = [x for x in (cap, tx) if x is not None]
    got = limit_at(installed, connector, t, transaction_start=transaction_start, phases=wiring)
    assert got == (min(expected) if expected else None)
    for winner in expected:
        assert got is not None and got <= winner
    if got is not None:
        assert got in {amps(p) for p in active}

    start = transaction_start or t

    def limit(instant: datetime) -> float | None:
        return limit_at(
            installed,
            connector,
            instant,
            transaction_start=transaction_start,
            now=start,
            phases=wiring,
        )

    # The caller sleeps until next_change: the limit must not move before it.
    change = next_change(installed, connector, start, transaction_start=transaction_start)
    if change is not None:
        assert change > start
    horizon = change or start + timedelta(days=8)
    for step in range(1, 8):
        assert limit(start + (horizon - start) * step / 8) == limit(start)

    schedule = composite_schedule(
        installed, connector, start, 24 * 3600, transaction_start=transaction_start, phases=wiring
    )
    if schedule is None:
        assert all(limit(start + timedelta(hours=h)) is None for h in range(24))
        return
    bounds = [p.start_period for p in schedule.charging_schedule_period] + [24 * 3600]
    for part, (lo, hi) in zip(schedule.charging_schedule_period, pairwise(bounds), strict=True):
        # At each period start, and (the limit does not move inside a period) in its middle;
        # periods are whole seconds, so a bound between two seconds shows from the next one.
        assert part.limit == limit(start + timedelta(seconds=lo))
        assert part.limit == limit(start + timedelta(seconds=(lo + hi - 1) / 2))


def test_the_worked_example_of_docs_smart_charging() -> None:
    """The table in docs/smart-charging.md: a daily W TxDefault under a daily 10 A cap."""
    cap = profile(
        (0, 10),
        id=1,
        purpose=MAX,
        kind=RECURRING,
        recurrency=RecurrencyKind.Daily,
        start=at("2013-01-01T17:00"),
        duration=4 * 3600,
    )
    day = at("2024-06-01T00:00")
    amps = composite_schedule([DAILY, cap], 1, day, 86400, transaction_start=day)
    watts = composite_schedule([DAILY, cap], 1, day, 86400, W, transaction_start=day)
    assert amps is not None and watts is not None
    assert [
        (p.start_period // 3600, round(p.limit or 0, 1)) for p in amps.charging_schedule_period
    ] == [
        (0, 15.9),
        (8, 8.7),
        (20, 10),
        (21, 15.9),
    ]
    assert [
        (p.start_period // 3600, round(p.limit or 0)) for p in watts.charging_schedule_period
    ] == [
        (0, 11000),
        (8, 6000),
        (20, 6900),
        (21, 11000),
    ]
    whole = composite_schedule([DAILY, cap], 0, day, 86400)
    assert whole is not None
    assert whole.charging_schedule_period == (
        CompositePeriod(0, None, 3),
        CompositePeriod(17 * 3600, 10, 3),
        CompositePeriod(21 * 3600, None, 3),
    )
    assert next_change([DAILY, cap], 1, at("2024-06-01T12:00")) == at("2024-06-01T17:00")


def test_utc_profiles_move_in_local_time_across_a_dst_change() -> None:
    """A daily step at 22:00 UTC is 23:00 in Amsterdam in winter and 00:00 in summer: the
    arithmetic is UTC only, the local hour moves."""
    amsterdam = ZoneInfo("Europe/Amsterdam")
    night = profile(
        (0, 32),
        (22 * 3600, 10),
        kind=RECURRING,
        recurrency=RecurrencyKind.Daily,
        start=at("2024-01-01T00:00"),
    )
    winter = next_change([night], 1, at("2024-03-30T12:00"))
    summer = next_change([night], 1, at("2024-03-31T12:00"))
    assert winter is not None and summer is not None
    assert summer - winter == timedelta(days=1)  # exactly 24 h, across the change
    assert winter.astimezone(amsterdam).hour == 23
    assert summer.astimezone(amsterdam).hour == 0


def test_a_temporary_higher_level_over_a_daily_default() -> None:
    """§3.13.2 stacking: a level-1 TxDefault valid for one evening sits on the daily level 0."""
    evening = profile(
        (0, 6),
        id=2,
        level=1,
        start=at("2024-06-01T18:00"),
        duration=3 * 3600,
        valid_from=at("2024-06-01T00:00"),
        valid_to=at("2024-06-02T00:00"),
    )
    start = at("2024-06-01T12:00")
    schedule = composite_schedule([DAILY, evening], 1, start, 12 * 3600, W, transaction_start=start)
    assert schedule is not None
    assert [
        (p.start_period // 3600, round(p.limit or 0)) for p in schedule.charging_schedule_period
    ] == [
        (0, 6000),  # 12:00: the daily 6 kW
        (6, 4140),  # 18:00: level 1, 6 A = 4140 W; it wins over the daily 11 kW from 20:00 too
        (9, 11000),  # 21:00: its duration is over, level 0 again
    ]
    assert limit_at([DAILY, evening], 1, at("2024-06-02T19:00"), transaction_start=start) == (
        pytest.approx(6000 / 690)
    )  # the next day: validTo has passed


def test_min_charging_rate_does_not_change_the_limit() -> None:
    p = profile((0, 16), start=at("2024-01-01T00:00"))
    slow = replace(p, charging_schedule=replace(p.charging_schedule, min_charging_rate=8))
    assert limit_at([slow], 1, at("2024-01-01T01:00")) == 16
    assert next_change([], 1, at("2024-01-01T01:00")) is None


def test_a_charge_point_max_profile_without_a_start_starts_when_installed_or_valid() -> None:
    now = at("2024-01-01T10:00")
    relative = profile((0, 10), (60, 14), purpose=MAX, kind=RELATIVE)
    started = starting_now(relative, now)
    assert started.charging_profile_kind is ABSOLUTE
    assert started.charging_schedule.start_schedule == now
    later = replace(relative, valid_from=at("2024-01-02T08:00"))
    assert starting_now(later, now).charging_schedule.start_schedule == at("2024-01-02T08:00")
    tx_default = profile((0, 10), kind=RELATIVE)
    assert starting_now(tx_default, now) == tx_default, "a transaction starts it"
    absolute = profile((0, 10), purpose=MAX, start=at("2023-01-01T00:00"))
    assert starting_now(absolute, now) == absolute
