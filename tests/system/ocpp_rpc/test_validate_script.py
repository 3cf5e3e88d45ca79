"""validate.js (used at the end of every run on all payloads the charger sent) reports invalid
payloads and passes valid ones."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.system.ocpp_rpc.harness import HERE, ensure_node_modules


def test_validate_script_flags_invalid_payloads() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/test installs it)")
    ensure_node_modules()
    items = [
        {
            "schema": "StatusNotification.req",
            "where": "bad",
            "payload": {"connectorId": 1, "errorCode": "NoError", "status": "Charged"},
        },
        {
            "schema": "MeterValues.req",
            "where": "good",
            "payload": {
                "connectorId": 1,
                "transactionId": 5,
                "meterValue": [
                    {
                        "timestamp": "2026-11-24T10:00:00.000Z",
                        "sampledValue": [
                            {
                                "value": "12",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                                "context": "Sample.Periodic",
                            }
                        ],
                    }
                ],
            },
        },
        {
            "schema": "GetConfiguration.conf",
            "where": "bad readonly",
            "payload": {"configurationKey": [{"key": "K", "readonly": "no"}]},
        },
    ]
    done = subprocess.run(
        [node, str(HERE / "validate.js")],
        cwd=HERE,
        text=True,
        capture_output=True,
        timeout=60,
        input="\n".join(json.dumps(i) for i in items),
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1] == {"checked": 3, "invalid": 2}
    assert {bad["where"] for bad in lines[:-1]} == {"bad", "bad readonly"}
