"""OCTT 1.6 charge point test cases, chapter "Configuration".

- TC_019_CS Retrieve configuration.
- TC_021_CS Change/set Configuration.
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


TC_019_REQUIRED = {  # OCTT TC_019_CS: required Core keys and their accessibility
    "AuthorizeRemoteTxRequests": {True, False},
    "ClockAlignedDataInterval": {False},
    "ConnectionTimeOut": {False},
    "ConnectorPhaseRotation": {False},
    "GetConfigurationMaxKeys": {True},
    "HeartbeatInterval": {False},
    "LocalAuthorizeOffline": {False},
    "LocalPreAuthorize": {False},
    "MeterValuesAlignedData": {False},
    "MeterValuesSampledData": {False},
    "MeterValueSampleInterval": {False},
    "NumberOfConnectors": {True},
    "ResetRetries": {False},
    "StopTransactionOnInvalidId": {False},
    "StopTxnAlignedData": {False},
    "StopTxnSampledData": {False},
    "SupportedFeatureProfiles": {True},
    "TransactionMessageAttempts": {False},
    "TransactionMessageRetryInterval": {False},
    "UnlockConnectorOnEVSideDisconnect": {True, False},
}


async def test_tc_019_retrieve_configuration(rig: Rig) -> None:
    one = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["SupportedFeatureProfiles"]))
    assert not one.unknown_key
    assert one.configuration_key[0]["readonly"] is True
    assert set(one.configuration_key[0]["value"].split(",")) <= {
        "Core",
        "FirmwareManagement",
        "LocalAuthListManagement",
        "Reservation",
        "SmartCharging",
        "RemoteTrigger",
    }
    every = await rig.cs.call(rig.cp_id, call.GetConfiguration())
    by_name = {k["key"]: k for k in every.configuration_key}
    for name, readonly in TC_019_REQUIRED.items():
        assert name in by_name, name
        assert by_name[name]["readonly"] in readonly, name
        assert isinstance(by_name[name]["value"], str)
    assert "AuthorizationKey" not in by_name
    limit = int(by_name["GetConfigurationMaxKeys"]["value"])
    asked = list(by_name)[:limit]
    some = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=asked))
    assert len(some.configuration_key) == len(asked) and not some.unknown_key


async def test_tc_021_change_configuration_then_read_it_back(rig: Rig) -> None:
    result = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="MeterValueSampleInterval", value="1")
    )
    assert result.status == "Accepted"
    conf = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["metervaluesampleinterval"]))
    assert conf.configuration_key == [
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "1"}
    ]
    # ... and the charger behaves by it: a meter value every second of a transaction.
    mark = rig.cs.mark()
    await rig.start_session()
    await rig.wait_call("MeterValues", since=mark, timeout=5)
