"""Meter values on the bench: in StopTransaction, and MinimumStatusDuration (sampled TC_070 and
clock-aligned TC_071: tests/system/octt/test_08_meter_values.py)."""

from __future__ import annotations

import asyncio

import pytest

from firmware.ocpp.mapping import sampled_value_fields
from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


@pytest.mark.keys(
    MeterValueSampleInterval=1,
    ClockAlignedDataInterval=1,
    StopTxnSampledData="Energy.Active.Import.Register",
    StopTxnAlignedData="Energy.Active.Import.Register",
)
async def test_stop_transaction_carries_begin_end_and_samples(rig: Rig) -> None:
    await rig.start_session()
    await asyncio.sleep(2.5)
    mark = rig.cs.mark()
    await rig.command("unplug")
    stop = await rig.wait_call("StopTransaction", since=mark)
    data = stop.payload["transactionData"]
    contexts = [sampled_value_fields(v)["context"] for mv in data for v in mv["sampledValue"]]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert "Sample.Periodic" in contexts and "Sample.Clock" in contexts
    energies = [float(v["value"]) for mv in data for v in mv["sampledValue"]]
    assert energies[0] <= energies[-1]


@pytest.mark.keys(MinimumStatusDuration=2)
async def test_minimum_status_duration_skips_short_lived_statuses(rig: Rig) -> None:
    mark = rig.cs.mark()
    await rig.command("plug")
    await asyncio.sleep(0.5)
    await rig.command("unplug")  # Preparing lasted well under 2 s
    await asyncio.sleep(2.5)
    sent = [
        r.payload["status"]
        for r in rig.calls("StatusNotification")
        if r.seq >= mark and r.payload["connectorId"] == 1
    ]
    assert "Preparing" not in sent
    mark = rig.cs.mark()
    await rig.command("fault", name="diode", state="on")
    await rig.command("plug")
    await rig.wait_status("Faulted", since=mark, timeout=1.5)  # faults are not delayed
