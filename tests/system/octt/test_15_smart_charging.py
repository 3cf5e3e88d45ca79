"""OCTT 1.6 charge point test cases, chapter "Smart Charging", on the simulated bench (one
16 A three-phase connector) against the bundled central system.

- TC_056_CS Central Smart Charging - TxDefaultProfile.
- TC_057_CS Central Smart Charging - TxProfile.
- TC_058_1_CS Central Smart Charging - No ongoing transaction.
- TC_058_2_CS Central Smart Charging - Wrong transactionId.
- TC_082_CS Central Smart Charging - TxDefaultProfile - with ongoing transaction.
- TC_066_CS Get Composite Schedule.
- TC_067_CS Clear Charging Profile.
- TC_072_CS Stacking Charging Profiles.
- TC_059_CS Remote Start Transaction with Charging Profile.
- TC_060_CS Remote Start Transaction with Charging Profile - Rejected.
- Not OCTT: GetCompositeSchedule in W (connector 0, the whole charger, is in TC_066).

Profiles start "now" (whole seconds, UTC) and last minutes, so every test reads the composite
relative to the scheduleStart the charger answers with: a period boundary b seconds after the
profiles' start shows at startPeriod b - (scheduleStart - start), rounded up to a whole second.
The offered current is read where a bench engineer reads it: `chargepoint bench status`
(offered_a, limit_a) and MeterValues' Current.Offered.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from ocpp.v16 import call

from firmware import app_devices, clock
from tests.conftest import Rig

pytestmark = pytest.mark.asyncio

RATING_A = 16.0  # config/bench.toml: the connector's max_current_a
PHASES, VOLTS = 3, 230.0  # config/bench.toml [bench]


def profile(
    profile_id: int,
    purpose: str,
    periods: list[tuple[int, float]],
    *,
    start: datetime | None = None,
    level: int = 0,
    duration: int | None = None,
    unit: str = "A",
    transaction_id: int | None = None,
    number_phases: int | None = None,
) -> dict[str, Any]:
    """A chargingProfile in its wire form: Absolute from ``start`` (or the transaction's start,
    when None and a Tx profile), valid for three days."""
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": s, "limit": float(limit)}
            | ({} if number_phases is None else {"numberPhases": number_phases})
            for s, limit in periods
        ],
    }
    if duration is not None:
        schedule["duration"] = duration
    if start is not None:
        schedule["startSchedule"] = clock.to_ocpp(start)
    wire: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule,
    }
    if start is not None:
        wire["validFrom"] = clock.to_ocpp(start)
        wire["validTo"] = clock.to_ocpp(start + timedelta(days=3))
    if transaction_id is not None:
        wire["transactionId"] = transaction_id
    return wire


def whole_second_now() -> datetime:
    return clock.utcnow().replace(microsecond=0)


async def set_profile(rig: Rig, connector_id: int, wire: dict[str, Any]) -> str:
    result = await rig.cs.call(
        rig.cp_id, call.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=wire)
    )
    status: str = result.status
    return status


async def composite(
    rig: Rig, connector_id: int, duration: int, unit: str | None = None
) -> tuple[datetime, list[tuple[int, float]], dict[str, Any]]:
    """GetCompositeSchedule, Accepted: (scheduleStart, [(startPeriod, limit)], the schedule)."""
    result = await rig.cs.call(
        rig.cp_id,
        call.GetCompositeSchedule(
            connector_id=connector_id, duration=duration, charging_rate_unit=unit
        ),
    )
    assert result.status == "Accepted", result
    assert result.connector_id == connector_id
    schedule = result.charging_schedule
    assert schedule["duration"] == duration
    assert schedule["charging_rate_unit"] == (unit or "A")
    begin = clock.from_ocpp(result.schedule_start)
    assert begin is not None and result.schedule_start.endswith("Z")  # UTC
    raw = schedule["charging_schedule_period"]
    periods = [(p["start_period"], float(p["limit"])) for p in raw]
    assert periods[0][0] == 0
    shapes = [(p["limit"], p.get("number_phases")) for p in raw]
    assert all(a != b for a, b in zip(shapes, shapes[1:], strict=False))  # merged
    return begin, periods, schedule


def shifted(begin: datetime, start: datetime, plan: list[tuple[int, float]], duration: int) -> Any:
    """What a composite from ``begin`` should hold, given ``plan`` as [(seconds after start,
    limit)]: each boundary moved to begin's frame (rounded up to a whole second: the arithmetic
    starts a period on the next whole second), those before begin folded into the first."""
    elapsed = (begin - start).total_seconds()
    out: list[tuple[int, float]] = []
    for offset, limit in plan:
        at = max(0, math.ceil(offset - elapsed))
        if at >= duration:
            break
        if out and out[-1][0] == at:
            out[-1] = (at, limit)
        elif not out or out[-1][1] != limit:
            out.append((at, limit))
    return out


async def bench_offer(rig: Rig, offered: float, limit: float | None, timeout: float = 5) -> None:
    """Until `chargepoint bench status` shows connector 1 offering ``offered`` A under
    ``limit``."""
    answer: dict[str, Any] = {}
    for _ in range(int(timeout / 0.05)):
        answer = await app_devices.bench_command(rig.state_dir, {"cmd": "status"})
        c = answer["connectors"]["1"]
        if c["offered_a"] == offered and c["limit_a"] == limit:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never offered {offered} A under {limit}: {answer['connectors']['1']}")


async def offered_in_meter_values(rig: Rig, amps: float, since: int) -> None:
    """Until a MeterValues of the transaction carries Current.Offered = ``amps``."""

    def offered(r: Any) -> bool:
        if not (r.direction == "rx" and r.message_type == "CALL" and r.action == "MeterValues"):
            return False
        return any(
            v.get("measurand") == "Current.Offered" and float(v["value"]) == amps
            for mv in r.payload["meterValue"]
            for v in mv["sampledValue"]
        )

    await rig.wait_for(offered, since=since, timeout=10)


def transaction_id(rig: Rig) -> int:
    return next(iter(rig.cs.state(rig.cp_id).transactions))


async def remote_session(rig: Rig, connector_profile: dict[str, Any] | None = None) -> str:
    """Plug, RemoteStartTransaction (with ``connector_profile``), the EV asks for power."""
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    result = await rig.cs.call(
        rig.cp_id,
        call.RemoteStartTransaction(
            id_tag="SMART-1", connector_id=1, charging_profile=connector_profile
        ),
    )
    if result.status == "Accepted":
        await rig.wait_call("StartTransaction", since=mark)
        await rig.command("ev-charge")
        await rig.wait_status("Charging", since=mark)
    status: str = result.status
    return status


# ---------------------------------------------------------------- TxDefaultProfile


async def test_tc_056_tx_default_profile_limits_the_next_transaction(rig: Rig) -> None:
    start = whole_second_now()
    wire = profile(1, "TxDefaultProfile", [(0, 10), (60, 12), (120, 8)], start=start, duration=300)
    assert await set_profile(rig, 1, wire) == "Accepted"
    await rig.start_session()
    await bench_offer(rig, 10.0, 10.0)
    begin, periods, _ = await composite(rig, 1, 600)
    plan = [(0, 10.0), (60, 12.0), (120, 8.0), (300, RATING_A)]
    assert periods == shifted(begin, start, plan, 600)


@pytest.mark.keys(MeterValueSampleInterval=1, MeterValuesSampledData="Current.Offered")
async def test_tc_082_tx_default_profile_applies_to_the_ongoing_transaction(rig: Rig) -> None:
    await rig.start_session()
    await bench_offer(rig, RATING_A, None)
    start = whole_second_now()
    mark = rig.cs.mark()
    wire = profile(3, "TxDefaultProfile", [(0, 7), (120, 9)], start=start, duration=300)
    assert await set_profile(rig, 1, wire) == "Accepted"
    # Errata 3.8: a new TxDefaultProfile governs a transaction that has no TxProfile.
    await bench_offer(rig, 7.0, 7.0)
    await offered_in_meter_values(rig, 7.0, since=mark)
    begin, periods, _ = await composite(rig, 1, 300)
    assert periods == shifted(begin, start, [(0, 7.0), (120, 9.0), (300, RATING_A)], 300)
    assert rig.calls("StopTransaction") == []


# ---------------------------------------------------------------- TxProfile


@pytest.mark.keys(MeterValueSampleInterval=1, MeterValuesSampledData="Current.Offered")
async def test_tc_057_tx_profile_limits_the_running_transaction(rig: Rig) -> None:
    await rig.start_session()
    tx = transaction_id(rig)
    start = whole_second_now()
    mark = rig.cs.mark()
    wire = profile(
        3,
        "TxProfile",
        [(0, 6), (60, 10), (120, 8)],
        start=start,
        duration=260,
        transaction_id=tx,
    )
    assert await set_profile(rig, 1, wire) == "Accepted"
    await bench_offer(rig, 6.0, 6.0)
    await offered_in_meter_values(rig, 6.0, since=mark)
    begin, periods, _ = await composite(rig, 1, 300)
    plan = [(0, 6.0), (60, 10.0), (120, 8.0), (260, RATING_A)]
    assert periods == shifted(begin, start, plan, 300)
    # The transaction ends: its TxProfile goes with it.
    mark = rig.cs.mark()
    await rig.command("swipe", tag="TAG-1")
    await rig.wait_result("StopTransaction", since=mark)
    _, after, _ = await composite(rig, 1, 60)
    assert after == [(0, RATING_A)]


async def test_tc_058_1_tx_profile_without_a_transaction_is_rejected(rig: Rig) -> None:
    wire = profile(3, "TxProfile", [(0, 6)], start=whole_second_now(), transaction_id=1)
    assert await set_profile(rig, 1, wire) == "Rejected"
    without_id = profile(4, "TxProfile", [(0, 6)], start=whole_second_now())
    assert await set_profile(rig, 1, without_id) == "Rejected"
    _, periods, _ = await composite(rig, 1, 60)
    assert periods == [(0, RATING_A)]  # nothing was installed


async def test_tc_058_2_tx_profile_with_a_wrong_transaction_id_is_rejected(rig: Rig) -> None:
    await rig.start_session()
    tx = transaction_id(rig)
    wire = profile(3, "TxProfile", [(0, 6)], start=whole_second_now(), transaction_id=tx + 1)
    assert await set_profile(rig, 1, wire) == "Rejected"
    await bench_offer(rig, RATING_A, None)  # the transaction goes on unlimited
    _, periods, _ = await composite(rig, 1, 60)
    assert periods == [(0, RATING_A)]


# ---------------------------------------------------------------- composite, clear, stacking


async def test_tc_066_get_composite_schedule(rig: Rig) -> None:
    """A ChargePointMaxProfile, a TxDefaultProfile and a TxProfile at once: the composite is
    the minimum of ChargePointMax and the TxProfile while it lasts, then the TxDefaultProfile."""
    await rig.start_session()
    tx = transaction_id(rig)
    start = whole_second_now()
    cp_max = profile(1, "ChargePointMaxProfile", [(0, 10)], start=start, duration=86400)
    tx_default = profile(
        2,
        "TxDefaultProfile",
        [(0, 6), (60, 10), (120, 8), (180, 25), (260, 8)],
        start=start,
        duration=300,
    )
    tx_profile = profile(
        3,
        "TxProfile",
        [(0, 8), (50, 11), (140, 16), (200, 6), (240, 12)],
        start=start,
        duration=260,
        transaction_id=tx,
    )
    assert await set_profile(rig, 0, cp_max) == "Accepted"
    assert await set_profile(rig, 1, tx_default) == "Accepted"
    assert await set_profile(rig, 1, tx_profile) == "Accepted"
    begin, periods, schedule = await composite(rig, 1, 400)
    plan = [(0, 8.0), (50, 10.0), (200, 6.0), (240, 10.0), (260, 8.0), (300, 10.0)]
    assert periods == shifted(begin, start, plan, 400)
    assert {p["number_phases"] for p in schedule["charging_schedule_period"]} == {PHASES}
    await bench_offer(rig, periods[0][1], periods[0][1])
    # Connector 0 is the whole charger's expected draw: the sum of its connectors' composites
    # (here the one connector's) capped by the ChargePointMaxProfile.
    begin_0, whole, _ = await composite(rig, 0, 400)
    assert whole == shifted(begin_0, start, plan, 400)
    # The central system recorded each request and the charger's answer.
    answers = [
        r.action for r in rig.cs.messages if r.direction == "rx" and r.message_type == "CALLRESULT"
    ]
    assert answers.count("SetChargingProfile") == 3 and answers.count("GetCompositeSchedule") == 2


async def test_get_composite_schedule_in_watts(rig: Rig) -> None:
    """11 kW over three phases is 15.9 A per phase (230 V, rounded down to the tenth the
    message carries); asked in W it is 11 kW again.  3450 W with numberPhases 1 is 5 A: the
    charger cannot make the EV use one phase, so the W hold on all three (and under 6 A it
    suspends); where no profile limits, the connector's 16 A on three phases is 11 040 W."""
    start = whole_second_now()
    watts = profile(
        1, "TxDefaultProfile", [(0, 11000), (120, 3450)], start=start, duration=240, unit="W"
    )
    watts["chargingSchedule"]["chargingSchedulePeriod"][1]["numberPhases"] = 1
    assert await set_profile(rig, 1, watts) == "Accepted"
    begin, in_amps, _ = await composite(rig, 1, 300)
    assert in_amps == shifted(begin, start, [(0, 15.9), (120, 5.0), (240, RATING_A)], 300)
    begin, in_watts, schedule = await composite(rig, 1, 300, "W")
    plan = [(0, 11000.0), (120, 3450.0), (240, RATING_A * VOLTS * PHASES)]
    assert in_watts == shifted(begin, start, plan, 300)
    phases = [p["number_phases"] for p in schedule["charging_schedule_period"]]
    assert phases == [PHASES] * 3


