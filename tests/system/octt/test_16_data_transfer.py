"""OCTT 1.6 charge point test cases, chapter "DataTransfer".

- TC_062_CS Data Transfer to a Charge Point (an unknown vendorId).
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


async def test_tc_062_data_transfer_unknown_vendor(rig: Rig) -> None:
    result = await rig.cs.call(
        rig.cp_id, call.DataTransfer(vendor_id="com.unknown", message_id="x", data="{}")
    )
    assert result.status == "UnknownVendorId"
