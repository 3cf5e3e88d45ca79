"""OCPP 1.6 Security Whitepaper on the bench, the cases that are not OCTT test cases (those,
TC_073-TC_087, are in tests/system/octt/test_17_security.py): the Basic auth password, the
security events of connection failures and their queue, the prerequisites of a profile raise,
ExtendedTriggerMessage, the certificate command.  A test PKI (tests/pki.py) is made for each
test."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import websockets
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app, app_keys
from firmware.certificates import CertificateStore, RootKind
from firmware.ocpp.security_profiles import authorization_password, classify
from firmware.security_log import PENDING_LIMIT, SecurityLog
from firmware.settings_load import load
from tests.conftest import BENCH_TOML, Rig, bench_settings, start_fast
from tests.pki import Authority
from tests.system.security_helpers import (
    CP_ID,
    KEY,
    OCTT_KEY,
    OCTT_PASSWORD,
    install_root,
    provision_client_certificate,
    security_events,
    wait_event,
)

pytestmark = pytest.mark.asyncio


# ------------------------------------------------------------------------------- units


async def test_the_basic_auth_password_is_the_bytes_the_hex_key_stands_for() -> None:
    assert authorization_password(OCTT_KEY) == OCTT_PASSWORD
    assert authorization_password(KEY) == bytes.fromhex(KEY)
    assert authorization_password("abc") == b"abc"  # not whole bytes: sent as it is


async def test_connection_failures_map_to_the_whitepapers_events() -> None:
    def ssl_error(reason: str) -> ssl.SSLError:
        error = ssl.SSLError(1, f"[SSL: {reason}] ({reason})")
        error.reason = reason  # type: ignore[misc]
        return error

    assert classify(ssl_error("TLSV1_ALERT_PROTOCOL_VERSION"))[0] == "InvalidTLSVersion"
    assert classify(ssl_error("NO_SHARED_CIPHER"))[0] == "InvalidTLSCipherSuite"
    assert (
        classify(ssl_error("TLSV13_ALERT_CERTIFICATE_REQUIRED"))[0]
        == "FailedToAuthenticateAtCentralSystem"
    )
    refused = websockets.InvalidStatus(
        websockets.http11.Response(401, "Unauthorized", websockets.Headers())
    )
    assert classify(refused)[:3:2] == ("FailedToAuthenticateAtCentralSystem", True)
    # A central system that is down is no security event and never lowers the profile.
    assert classify(ConnectionRefusedError(111, "refused")) == (None, "[Errno 111] refused", False)
    unavailable = websockets.InvalidStatus(
        websockets.http11.Response(503, "busy", websockets.Headers())
    )
    assert classify(unavailable)[2] is False


async def test_critical_events_stay_queued_across_restarts_and_the_log_rolls(
    tmp_path: Path,
) -> None:
    store = SecurityLog.open(tmp_path)
    store.record("StartupOfTheDevice", "firmware 1")
    for n in range(PENDING_LIMIT + 5):
        store.record("InvalidMessages", f"frame {n}")
    store.close()
    store = SecurityLog.open(tmp_path)
    head = store.head()
    assert head is not None and head.type == "StartupOfTheDevice" and head.critical
    # The oldest non-critical events are no longer sent (but stay in the security log).
    assert store.pending() == PENDING_LIMIT + 1
    assert "frame 0" in store.text()
    store.delivered(head)
    assert store.head() is not None and store.head().tech_info == "frame 5"  # type: ignore[union-attr]
    store.close()


async def test_raising_the_profile_needs_its_prerequisites(tmp_path: Path, ca: Authority) -> None:
    """A05: 2 needs wss://, a valid CentralSystemRootCertificate and an AuthorizationKey; 3 a
    valid charge point certificate; lower is always Rejected."""
    settings = load(BENCH_TOML).with_overrides(
        csms_url="wss://csms.example.test/ocpp", state_dir=tmp_path
    )
    keys = app_keys.build_keys(settings)
    try:
        assert keys.change("SecurityProfile", "2").status.value == "Rejected"  # no key
        assert keys.change("AuthorizationKey", KEY).status.value == "Accepted"
        result = keys.change("SecurityProfile", "2")
        assert result.status.value == "Rejected" and "CentralSystemRootCertificate" in result.reason
        install_root(tmp_path, ca)
        result = keys.change("SecurityProfile", "3")
        assert result.status.value == "Rejected" and "charge point certificate" in result.reason
        assert keys.change("SecurityProfile", "2").status.value == "Accepted"
        provision_client_certificate(tmp_path, ca)
        assert keys.change("SecurityProfile", "3").status.value == "Accepted"
        assert keys.change("SecurityProfile", "2").status.value == "Rejected"
    finally:
        keys.store.close()  # type: ignore[union-attr]


# ------------------------------------------------------------------------------- triggers


async def test_extended_trigger_message(rig: Rig) -> None:
    expected = {
        "Heartbeat": "Accepted",
        "StatusNotification": "Accepted",
        "MeterValues": "Accepted",
        "LogStatusNotification": "Accepted",
        "BootNotification": "Rejected",  # errata 3.35, as TriggerMessage
        "SignChargePointCertificate": "Rejected",  # no CpoName yet
        # Issue 13: Idle, as SignedFirmwareStatusNotification (no firmware task ever runs).
        "FirmwareStatusNotification": "Accepted",
    }
    sends = {"FirmwareStatusNotification": "SignedFirmwareStatusNotification"}
    for requested, status in expected.items():
        mark = rig.cs.mark()
        connector = 1 if requested in ("StatusNotification", "MeterValues") else None
        answer = await rig.cs.call(
            CP_ID, call.ExtendedTriggerMessage(requested_message=requested, connector_id=connector)
        )
        assert answer.status == status, requested
        if status == "Accepted":
            sent = await rig.wait_call(sends.get(requested, requested), since=mark)
            if requested in ("LogStatusNotification", "FirmwareStatusNotification"):
                assert sent.payload == {"status": "Idle"}


# ------------------------------------------------------------------------------- delivery


async def test_security_events_wait_for_an_accepted_boot_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    async with CentralSystem() as cs:
        cs.refuse_connections()
        running = await start_fast(bench_settings(cs.url, tmp_path))
        await asyncio.sleep(0.3)
        await app.shutdown(running)  # StartupOfTheDevice never left
        cs.refuse_connections(False)
        cs.queue_boot_response("Pending", 1)
        running = await start_fast(bench_settings(cs.url, tmp_path))
        rig = Rig(cs, running, tmp_path)
        try:
            await wait_event(rig, "StartupOfTheDevice")
            await asyncio.sleep(0.2)
            startups = security_events(rig, "StartupOfTheDevice")
            assert len(startups) == 2, "both starts are reported"
            accepted = next(
                r
                for r in cs.messages
                if r.action == "BootNotification"
                and r.message_type == "CALLRESULT"
                and r.payload["status"] == "Accepted"
            )
            assert startups[0].seq > accepted.seq, "nothing before BootNotification Accepted"
        finally:
            await app.shutdown(running)


# ------------------------------------------------------------------------------- the tool


async def test_an_installer_installs_the_central_system_root_with_the_command_line(
    tmp_path: Path, ca: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    from firmware import cli

    state = ["--config", str(BENCH_TOML), "--state-dir", str(tmp_path)]
    root = ca.write_pem(tmp_path, "cpo-root")
    assert cli.main(["certificate", *state, "install", "central-system", root]) == 0
    assert cli.main(["certificate", *state, "install", "central-system", str(BENCH_TOML)]) == 1
    assert cli.main(["certificate", *state, "list"]) == 0
    out = capsys.readouterr()
    assert "CentralSystemRootCertificate: Accepted" in out.out
    assert "no PEM certificate" in out.err
    assert "CN=Test CPO Root CA" in out.out
    assert CertificateStore.open(tmp_path).valid_roots(RootKind.CENTRAL_SYSTEM)
