"""The charger side of a current limit (``ConnectorController.set_limit``), on the middle layer of
test_connector_runtime: real contactor driver on gpiozero's mock pins, the recording link, the
bench's EV physics behind the pilot, simulated time.

What is pinned down: the offered current (the PWM history the pilot recorded) follows the limit
at once; below 6 A (IEC 61851-1) nothing is offered, the connector is SuspendedEVSE and the
contactor opens when the EV goes back to B, or 6 s after the PWM stopped when it does not; the
offer and the contactor come back when the limit rises; a 0 A limit at the start lets the
transaction begin but no energy flow."""

from __future__ import annotations

import pytest

from firmware.domain import ConnectorStatus
from tests.unit.test_connector_runtime import Station, _charge, charger_station, station

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


def _offered_samples(s: Station) -> list[str]:
    return [v.value for sample in s.link.samples for v in sample.values]


async def test_the_offer_follows_the_limit_and_stops_below_6_a() -> None:
    async with station(MeterValuesSampledData="Current.Offered", MeterValueSampleInterval="5") as s:
        await _charge(s)
        assert s.contactor_closed and s.pilot.offered_a == 16.0
        before = len(s.pilot.offers)

        s.connector.set_limit(16)  # the rating already: nothing to change
        await s.settle(0.1)
        s.connector.set_limit(10)
        await s.settle(0.1)  # at once: no pilot or meter poll in between
        assert s.pilot.offered_a == 10.0 and s.contactor_closed
        assert s.link.statuses()[-1] is ConnectorStatus.CHARGING
        await s.settle(10)
        assert _offered_samples(s)[-1] == "10.0", "MeterValues show the lower offer"

        s.connector.set_limit(4)  # below the IEC 61851-1 minimum
        await s.settle(0.1)
        assert s.pilot.offered_a == 0.0, "PWM stopped"
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE
        await s.settle(1)  # the EV sees no PWM, goes back to B: well before the 6 s
        assert not s.contactor_closed and s.connector.transaction is not None
        s.connector.set_limit(0)
        await s.settle(10)
        assert not s.contactor_closed and _offered_samples(s)[-1] == "0.0"
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE

        s.connector.set_limit(12)
        await s.settle()
        assert s.pilot.offered_a == 12.0 and s.contactor_closed, "the EV asked again (C)"
        assert s.link.statuses()[-1] is ConnectorStatus.CHARGING
        assert s.pilot.offers[before:] == [10.0, 0.0, 12.0]
        assert [c[0] for c in s.link.transaction_calls()] == ["start"], "one transaction"


async def test_an_ev_that_keeps_drawing_is_cut_off_6_s_after_the_pwm_stopped() -> None:
    async with station() as s:
        await _charge(s)
        s.pilot.ignores_pwm_stop = True  # the EV stays in C
        s.connector.set_limit(0)
        await s.settle(5.5)
        assert s.contactor_closed, "not opened under load before the EV's reaction time"
        assert s.pilot.offered_a == 0.0
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE
        await s.settle(1)
        assert not s.contactor_closed, "opened anyway after 6 s"
        s.connector.set_limit(None)  # no limit: the rating again
        await s.settle()
        # The EV never left C: with PWM on it gets power again.
        assert s.pilot.offered_a == 16.0 and s.contactor_closed
        assert s.link.statuses()[-1] is ConnectorStatus.CHARGING


async def test_a_limit_back_within_the_reaction_time_keeps_the_contactor_closed() -> None:
    async with station() as s:
        await _charge(s)
        s.pilot.ignores_pwm_stop = True
        s.connector.set_limit(3)
        await s.settle(2)
        s.connector.set_limit(8)
        await s.settle(10)  # past the first timer's 6 s: it was cancelled
        assert s.contactor_closed and s.pilot.offered_a == 8.0
        assert s.link.statuses()[-1] is ConnectorStatus.CHARGING


async def test_zero_amps_at_the_start_delays_the_charging_not_the_transaction() -> None:
    async with station() as s:
        s.connector.set_limit(0)
        await _charge(s, kwh=0)
        assert s.link.transaction_calls() == [("start", "CARD1", 1000)]
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EVSE
        assert s.pilot.offers[-1] == 0.0 and not s.contactor_closed, "no energy"
        assert max(s.pilot.offers) == 0.0, s.pilot.offers
        await s.settle(30)
        assert not s.contactor_closed
        s.connector.set_limit(6)
        await s.settle()
        assert s.pilot.offered_a == 6.0 and s.contactor_closed
        assert s.link.statuses()[-1] is ConnectorStatus.CHARGING


async def test_the_installation_limit_and_the_limit_make_one_offer() -> None:
    async with station() as s:
        s.connector.set_installation_limit(13)
        s.connector.set_limit(20)
        await _charge(s)
        assert s.pilot.offered_a == 13.0
        s.connector.set_limit(7)
        await s.settle(0.1)
        assert s.pilot.offered_a == 7.0
        s.connector.set_limit(None)
        await s.settle(0.1)
        assert s.pilot.offered_a == 13.0


async def test_a_limit_must_be_a_current() -> None:
    async with station() as s:
        for bad in (-1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="current limit"):
                s.connector.set_limit(bad)
        assert s.connector.limit_a is None


async def test_the_status_for_bench_status_shows_the_offer_and_the_limit() -> None:
    async with charger_station() as (charger, s, _rcd, _reader):
        await _charge(s)
        s.connector.set_limit(10)
        await s.settle(0.1)
        assert charger.status()["1"]["offered_a"] == 10.0
        assert charger.status()["1"]["limit_a"] == 10.0
        s.connector.set_limit(None)
        await s.settle(0.1)
        assert charger.status()["1"]["limit_a"] is None
        assert charger.status()["1"]["offered_a"] == 16.0


async def test_the_offer_is_never_between_0_and_6_a_nor_above_a_limit() -> None:
    """The issue's rule for any limit: the pilot offers 0, or 6 A to the least limit."""
    limits = [None, 5.9, 6.0, 31.0, 0.0, 7.5, 5.0, 16.0, 2.0, 6.5, 0.5, None, 12.0, 3.0]
    async with station() as s:
        await _charge(s)
        for limit in limits:
            s.connector.set_limit(limit)
            await s.settle(0.3)
            least = min(16.0, limit if limit is not None else 16.0)
            expected = least if least >= 6 else 0.0
            assert s.pilot.offered_a == expected == s.connector.offered_current_a, limit
        assert all(a == 0 or 6 <= a <= 16 for a in s.pilot.offers), s.pilot.offers
