"""The Smart Charging service's rules without time passing: install/replace/clear, the
read-only keys, TxProfile binding, W -> A with the wiring, the limits it computes at any instant
and the instants it wakes at (recurring across midnight UTC, a DST change), and a hypothesis
property: whatever profiles were accepted and whatever the site allows, no connector in a
transaction is offered more than any limit in force, nor between 0 and 6 A.

The connectors are real ``ConnectorController`` objects that are not running: a transaction is
given to one by setting its handle; the limit the service sets is read back from ``limit_a``
and the offer is what the connector makes of it (``max_current_a``, the 6 A rule, pinned down by
test_connector_limit on the running connector)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import clock
from firmware.config_keys import KeyRegistry, build_registry
from firmware.connector import ConnectorController
from firmware.domain import AuthorizationStatus, IdTagInfo
from firmware.ports import TransactionHandle
from firmware.profile_store import ProfileStore
from firmware.smart import (
    ChargingProfile,
    ChargingProfileKind,
    RecurrencyKind,
)
from firmware.smart_allocation import Wiring
from firmware.smart_charging import SmartCharging
from firmware.smart_limit import limit_at
from hal.config import ContactorConfig
from hal.gpio import GpioContactor
from hal.interfaces import ConnectorDevices
from hal.sim.ev import SimulatedEv
from hal.types import MIN_PILOT_CURRENT_A
from tests.unit.test_connector_runtime import CountingMeter, EvPilot, RecordingLink
from tests.unit.test_smart_charging import (
    ABSOLUTE,
    DEFAULT,
    MAX,
    RECURRING,
    RELATIVE,
    TX,
    A,
    W,
    profile,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def _authorize(id_tag: str) -> IdTagInfo:
    return IdTagInfo(AuthorizationStatus.ACCEPTED)


def connectors(n: int, keys: KeyRegistry, rating: float = 16.0) -> list[ConnectorController]:
    """``n`` tethered connectors of ``rating`` A on real contactor drivers over mock pins."""
    factory = MockFactory()
    return [
        ConnectorController(
            ConnectorDevices(
                i,
                EvPilot(SimulatedEv()),
                GpioContactor(ContactorConfig(4 + i, settle_s=0), factory, clock=lambda: 0.0),
                CountingMeter(),
                None,
                rating,
            ),
            RecordingLink(),
            keys,
            _authorize,
        )
        for i in range(1, n + 1)
    ]


@contextmanager
def wall_clock(t: datetime) -> Iterator[list[datetime]]:
    """``clock.utcnow()`` reads ``now[0]``; the test moves it."""
    now = [t]
    clock.set_wall_clock(lambda: now[0])
    try:
        yield now
    finally:
        clock.set_wall_clock(None)


def service(
    n: int = 1,
    *,
    state_dir: Path | None = None,
    phases: int = 3,
    voltage: float = 230.0,
    **keys: str,
) -> SmartCharging:
    """The service on ``n`` connectors that do not run; ``keys`` (the read-only Smart Charging
    keys among them) as a configuration file's [ocpp_keys] sets them."""
    registry = build_registry(number_of_connectors=n, tethered=True)
    registry.apply_file_overrides(dict(keys))
    return SmartCharging(
        ProfileStore.open(state_dir),
        connectors(n, registry),
        registry,
        phases=phases,
        voltage=voltage,
    )


def begin(smart: SmartCharging, connector_id: int, local_id: int, started: datetime) -> None:
    """A transaction ``local_id`` begins on the connector at ``started`` (as the connector's
    BeginTransaction does: the handle, then the notification)."""
    c = smart.connectors[connector_id]
    handle = TransactionHandle(local_id, connector_id, "TAG", 0, started)
    c.transaction_meter.handle = handle
    smart._transaction_changed(connector_id, handle)


def end(smart: SmartCharging, connector_id: int) -> None:
    smart.connectors[connector_id].transaction_meter.handle = None
    smart._transaction_changed(connector_id, None)


