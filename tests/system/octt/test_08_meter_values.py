"""OCTT 1.6 charge point test cases, chapter "Meter values".

- TC_070_CS Sampled Meter Values.
- TC_071_CS Clock-aligned Meter Values.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from firmware.ocpp.mapping import sampled_value_fields
from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.keys(
    MeterValueSampleInterval=1,
    MeterValuesSampledData="Energy.Active.Import.Register,Current.Import,"
    "Voltage,Power.Active.Import,Current.Offered",
)
async def test_tc_070_sampled_meter_values(rig: Rig) -> None:
    await rig.start_session()
    mark = rig.cs.mark()
    for _ in range(3):
        await rig.wait_call("MeterValues", since=mark, timeout=5)
        mark = rig.cs.mark()
    samples = [r for r in rig.calls("MeterValues")]
    assert len(samples) >= 3
    tx_id = next(iter(rig.cs.state(rig.cp_id).transactions))
    first = samples[-1].payload
    assert first["transactionId"] == tx_id
    # Read as the spec reads them: an absent field has its default (PiCP.CompactMessages).
    values = [sampled_value_fields(v) for v in first["meterValue"][0]["sampledValue"]]
    kinds = {(v["measurand"], v.get("phase"), v.get("unit")) for v in values}
    assert ("Energy.Active.Import.Register", None, "Wh") in kinds
    assert {("Current.Import", f"L{n}", "A") for n in (1, 2, 3)} <= kinds
    assert {("Voltage", f"L{n}-N", "V") for n in (1, 2, 3)} <= kinds
    assert ("Current.Offered", None, "A") in kinds
    assert all(v["context"] == "Sample.Periodic" for v in values)
    stamps = [_ts(s.payload["meterValue"][0]["timestamp"]) for s in samples[-3:]]
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    # An absolute schedule (start + n x interval): a late wake-up shortens the next gap.
    assert all(0.3 <= g <= 2.0 for g in gaps) and 1.5 <= sum(gaps) <= 2.6, gaps


@pytest.mark.keys(ClockAlignedDataInterval=2, MeterValueSampleInterval=0)
async def test_tc_071_clock_aligned_meter_values(rig: Rig) -> None:
    mark = rig.cs.mark()
    idle = await rig.wait_call("MeterValues", since=mark, timeout=5)
    assert "transactionId" not in idle.payload  # no transaction: not transaction-related
    await rig.start_session()
    mark = rig.cs.mark()
    during = await rig.wait_call("MeterValues", since=mark, timeout=5)
    assert during.payload["transactionId"] == next(iter(rig.cs.state(rig.cp_id).transactions))
    for record in (idle, during):
        mv = record.payload["meterValue"][0]
        stamp = _ts(mv["timestamp"])
        assert stamp.second % 2 == 0 and stamp.microsecond == 0, "on the 2 s grid"
        assert {sampled_value_fields(v)["context"] for v in mv["sampledValue"]} == {"Sample.Clock"}