async def test_tc_067_clear_charging_profile(rig: Rig) -> None:
    await rig.start_session()
    start = whole_second_now()
    for pid, level, amps in ((1, 0, 12), (2, 1, 10), (3, 2, 8)):
        wire = profile(pid, "TxDefaultProfile", [(0, amps)], start=start, level=level)
        assert await set_profile(rig, 1, wire) == "Accepted"
    cp_max = profile(4, "ChargePointMaxProfile", [(0, 14)], start=start)
    assert await set_profile(rig, 0, cp_max) == "Accepted"
    await bench_offer(rig, 8.0, 8.0)

    async def clear(**filters: Any) -> str:
        result = await rig.cs.call(rig.cp_id, call.ClearChargingProfile(**filters))
        status: str = result.status
        return status

    assert await clear(id=3) == "Accepted"  # by id: level 2 goes, level 1 rules
    await bench_offer(rig, 10.0, 10.0)
    assert await clear(id=3) == "Unknown"  # nothing left to match
    # Errata 3.25: with an id the other fields are ignored (they name another profile here).
    mismatched = {"connector_id": 0, "charging_profile_purpose": "ChargePointMaxProfile"}
    assert await clear(id=2, stack_level=2, **mismatched) == "Accepted"
    await bench_offer(rig, 12.0, 12.0)
    wire = profile(2, "TxDefaultProfile", [(0, 10)], start=start, level=1)
    assert await set_profile(rig, 1, wire) == "Accepted"  # back as it was
    await bench_offer(rig, 10.0, 10.0)
    assert (
        await clear(connector_id=1, charging_profile_purpose="TxDefaultProfile", stack_level=1)
        == "Accepted"
    )
    await bench_offer(rig, 12.0, 12.0)
    assert await clear(charging_profile_purpose="TxProfile") == "Unknown"
    assert await clear(connector_id=0, charging_profile_purpose="ChargePointMaxProfile") == (
        "Accepted"
    )
    assert await clear(stack_level=0) == "Accepted"  # the last TxDefaultProfile
    await bench_offer(rig, RATING_A, None)
    assert await clear() == "Unknown"  # none left: clearing all matches nothing
    _, periods, _ = await composite(rig, 1, 60)
    assert periods == [(0, RATING_A)]