def ids(smart: SmartCharging) -> list[int]:
    return sorted(p.charging_profile_id for p in smart.profiles)


# ---------------------------------------------------------------- install, replace, clear


def test_same_id_or_same_purpose_level_and_connector_replaces() -> None:
    with wall_clock(T0):
        smart = service(2)
        assert smart.set_charging_profile(profile((0, 10), id=1, connector=1)) is None
        assert smart.set_charging_profile(profile((0, 12), id=2, connector=2)) is None
        assert smart.set_charging_profile(profile((0, 14), id=3, connector=1, level=1)) is None
        assert ids(smart) == [1, 2, 3]
        # Same purpose, level and connector as 1: replaces it.
        assert smart.set_charging_profile(profile((0, 9), id=4, connector=1)) is None
        assert ids(smart) == [2, 3, 4]
        # Same id as 2, elsewhere (connector 0, another purpose): replaces it anywhere.
        assert smart.set_charging_profile(profile((0, 20), id=2, purpose=MAX)) is None
        assert ids(smart) == [2, 3, 4]
        assert {p.charging_profile_id: p.connector_id for p in smart.profiles}[2] == 0
        # Both rules at once: id 3's id and id 4's slot: both go.
        assert smart.set_charging_profile(profile((0, 8), id=3, connector=1)) is None
        assert ids(smart) == [2, 3]
        assert smart.connectors[1].limit_a == 8.0
        assert smart.connectors[2].limit_a is None, "its 16 A share of 20 A: its rating"


def test_clear_with_every_filter() -> None:
    with wall_clock(T0):
        smart = service(2)
        for p in (
            profile((0, 10), id=1, connector=1),
            profile((0, 10), id=2, connector=2),
            profile((0, 10), id=3, connector=1, level=2),
            profile((0, 10), id=4, connector=0, level=2),
            profile((0, 30), id=5, purpose=MAX, level=2),
        ):
            assert smart.set_charging_profile(p) is None
        assert smart.clear_charging_profile(charging_profile_id=99) is False
        # The id alone counts when given (errata 3.25): the other filters do not match 1.
        assert smart.clear_charging_profile(charging_profile_id=1, connector_id=2, stack_level=7)
        assert ids(smart) == [2, 3, 4, 5]
        assert smart.clear_charging_profile(connector_id=1, purpose=MAX) is False, "AND-matched"
        assert smart.clear_charging_profile(stack_level=2, purpose=DEFAULT) is True
        assert ids(smart) == [2, 5]
        assert smart.clear_charging_profile(connector_id=0) is True
        assert ids(smart) == [2]
        assert smart.clear_charging_profile(purpose=DEFAULT, connector_id=2, stack_level=0)
        assert smart.clear_charging_profile() is False, "nothing left"
        assert smart.connectors[1].limit_a is None and smart.connectors[2].limit_a is None


def test_the_read_only_keys_are_enforced() -> None:
    with wall_clock(T0):
        smart = service(
            ChargeProfileMaxStackLevel="3",
            ChargingScheduleMaxPeriods="2",
            ChargingScheduleAllowedChargingRateUnit="Current",
            MaxChargingProfilesInstalled="2",
        )
        assert "stackLevel 4 outside 0..3" in (
            smart.set_charging_profile(profile((0, 8), level=4)) or ""
        )
        assert "3 periods, more than 2" in (
            smart.set_charging_profile(profile((0, 8), (60, 9), (120, 10))) or ""
        )
        assert (
            smart.set_charging_profile(profile((0, 8000), unit=W)) == "chargingRateUnit not allowed"
        )
        assert smart.set_charging_profile(profile((0, 8), id=1)) is None
        assert smart.set_charging_profile(profile((0, 9), id=2, level=1)) is None
        full = smart.set_charging_profile(profile((0, 10), id=3, level=2))
        assert full == "2 profiles are installed already (MaxChargingProfilesInstalled)"
        # A replacement needs no room.
        assert smart.set_charging_profile(profile((0, 11), id=4, level=1)) is None
        assert ids(smart) == [1, 4] and smart.connectors[1].limit_a == 11.0
        assert smart.set_charging_profile(profile((0, 7), purpose=MAX, connector=1)) == (
            "ChargePointMaxProfile is only for connector 0"
        )


