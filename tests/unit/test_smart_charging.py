"""The Smart Charging service (firmware.smart_charging) on the middle layer of
test_connector_runtime: real contactor drivers on gpiozero's mock pins, the bench's EV physics
behind a recording pilot, simulated time (looptime) with the wall clock following it.

What is pinned down: the pilot's offer follows a profile's periods at their boundaries (no
polling: the service sleeps until the next change), at once on a profile change and on a
transaction's start and end; the install/replace/clear rules and the read-only keys; a TxProfile
ends with its transaction; a RemoteStartTransaction profile is bound to the transaction it
starts; W limits convert with the wiring; the site allowance and a ChargePointMaxProfile are
shared between connectors (sum never above, each 0 or >= 6 A)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from firmware import charging as m
from firmware import clock
from firmware.charger import Charger
from firmware.config_keys import build_registry
from firmware.connector import ConnectorController
from firmware.domain import AuthorizationStatus, ConnectorStatus, IdTagInfo, StopReason
from firmware.profile_store import ProfileStore
from firmware.smart import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    RecurrencyKind,
)
from firmware.smart_charging import SmartCharging
from hal.config import ContactorConfig
from hal.gpio import GpioContactor
from hal.interfaces import ConnectorDevices
from hal.sim.ev import SimulatedEv
from tests.loop_clock import wall_clock_follows_the_loop
from tests.unit.test_connector_runtime import (
    ACCEPTED,
    CountingMeter,
    EvPilot,
    RecordingLink,
    _charge,
    station,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

A, W = ChargingRateUnit.A, ChargingRateUnit.W
MAX = ChargingProfilePurpose.ChargePointMaxProfile
DEFAULT = ChargingProfilePurpose.TxDefaultProfile
TX = ChargingProfilePurpose.TxProfile
ABSOLUTE = ChargingProfileKind.Absolute
RECURRING = ChargingProfileKind.Recurring
RELATIVE = ChargingProfileKind.Relative
# The simulated wall clock: loop time 0 is this instant (UTC).
EPOCH = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)


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
    transaction_id: int | None = None,
) -> ChargingProfile:
    return ChargingProfile(
        id,
        level,
        purpose,
        kind,
        ChargingSchedule(
            unit,
            tuple(ChargingSchedulePeriod(*p) for p in periods),
            duration=duration,
            start_schedule=start,
        ),
        connector,
        recurrency,
        transaction_id=transaction_id,
    )


def at(seconds: float) -> datetime:
    """The wall-clock instant at loop time ``seconds``."""
    return EPOCH + timedelta(seconds=seconds)


@dataclass
class Side:
    """One connector of the rig: its controller, pilot (the recorded PWM offers), EV."""

    connector: ConnectorController
    pilot: EvPilot
    ev: SimulatedEv
    contactor_pin: object

    @property
    def contactor_closed(self) -> bool:
        return bool(getattr(self.contactor_pin, "state", False))

    @property
    def offered(self) -> float:
        return self.pilot.offered_a


@dataclass
class Rig:
    smart: SmartCharging
    sides: list[Side]
    link: RecordingLink
    charger: Charger

    async def settle(self, seconds: float = 2.0) -> None:
        await asyncio.sleep(seconds)

    async def charge(self, i: int = 0, tag: str = "CARD1") -> None:
        """Plug, present a card, let the EV ask for power."""
        side = self.sides[i]
        side.ev.plugged = True
        await self.settle()
        side.connector.post(m.IdPresented(tag))
        await self.settle()
        side.ev.wants_power = True
        await self.settle()


@asynccontextmanager
async def rig(
    connectors: int = 1, *, state_dir: Path | None = None, **keys: str
) -> AsyncIterator[Rig]:
    """``connectors`` tethered connectors of 16 A, a charger around them and the Smart
    Charging service over a profile store (in memory, or in ``state_dir``), all running.
    Entered inside the test (looptime's clock starts with the test)."""
    factory = MockFactory()
    registry = build_registry(number_of_connectors=connectors, tethered=True)
    for name, value in keys.items():
        assert registry.change(name, value).applied, name
    link = RecordingLink(answers={"CARD1": ACCEPTED, "CARD2": ACCEPTED})

    async def authorize(id_tag: str) -> IdTagInfo:
        return await link.authorize(id_tag) or IdTagInfo(AuthorizationStatus.INVALID)

    sides, contactors = [], []
    for n in range(1, connectors + 1):
        pin = 4 + n
        contactor = GpioContactor(
            ContactorConfig(pin, settle_s=0),
            factory,
            clock=lambda: asyncio.get_running_loop().time(),
        )
        ev = SimulatedEv(max_current_a=32)
        pilot = EvPilot(ev)
        controller = ConnectorController(
            ConnectorDevices(n, pilot, contactor, CountingMeter(), None, 16.0),
            link,
            registry,
            authorize,
        )
        sides.append(Side(controller, pilot, ev, factory.pin(pin)))
        contactors.append(contactor)
    with wall_clock_follows_the_loop(EPOCH):
        store = ProfileStore.open(state_dir)
        smart = SmartCharging(store, [s.connector for s in sides], registry)
        charger = Charger([s.connector for s in sides], link, registry, smart=smart)
        tasks = [asyncio.create_task(charger.run()), asyncio.create_task(smart.run())]
        await asyncio.sleep(1)
        try:
            yield Rig(smart, sides, link, charger)
        finally:
            for task in tasks:
                task.cancel()
            await charger.shutdown()
            for contactor in contactors:
                contactor.close()
            store.close()


# ---------------------------------------------------------------- the pilot follows


async def test_the_offer_follows_three_periods_at_their_boundaries() -> None:
    async with rig() as r:
        side = r.sides[0]
        await r.charge()
        assert side.offered == 16.0 and side.contactor_closed
        # From loop time 100 s: 10 A, 4 A (below 6 A: nothing) from 200 s, 12 A from 300 s.
        assert (
            r.smart.set_charging_profile(profile((0, 10), (100, 4), (200, 12), start=at(100)))
            is None
        )
        mark = len(side.pilot.offers)
        await r.settle(99.5 - asyncio.get_running_loop().time())
        assert side.offered == 16.0, "not before its start"
        for boundary, amps, status in (
            (100, 10.0, ConnectorStatus.CHARGING),
            (200, 0.0, ConnectorStatus.SUSPENDED_EVSE),
            (300, 12.0, ConnectorStatus.CHARGING),
        ):
            await r.settle(boundary - 0.5 - asyncio.get_running_loop().time())
            assert side.offered != amps, boundary
            await r.settle(1.0)  # the lag is the event loop's, well under 1 s
            assert side.offered == amps, boundary
            assert r.link.statuses()[-1] is status
        assert side.pilot.offers[mark:] == [10.0, 0.0, 12.0]
        assert side.contactor_closed
        assert [c[0] for c in r.link.transaction_calls()] == ["start"], "one transaction"


async def test_a_profile_change_applies_at_once_and_a_clear_lifts_it() -> None:
    async with rig() as r:
        side = r.sides[0]
        await r.charge()
        assert r.smart.set_charging_profile(profile((0, 8))) is None
        assert side.connector.limit_a == 8.0, "set before the answer"
        await r.settle(0.01)
        assert side.offered == 8.0
        assert r.smart.clear_charging_profile() is True
        await r.settle(0.01)
        assert side.offered == 16.0 and side.connector.limit_a is None
        assert r.smart.clear_charging_profile() is False, "nothing left: Unknown"


async def test_a_zero_limit_at_the_start_delays_charging_not_the_transaction() -> None:
    async with rig() as r:
        side = r.sides[0]
        assert r.smart.set_charging_profile(profile((0, 0))) is None
        await r.charge()
        assert r.link.transaction_calls() == [("start", "CARD1", 1000)]
        assert r.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE
        assert side.pilot.offers == [0.0] * len(side.pilot.offers), "never a PWM offer"
        assert not side.contactor_closed
        assert r.smart.set_charging_profile(profile((0, 6))) is None  # replaces (same id)
        await r.settle()
        assert side.offered == 6.0 and side.contactor_closed
        assert r.link.statuses()[-1] is ConnectorStatus.CHARGING


# ---------------------------------------------------------------- TxProfile


async def test_a_tx_profile_needs_the_transaction_and_ends_with_it() -> None:
    async with rig() as r:
        side = r.sides[0]
        reason = r.smart.set_charging_profile(profile((0, 8), purpose=TX, connector=1, id=5))
        assert reason == "TxProfile without a transaction on the connector"
        await r.charge()
        local = side.connector.transaction
        assert local is not None
        wrong = profile((0, 8), purpose=TX, connector=1, id=5, transaction_id=local.local_id + 1)
        assert "is not the connector's transaction" in (r.smart.set_charging_profile(wrong) or "")
        # A TxDefaultProfile of 10 A and a TxProfile of 7 A: the TxProfile wins (§3.13.2).
        assert r.smart.set_charging_profile(profile((0, 10), id=4)) is None
        assert r.smart.set_charging_profile(profile((0, 7), purpose=TX, connector=1, id=5)) is None
        bound = [p for p in r.smart.profiles if p.charging_profile_id == 5]
        assert bound[0].transaction_id == local.local_id, "bound to the running transaction"
        await r.settle(0.01)
        assert side.offered == 7.0
        side.connector.post(m.StopRequested(StopReason.REMOTE))
        await r.settle()
        assert [p.charging_profile_id for p in r.smart.profiles] == [4], "TxProfile gone"
        side.ev.plugged = side.ev.wants_power = False
        await r.settle()
        await r.charge()  # the next transaction: the default only
        assert side.offered == 10.0


async def test_relative_tx_profile_starts_with_the_transaction() -> None:
    async with rig() as r:
        side = r.sides[0]
        await r.settle(50)
        # A Relative default: 6 A for the first 100 s of every transaction, then 12 A.
        assert r.smart.set_charging_profile(profile((0, 6), (100, 12), kind=RELATIVE)) is None
        await r.settle(500)  # idle: it stays "the first period" however long we wait
        assert side.connector.limit_a == 6.0
        await r.charge()
        started = asyncio.get_running_loop().time() - 2
        assert side.offered == 6.0 and side.pilot.offers[-1] == 6.0
        assert 16.0 not in side.pilot.offers, "the first offer already had the limit"
        await r.settle(started + 101 - asyncio.get_running_loop().time())
        assert side.offered == 12.0


# ---------------------------------------------------------------- sharing


async def test_two_connectors_share_one_charge_point_max_profile() -> None:
    async with rig(2) as r:
        one, two = r.sides
        assert r.smart.set_charging_profile(profile((0, 20), purpose=MAX)) is None
        await r.charge(0)
        assert one.offered == 16.0, "alone: its rating (under 20 A)"
        await r.charge(1, "CARD2")
        assert (one.offered, two.offered) == (10.0, 10.0)
        assert r.smart.set_charging_profile(profile((0, 10), purpose=MAX)) is None
        await r.settle()
        # Not 6 A for each: the first transaction keeps its power, the second waits.
        assert (one.offered, two.offered) == (10.0, 0.0)
        assert r.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE
        one.connector.post(m.StopRequested(StopReason.LOCAL))
        await r.settle()
        assert (one.offered, two.offered) == (0.0, 10.0), "the waiting one takes over"
        offers = one.pilot.offers + two.pilot.offers
        assert all(a == 0 or a >= 6 for a in offers), offers


async def test_the_site_allowance_is_shared_and_followed_at_once() -> None:
    async with rig(2) as r:
        one, two = r.sides
        await r.charge(0)
        await r.charge(1, "CARD2")
        r.smart.site_allowance(25)
        await r.settle(0.01)
        assert (one.offered, two.offered) == (12.5, 12.5)
        r.smart.site_allowance(40)
        await r.settle(0.01)
        assert (one.offered, two.offered) == (16.0, 16.0)
        r.smart.site_allowance(9)
        await r.settle(0.01)
        assert (one.offered, two.offered) == (9.0, 0.0)
        r.smart.site_allowance(None)
        await r.settle(0.01)
        assert (one.offered, two.offered) == (16.0, 16.0)
        with pytest.raises(ValueError, match="site allowance"):
            r.smart.site_allowance(-1)


# ---------------------------------------------------------------- composite


async def test_composite_for_a_connector_and_for_the_whole_charger() -> None:
    async with rig(2) as r:
        now = clock.utcnow().replace(microsecond=0)
        assert r.smart.set_charging_profile(profile((0, 10), (600, 14), start=now)) is None
        assert r.smart.set_charging_profile(profile((0, 24), id=9, purpose=MAX)) is None
        one = r.smart.composite_schedule(1, 1200, None)
        assert one is not None and one.charging_rate_unit is A
        assert [(p.start_period, p.limit) for p in one.charging_schedule_period] == [
            (0, 10.0),
            (600, 14.0),
        ]
        whole = r.smart.composite_schedule(0, 1200, None)
        assert whole is not None
        # 10 + 10, then 14 + 14 capped by the ChargePointMaxProfile's 24 A.
        assert [(p.start_period, p.limit) for p in whole.charging_schedule_period] == [
            (0, 20.0),
            (600, 24.0),
        ]
        r.smart.site_allowance(18)
        whole = r.smart.composite_schedule(0, 1200, ChargingRateUnit.W)
        assert whole is not None
        assert [(p.start_period, p.limit) for p in whole.charging_schedule_period] == [
            (0, 18 * 230 * 3)
        ]
        assert r.smart.composite_schedule(3, 60, None) is None, "no such connector"


# ---------------------------------------------------------------- RemoteStartTransaction


async def test_remote_start_with_a_tx_profile_binds_it_to_the_transaction() -> None:
    async with rig() as r:
        side = r.sides[0]
        side.ev.plugged = True
        await r.settle()
        tx_profile = profile((0, 7), id=11, purpose=TX)
        assert r.charger.remote_start("CARD1", 1, tx_profile) is True
        await r.settle()
        assert side.connector.transaction is not None
        (bound,) = r.smart.profiles
        assert bound.transaction_id == side.connector.transaction.local_id
        assert bound.connector_id == 1
        side.ev.wants_power = True
        await r.settle()
        assert side.offered == 7.0 and side.pilot.offers == [0.0, 7.0][-len(side.pilot.offers) :]
        assert 16.0 not in side.pilot.offers, "the first offer already had the profile's limit"
        side.ev.plugged = side.ev.wants_power = False
        await r.settle()
        assert r.smart.profiles == [], "ended with its transaction"


async def test_remote_start_with_another_purpose_is_rejected() -> None:
    async with rig() as r:
        for purpose in (DEFAULT, MAX):
            assert r.charger.remote_start("CARD1", 1, profile((0, 7), purpose=purpose)) is False
        await r.settle()
        assert r.link.statuses()[-1] is ConnectorStatus.AVAILABLE, "nothing started"
        assert r.smart.profiles == []


async def test_a_remote_start_that_times_out_drops_its_profile() -> None:
    async with rig(ConnectionTimeOut="30") as r:
        side = r.sides[0]
        assert r.charger.remote_start("CARD1", None, profile((0, 7), id=11, purpose=TX)) is True
        await r.settle()
        assert r.link.statuses()[-1] is ConnectorStatus.PREPARING
        assert side.connector.limit_a == 7.0
        await r.settle(31)  # nobody plugs in: ConnectionTimeOut
        assert r.link.statuses()[-1] is ConnectorStatus.AVAILABLE
        assert side.connector.limit_a is None, "dropped"
        await r.charge()  # a later local start has no trace of it
        assert r.smart.profiles == [] and side.offered == 16.0


async def test_a_limit_below_6_a_set_as_the_transaction_begins_is_never_offered() -> None:
    """The connector's own guard: a callback of on_transaction that lowers the limit below
    6 A within the step that begins the transaction; the step's OfferPower offers nothing."""
    async with station() as s:
        s.connector.on_transaction(
            lambda _cid, handle: s.connector.set_limit(3 if handle else None)
        )
        await _charge(s)
        assert s.connector.transaction is not None
        assert all(a == 0.0 for a in s.pilot.offers), s.pilot.offers
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE
        assert not s.contactor_closed
        s.connector.set_limit(None)
        await s.settle()
        assert s.pilot.offered_a == 16.0 and s.contactor_closed


async def test_a_wall_clock_stepped_past_a_boundary_is_seen_within_a_minute() -> None:
    """NTP sets a Pi's clock minutes after boot: the service sleeps on the monotonic clock but
    looks at the wall clock again at least every WALL_CLOCK_CHECK_S while a change is due."""
    async with rig() as r:
        side = r.sides[0]
        await r.charge()
        loop = asyncio.get_running_loop()
        assert r.smart.set_charging_profile(profile((0, 16), (7200, 8), start=at(0))) is None
        await r.settle(10)
        assert side.offered == 16.0
        clock.set_wall_clock(lambda: EPOCH + timedelta(hours=3, seconds=loop.time()))
        await r.settle(61)
        assert side.offered == 8.0, "the 2 h boundary, passed by the step, is applied"


async def test_profiles_stored_before_smart_charging_was_switched_off_never_limit(
    tmp_path: Path,
) -> None:
    """Issue 13 tryout F5, the kind: a store restored while its profile is off
    (``[ocpp] profiles`` without SmartCharging) is not used (no central system could clear it);
    the file keeps the profiles.  (RemoteStartTransaction's chargingProfile is ignored at the
    edge, firmware.ocpp.routes.)"""
    store = ProfileStore.open(tmp_path)
    assert SmartCharging(store, [], build_registry()).set_charging_profile(profile((0, 8))) is None
    off = SmartCharging(store, [], build_registry(profiles=("Core",)))
    assert off.profiles == []
    assert [p.charging_profile_id for p in store.profiles()] == [1]
    assert len(SmartCharging(store, [], build_registry()).profiles) == 1, "on again: used"
    store.close()