async def test_tc_072_stacking_charging_profiles(rig: Rig) -> None:
    """Two TxDefaultProfiles: the higher stack level rules while its schedule runs (150 s),
    then the lower one shows again."""
    start = whole_second_now()
    low = profile(
        1,
        "TxDefaultProfile",
        [(0, 6), (50, 5), (100, 8), (200, 10)],
        start=start,
        duration=400,
        level=0,
    )
    high = profile(2, "TxDefaultProfile", [(0, 7), (100, 9)], start=start, duration=150, level=1)
    assert await set_profile(rig, 1, low) == "Accepted"
    assert await set_profile(rig, 1, high) == "Accepted"
    await rig.start_session()
    await bench_offer(rig, 7.0, 7.0)
    begin, periods, _ = await composite(rig, 1, 500)
    plan = [(0, 7.0), (100, 9.0), (150, 8.0), (200, 10.0), (400, RATING_A)]
    assert periods == shifted(begin, start, plan, 500)


# ---------------------------------------------------------------- RemoteStartTransaction


async def test_tc_059_remote_start_with_a_tx_profile(rig: Rig) -> None:
    wire = profile(1, "TxProfile", [(0, 8)], level=2, duration=3600)  # relative to the start
    wire["chargingProfileKind"] = "Relative"
    assert await remote_session(rig, wire) == "Accepted"
    await bench_offer(rig, 8.0, 8.0)
    _, periods, _ = await composite(rig, 1, 60)
    assert periods == [(0, 8.0)]
    start = rig.calls("StartTransaction")[-1]
    assert start.payload["idTag"] == "SMART-1"


