"""OCTT 1.6 charge point test cases, chapter "Reset".

- TC_013_CS Hard Reset Without transaction, TC_014_CS Soft Reset Without Transaction.
- TC_015_CS Hard Reset With Transaction, TC_016_CS Soft Reset With Transaction.
"""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
async def test_tc_013_014_reset_without_a_transaction(rig: Rig, kind: str) -> None:
    result = await rig.cs.call(rig.cp_id, call.Reset(type=kind))
    assert result.status == "Accepted"
    await asyncio.wait_for(rig.running.stop.wait(), timeout=15)
    assert not rig.calls("StopTransaction")


@pytest.mark.parametrize("kind, reason", [("Soft", "SoftReset"), ("Hard", "HardReset")])
async def test_tc_015_016_reset_with_a_transaction(rig: Rig, kind: str, reason: str) -> None:
    await rig.start_session()
    mark = rig.cs.mark()
    result = await rig.cs.call(rig.cp_id, call.Reset(type=kind))
    assert result.status == "Accepted"
    stop = await rig.wait_call("StopTransaction", since=mark)
    assert stop.payload["reason"] == reason
    await rig.wait_result("StopTransaction", since=mark)
    await asyncio.wait_for(rig.running.stop.wait(), timeout=15)
    assert rig.running.reset_requested is (kind == "Hard")
    assert not rig.bench.contactor_closed(1)
