"""Write-only secrets (AuthorizationKey) never reach a log, a GetConfiguration or an error."""

from __future__ import annotations

import logging

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio

SECRET = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


async def test_authorization_key_is_never_logged_or_returned(rig: Rig,
                                                             caplog: pytest.LogCaptureFixture
                                                             ) -> None:
    caplog.set_level(logging.DEBUG)
    result = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key="AuthorizationKey",
                                                                   value=SECRET))
    assert result.status == "Accepted"
    bad = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key="AuthorizationKey",
                                                                value=SECRET + "zz"))
    assert bad.status == "Rejected"
    every = await rig.cs.call(rig.cp_id, call.GetConfiguration())
    asked = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["AuthorizationKey"]))
    assert "AuthorizationKey" not in {k["key"] for k in every.configuration_key}
    assert asked.unknown_key == ["AuthorizationKey"] or not asked.configuration_key
    charger_side = [r for r in caplog.records if not r.name.startswith("firmware.ocpp.csms")]
    assert any(r.name == "chargepoint.ocpp.messages" for r in charger_side), \
        "frames reach the message log"
    assert all(SECRET not in r.getMessage() for r in charger_side)
    assert all(SECRET not in str(v) for _, v in rig.running.keys.readable())