def test_a_waiting_remote_start_profile_keeps_its_room() -> None:
    """A RemoteStartTransaction's TxProfile, accepted, is installed when its transaction
    begins: profiles set meanwhile must leave it room, or the transaction would run without
    the limit the central system was told is accepted."""
    with wall_clock(T0):
        smart = service(2, MaxChargingProfilesInstalled="2")
        assert smart.set_charging_profile(profile((0, 16), id=1)) is None
        assert smart.remote_start_profile(1, profile((0, 8), id=2, purpose=TX)) is None
        # A later remote start on the same connector replaces the waiting one: no room needed.
        assert smart.remote_start_profile(1, profile((0, 7), id=2, purpose=TX)) is None
        assert smart.remote_start_profile(2, profile((0, 9), id=3, purpose=TX)) == (
            "2 profiles are installed already (MaxChargingProfilesInstalled)"
        )
        assert smart.set_charging_profile(profile((0, 10), id=4, level=1)) == (
            "2 profiles are installed already (MaxChargingProfilesInstalled)"
        )
        begin(smart, 1, 1, T0)
        assert ids(smart) == [1, 2] and smart.connectors[1].limit_a == 7.0


def test_clearing_reaches_a_remote_start_profile_still_waiting() -> None:
    """Cleared before its transaction began, a RemoteStartTransaction's TxProfile must not be
    installed afterwards (ClearChargingProfile answered Unknown, then the profile in force)."""
    with wall_clock(T0):
        smart = service(2)
        assert smart.remote_start_profile(1, profile((0, 8), id=7, level=2, purpose=TX)) is None
        assert smart.clear_charging_profile(charging_profile_id=8) is False
        assert smart.clear_charging_profile(purpose=DEFAULT) is False
        assert smart.clear_charging_profile(connector_id=2) is False
        assert smart.clear_charging_profile(connector_id=1, purpose=TX, stack_level=2) is True
        assert smart.connectors[1].limit_a is None
        begin(smart, 1, 1, T0)
        assert smart.profiles == [] and smart.connectors[1].limit_a is None
        assert smart.remote_start_profile(2, profile((0, 8), id=7, purpose=TX)) is None
        assert smart.clear_charging_profile(charging_profile_id=7) is True
        begin(smart, 2, 2, T0)
        assert smart.profiles == []


def test_a_row_that_cannot_be_read_does_not_block_its_place_for_ever(tmp_path: Path) -> None:
    """A stored row that cannot be read back (hand-edited, or from a newer version) is ignored
    at start, but it still held its id and its purpose, stack level and connector in the file:
    every later profile for that place was Rejected ("could not be stored").  It is replaced
    like a readable one."""
    store = ProfileStore.open(tmp_path)
    store._db.execute(
        "INSERT INTO charging_profile VALUES (5, 0, 'TxDefaultProfile', 0, NULL, '{\"x\": 1}')"
    )
    store._db.execute(
        "INSERT INTO charging_profile VALUES (6, 0, 'TxDefaultProfile', 1, NULL, '{\"x\": 1}')"
    )
    store.close()
    with wall_clock(T0):
        smart = service(state_dir=tmp_path)
        assert smart.profiles == []
        assert smart.set_charging_profile(profile((0, 10), id=1, level=0)) is None
        assert smart.set_charging_profile(profile((0, 9), id=6, level=3)) is None
        assert smart.connectors[1].limit_a == 9.0
    assert [p.charging_profile_id for p in ProfileStore.open(tmp_path).profiles()] == [1, 6]