async def test_tc_059_without_a_connector_id_the_profile_goes_to_the_chosen_connector(
    rig: Rig,
) -> None:
    wire = profile(1, "TxProfile", [(0, 9)], duration=3600)
    wire["chargingProfileKind"] = "Relative"
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.wait_status("Preparing", since=mark)
    result = await rig.cs.call(
        rig.cp_id, call.RemoteStartTransaction(id_tag="SMART-2", charging_profile=wire)
    )
    assert result.status == "Accepted"
    await rig.wait_call("StartTransaction", since=mark)
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)
    await bench_offer(rig, 9.0, 9.0)
    # It was the transaction's profile: it ends with it.
    mark = rig.cs.mark()
    await rig.command("swipe", tag="SMART-2")
    await rig.wait_result("StopTransaction", since=mark)
    _, periods, _ = await composite(rig, 1, 60)
    assert periods == [(0, RATING_A)]


async def test_tc_060_remote_start_with_a_profile_that_is_not_a_tx_profile_is_rejected(
    rig: Rig,
) -> None:
    wire = profile(1, "TxDefaultProfile", [(0, 6), (60, 10), (120, 8)], duration=260)
    assert await remote_session(rig, wire) == "Rejected"
    with_transaction_id = profile(2, "TxProfile", [(0, 6)], transaction_id=1)
    result = await rig.cs.call(
        rig.cp_id,
        call.RemoteStartTransaction(
            id_tag="SMART-1", connector_id=1, charging_profile=with_transaction_id
        ),
    )
    assert result.status == "Rejected"
    assert rig.calls("StartTransaction") == []
    _, periods, _ = await composite(rig, 1, 60)
    assert periods == [(0, RATING_A)]  # nothing installed either