def test_a_rejected_profile_changes_nothing(tmp_path: Path) -> None:
    with wall_clock(T0):
        smart = service(state_dir=tmp_path)
        assert smart.set_charging_profile(profile((0, 10), id=1)) is None
        writes = smart.store.writes
        assert smart.set_charging_profile(profile((0, 8), id=1, level=99)) is not None
        assert smart.store.writes == writes and smart.connectors[1].limit_a == 10.0
        assert ProfileStore.open(tmp_path).profiles() == smart.profiles


def test_a_store_that_fails_mid_install_keeps_the_old_set(tmp_path: Path) -> None:
    with wall_clock(T0):
        smart = service(state_dir=tmp_path)
        assert smart.set_charging_profile(profile((0, 10), id=1)) is None
        # The disk fails at the INSERT, after the DELETE of the profile it replaces.
        smart.store._db.execute(
            "CREATE TRIGGER fail BEFORE INSERT ON charging_profile "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
        reason = smart.set_charging_profile(profile((0, 6), id=2))
        assert reason == "the profile could not be stored (disk I/O error)"
        assert ids(smart) == [1] and smart.connectors[1].limit_a == 10.0
        assert [p.charging_profile_id for p in ProfileStore.open(tmp_path).profiles()] == [1]


# ---------------------------------------------------------------- TxProfile lifetime


def test_tx_profiles_bind_to_the_running_transaction_and_end_with_it() -> None:
    with wall_clock(T0):
        smart = service(2)
        begin(smart, 1, 41, T0)
        assert smart.set_charging_profile(profile((0, 9), id=7, purpose=TX, connector=1)) is None
        assert smart.profiles[0].transaction_id == 41
        assert smart.set_charging_profile(profile((0, 9), id=8, purpose=TX, connector=2)) == (
            "TxProfile without a transaction on the connector"
        )
        assert smart.set_charging_profile(profile((0, 9), id=8, purpose=TX, connector=0)) == (
            "TxProfile needs a connector, not 0"
        )
        assert smart.connectors[1].limit_a == 9.0
        end(smart, 1)
        assert smart.profiles == [] and smart.connectors[1].limit_a is None


def test_at_start_up_a_tx_profile_whose_transaction_is_over_is_removed(tmp_path: Path) -> None:
    with wall_clock(T0):
        smart = service(state_dir=tmp_path)
        begin(smart, 1, 41, T0)
        assert smart.set_charging_profile(profile((0, 9), id=7, purpose=TX, connector=1)) is None
        assert smart.set_charging_profile(profile((0, 12), id=8)) is None
        smart.store.close()  # a power cut: the transaction ends with the process
        again = service(state_dir=tmp_path)
        assert ids(again) == [8] and again.connectors[1].limit_a is None  # not running yet
        again._apply(T0)
        assert again.connectors[1].limit_a == 12.0
        assert [p.charging_profile_id for p in ProfileStore.open(tmp_path).profiles()] == [8]


@pytest.mark.parametrize("kind", [RELATIVE, ABSOLUTE])
def test_a_charge_point_max_profile_without_a_start_starts_when_installed(
    kind: ChargingProfileKind,
) -> None:
    """The whole charger has no transaction for a Relative (or startless Absolute)
    ChargePointMaxProfile to start with: it starts when installed, so its periods follow
    each other (before, each look started it again: 10 A for ever, while the composites
    showed 14 A), the limit and both composites agree, and a restart keeps its start."""
    with wall_clock(T0) as now:
        smart = service(1)
        begin(smart, 1, 1, T0 - timedelta(hours=1))
        cap = profile((0, 10), (60, 14), purpose=MAX, kind=kind)
        assert smart.set_charging_profile(cap) is None
        assert smart.connectors[1].limit_a == 10.0
        for connector in (0, 1):
            composite = smart.composite_schedule(connector, 120, None)
            assert composite is not None
            assert [(p.start_period, p.limit) for p in composite.charging_schedule_period] == [
                (0, 10.0),
                (60, 14.0),
            ]
        assert smart.next_change(T0) == T0 + timedelta(seconds=60)
        now[0] = T0 + timedelta(seconds=60)
        smart.reevaluate()
        assert smart.connectors[1].limit_a == 14.0
        (stored,) = smart.store.profiles()
        assert stored.charging_schedule.start_schedule == T0


def test_a_remote_start_profile_waits_for_its_transaction() -> None:
    with wall_clock(T0):
        smart = service(2)
        wrong = profile((0, 8), id=3, purpose=DEFAULT)
        assert (
            smart.remote_start_profile(1, wrong) == "RemoteStartTransaction takes only a TxProfile"
        )
        tx = profile((0, 8), id=3, purpose=TX)
        assert smart.remote_start_profile(1, tx) is None
        assert smart.profiles == [], "not installed before the transaction"
        assert smart.connectors[1].limit_a == 8.0, "the first offer will have it"
        assert smart.connectors[2].limit_a is None
        # GetCompositeSchedule says what the connector will follow: the waiting profile too.
        waiting = smart.composite_schedule(1, 60, None)
        assert waiting is not None
        assert [p.limit for p in waiting.charging_schedule_period] == [8.0]
        begin(smart, 1, 5, T0)
        (bound,) = smart.profiles
        assert (bound.connector_id, bound.transaction_id) == (1, 5)
        end(smart, 1)
        assert smart.profiles == []
        # Abandoned (ConnectionTimeOut): nothing is installed by a later transaction.
        assert smart.remote_start_profile(2, tx) is None
        smart.remote_start_abandoned(2)
        begin(smart, 2, 6, T0)
        assert smart.profiles == [] and smart.connectors[2].limit_a is None


# ---------------------------------------------------------------- W -> A


def test_watts_convert_with_the_wiring() -> None:
    with wall_clock(T0):
        three = service()
        assert three.set_charging_profile(profile((0, 11040), unit=W)) is None
        assert three.connectors[1].limit_a == pytest.approx(16.0)  # 11040 / (230 * 3)
        # numberPhases 1 on a three-phase connector: the charger cannot make the EV use one
        # phase (no phase switching), so 3680 W in total over the three it may use is 5.3 A.
        one_phase_period = profile((0, 3680, 1), unit=W)
        assert three.set_charging_profile(one_phase_period) is None
        assert three.connectors[1].limit_a == pytest.approx(3680 / 690)
        composite = three.composite_schedule(1, 60, W)
        assert composite is not None
        assert [(p.limit, p.number_phases) for p in composite.charging_schedule_period] == [
            (pytest.approx(3680), 3)
        ]
        single = service(phases=1, voltage=240)
        assert single.set_charging_profile(profile((0, 2400), unit=W)) is None
        assert single.connectors[1].limit_a == pytest.approx(10.0)  # 2400 / 240 / 1 phase
        composite = single.composite_schedule(1, 60, W)
        assert composite is not None and composite.charging_rate_unit is W
        assert [p.limit for p in composite.charging_schedule_period] == [pytest.approx(2400)]
        assert [p.number_phases for p in composite.charging_schedule_period] == [1]


# ---------------------------------------------------------------- the instants it wakes at


def changes(
    smart: SmartCharging, start: datetime, until: datetime
) -> list[tuple[datetime, float | None]]:
    """What the run loop sets, walked without sleeping: (instant, connector 1's limit) at the
    start and at each ``next_change`` where the limit differs."""
    out = [(start, smart.limits(start)[1])]
    t: datetime | None = start
    while True:
        t = smart.next_change(t) if t is not None else None
        if t is None or t > until:
            return out
        limit = smart.limits(t)[1]
        if limit != out[-1][1]:
            out.append((t, limit))


def test_recurring_daily_across_midnight_utc() -> None:
    with wall_clock(T0):
        smart = service()
        # 22:00-02:00 UTC every night: 8 A; the rest of the day no limit.
        night = profile(
            (0, 8),
            kind=RECURRING,
            recurrency=RecurrencyKind.Daily,
            start=datetime(2026, 5, 1, 22, 0, tzinfo=UTC),
            duration=4 * 3600,
        )
        assert smart.set_charging_profile(night) is None
        begin(smart, 1, 1, T0)
        seen = changes(smart, T0, T0 + timedelta(days=2))
        day = T0.replace(hour=0)
        assert seen == [
            (T0, None),
            (day.replace(hour=22), 8.0),
            (day + timedelta(days=1, hours=2), None),
            (day + timedelta(days=1, hours=22), 8.0),
            (day + timedelta(days=2, hours=2), None),
        ]


def test_a_dst_change_moves_a_utc_profile_in_local_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    with wall_clock(start):
        smart = service()
        # 21:00 UTC: 22:00 in Berlin in winter (CET), 23:00 after 29 March (CEST).
        evening = profile(
            (0, 10),
            kind=RECURRING,
            recurrency=RecurrencyKind.Daily,
            start=datetime(2026, 3, 1, 21, 0, tzinfo=UTC),
            duration=3600,
        )
        assert smart.set_charging_profile(evening) is None
        begin(smart, 1, 1, start)
        seen = changes(smart, start, start + timedelta(days=3))
        lowered = [t.astimezone(berlin) for t, limit in seen if limit == 10.0]
        assert [(t.day, t.hour) for t in lowered] == [(27, 22), (28, 22), (29, 23)]
        assert all(t.astimezone(UTC).hour == 21 for t in lowered)


def test_an_idle_connector_does_not_wake_for_a_relative_schedule() -> None:
    with wall_clock(T0):
        smart = service()
        assert smart.set_charging_profile(profile((0, 6), (60, 12), kind=RELATIVE)) is None
        assert smart.next_change(T0) is None, "it starts with a transaction: nothing to wait for"
        assert smart.limits(T0)[1] == 6.0
        begin(smart, 1, 1, T0)
        assert smart.next_change(T0) == T0 + timedelta(seconds=60)
        assert smart.limits(T0 + timedelta(seconds=60))[1] == 12.0


# ---------------------------------------------------------------- the property

EPS = 1e-9


@st.composite
def profiles_(draw: st.DrawFn, n: int) -> ChargingProfile:
    purpose = draw(st.sampled_from([MAX, DEFAULT, TX]))
    kind = draw(st.sampled_from([ABSOLUTE, RECURRING, RELATIVE]))
    unit = draw(st.sampled_from([A, W]))
    top = 40.0 if unit is A else 30000.0
    count = draw(st.integers(1, 3))
    starts = sorted(draw(st.sets(st.integers(1, 7200), min_size=count - 1, max_size=count - 1)))
    periods = [
        (start, draw(st.floats(0, top, allow_nan=False)), draw(st.sampled_from([None, 1, 3])))
        for start in [0, *starts]
    ]
    hours = st.integers(-72, 72).map(lambda h: T0 + timedelta(hours=h))
    start = draw(st.none() | hours) if kind is not RECURRING else draw(hours)
    valid_from = draw(st.none() | hours)
    valid_to = draw(st.none() | hours)
    if valid_from is not None and valid_to is not None and valid_from >= valid_to:
        valid_to = None
    connector = 0 if purpose is MAX else draw(st.integers(0 if purpose is DEFAULT else 1, n))
    p = profile(
        *periods,
        id=draw(st.integers(1, 12)),
        level=draw(st.integers(0, 3)),
        purpose=purpose,
        kind=kind,
        connector=connector,
        unit=unit,
        start=start,
        duration=draw(st.none() | st.integers(60, 3 * 86400)),
        recurrency=draw(st.sampled_from(list(RecurrencyKind))) if kind is RECURRING else None,
    )
    return replace(p, valid_from=valid_from, valid_to=valid_to)


@st.composite
def situations(
    draw: st.DrawFn,
) -> tuple[int, list[datetime | None], list[ChargingProfile], float | None, datetime]:
    n = draw(st.integers(1, 3))
    started = [
        draw(st.none() | st.integers(0, 3 * 86400).map(lambda s: T0 - timedelta(seconds=s)))
        for _ in range(n)
    ]
    profiles = draw(st.lists(profiles_(n), max_size=6))
    site = draw(st.none() | st.floats(0, 60, allow_nan=False))
    instant = T0 + timedelta(seconds=draw(st.integers(0, 3 * 86400)))
    return n, started, profiles, site, instant


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(situations())
def test_no_connector_is_offered_above_a_limit_or_between_0_and_6_a(
    situation: tuple[int, list[datetime | None], list[ChargingProfile], float | None, datetime],
) -> None:
    n, started, profiles, site, t = situation
    with wall_clock(T0):
        smart = service(n)
        for cid, start in enumerate(started, 1):
            if start is not None:
                begin(smart, cid, cid, start)
        for p in profiles:
            smart.set_charging_profile(p)  # Rejected ones change nothing
        smart.site_allowance(site)
        limits = smart.limits(t)
        accepted = smart.profiles
        cp_max = limit_at(accepted, 0, t)
        offered = {}
        for cid, c in smart.connectors.items():
            if c.transaction is None:
                continue
            allowed = min(c.max_current_a, limits[cid] if limits[cid] is not None else 99.0)
            offered[cid] = allowed if allowed >= MIN_PILOT_CURRENT_A else 0.0
            own = limit_at(
                [p for p in accepted if p.charging_profile_purpose is not MAX],
                cid,
                t,
                transaction_start=c.transaction.started_at,
            )
            assert offered[cid] == 0 or offered[cid] >= MIN_PILOT_CURRENT_A
            assert offered[cid] <= c.max_current_a
            if own is not None:
                assert offered[cid] <= own + EPS
            if cp_max is None and site is None:
                # Not vacuous: with no charger-wide limit, the connector gets all it may.
                expected = min(c.max_current_a, own if own is not None else 99.0)
                assert offered[cid] == (expected if expected >= MIN_PILOT_CURRENT_A else 0)
        for charger_limit in (cp_max, site):
            if charger_limit is not None:
                assert sum(offered.values()) <= charger_limit + EPS


def test_each_connector_converts_watts_with_its_own_supply() -> None:
    with wall_clock(T0):
        registry = build_registry(number_of_connectors=2, tethered=True)
        smart = SmartCharging(
            ProfileStore.open(None),
            connectors(2, registry, rating=32),
            registry,
            phases=3,
            voltage=230,
            wiring={1: Wiring(1, 230), 2: Wiring(3, 230)},
        )
        assert smart.set_charging_profile(profile((0, 6900), unit=W)) is None
        assert smart.connectors[1].limit_a == pytest.approx(30.0)  # single phase: 6900 / 230
        assert smart.connectors[2].limit_a == pytest.approx(10.0)  # 6900 / (230 * 3)
        # A ChargePointMaxProfile in W is the whole charger's: its supply (3 x 230 V).
        assert smart.set_charging_profile(profile((0, 13800), id=2, purpose=MAX, unit=W)) is None
        assert smart.limits(T0) == {1: pytest.approx(20.0), 2: pytest.approx(10.0)}
        begin(smart, 1, 1, T0)
        begin(smart, 2, 2, T0)
        whole = smart.composite_schedule(0, 60, W)
        assert whole is not None
        assert [p.limit for p in whole.charging_schedule_period] == [pytest.approx(13800)]


def test_the_whole_chargers_composite_in_watts_adds_each_connectors_watts() -> None:
    """A single-phase and a three-phase connector of 16 A draw 16 x 230 + 16 x 690 W at most,
    not 32 A on three phases; a cap in W (the ChargePointMaxProfile) still holds."""
    with wall_clock(T0):
        registry = build_registry(number_of_connectors=2, tethered=True)
        smart = SmartCharging(
            ProfileStore.open(None),
            connectors(2, registry),
            registry,
            phases=3,
            voltage=230,
            wiring={1: Wiring(1, 230), 2: Wiring(3, 230)},
        )
        whole = smart.composite_schedule(0, 60, W)
        assert whole is not None
        assert [p.limit for p in whole.charging_schedule_period] == [pytest.approx(14720)]
        one, three = (smart.composite_schedule(c, 60, W) for c in (1, 2))
        assert one is not None and three is not None
        assert [p.limit for p in one.charging_schedule_period] == [pytest.approx(3680)]
        assert [p.limit for p in three.charging_schedule_period] == [pytest.approx(11040)]
        assert smart.set_charging_profile(profile((0, 13800), purpose=MAX, unit=W)) is None
        whole = smart.composite_schedule(0, 60, W)
        assert whole is not None
        assert [p.limit for p in whole.charging_schedule_period] == [pytest.approx(13800)]


def test_the_site_share_caps_a_composite_but_does_not_flatten_it() -> None:
    with wall_clock(T0):
        smart = service(2)
        begin(smart, 1, 1, T0)
        begin(smart, 2, 2, T0 + timedelta(seconds=1))
        assert smart.set_charging_profile(profile((0, 8), (600, 14), start=T0, connector=1)) is None
        smart.site_allowance(24)
        # Now connector 1 takes 8 A (its profile) and 2 the rest, its 16 A.  In connector 1's
        # composite the site counts as its share if it wanted all it may (24 / 2 = 12 A), so
        # the profile's later 14 A shows as 12 A, and its 8 A is not flattened to "now".
        assert smart.limits(T0) == {1: 8.0, 2: None}, "16 A: its rating, nothing to limit"
        one = smart.composite_schedule(1, 1200, None)
        assert one is not None
        assert [(p.start_period, p.limit) for p in one.charging_schedule_period] == [
            (0, 8.0),
            (600, 12.0),
        ]


def test_a_share_below_the_rating_is_set_one_at_or_above_it_is_no_limit() -> None:
    with wall_clock(T0):
        smart = service(2)
        begin(smart, 1, 1, T0)
        begin(smart, 2, 2, T0 + timedelta(seconds=1))
        smart.site_allowance(40)
        assert smart.limits(T0) == {1: None, 2: None}, "20 A each: above the 16 A rating"
        smart.site_allowance(30)
        assert smart.limits(T0) == {1: 15.0, 2: 15.0}
        # PiCP.MaxInstallationCurrent lowers connector 1 to 10 A: 2 gets the rest, up to its
        # rating (no limit); 1 keeps an explicit 10 A, which a later rise of the installation
        # limit cannot pass before the next re-evaluation.
        smart.connectors[1].installation_limit_a = 10
        assert smart.limits(T0) == {1: 10.0, 2: None}
        smart.reevaluate()
        smart.connectors[1].installation_limit_a = None  # raised again, not yet re-evaluated
        assert smart.connectors[1].max_current_a == 16 and smart.connectors[1].limit_a == 10.0


def test_a_composite_starts_at_the_next_whole_second_after_a_fresh_transaction() -> None:
    started = T0 + timedelta(milliseconds=300)
    with wall_clock(started + timedelta(milliseconds=200)) as now:
        smart = service()
        begin(smart, 1, 1, started)
        assert (
            smart.set_charging_profile(
                profile((0, 8), id=3, purpose=TX, kind=RELATIVE, connector=1)
            )
            is None
        )
        composite = smart.composite_schedule(1, 60, None)
        assert composite is not None
        assert composite.start_schedule == T0 + timedelta(seconds=1)
        assert [(p.start_period, p.limit) for p in composite.charging_schedule_period] == [(0, 8.0)]
        now[0] = T0 + timedelta(seconds=5)  # on a whole second: that second
        composite = smart.composite_schedule(1, 60, None)
        assert composite is not None and composite.start_schedule == now[0]
