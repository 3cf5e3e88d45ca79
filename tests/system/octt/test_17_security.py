"""OCTT 1.6 charge point test cases, chapter "Security" (OCPP 1.6 Security Whitepaper):
security profiles 1-3 over real TLS on 127.0.0.1, certificates, security events and GetLog.  A
test PKI (tests/pki.py) is made for each test.

- TC_073_CS Update Charge Point Password for HTTP Basic Authentication.
- TC_074_CS Update Charge Point Certificate by request of Central System, then TC_087_CS TLS -
  Client-side certificate - valid certificate (one test).
- TC_075_1_CS / TC_075_2_CS Install a ManufacturerRootCertificate / CentralSystemRootCertificate.
- TC_076_CS Delete a specific certificate from the Charge Point.
- TC_077_CS Invalid ChargePointCertificate Security Event.
- TC_078_CS Invalid CentralSystemCertificate Security Event.
- TC_079_CS Get Security Log (and the diagnostics log).
- TC_083_CS Upgrade security profile (and the fall-back when the raised profile cannot connect).
- TC_084_CS Downgrade security profile - Rejected (and a ws:// URL at profile 2).
- TC_085_CS Basic Authentication - Valid username/password combination.
- TC_086_CS TLS - server-side certificate - Valid certificate.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.charge_point import snake_to_camel_case
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware import app
from firmware.certificates import CertificateStore
from firmware.config_keys import K, KeyStore, Source
from tests.conftest import Rig, bench_settings, start_fast
from tests.pki import NOW, Authority, leaf_without_ca, pem
from tests.system.security_helpers import (
    CP_ID,
    CPO,
    KEY,
    OCTT_KEY,
    OCTT_PASSWORD,
    provision_client_certificate,
    security_events,
    tls_rig,
    upload_server,
    wait_connections,
    wait_event,
)

pytestmark = pytest.mark.asyncio


async def wait_logged(running: app.Running, kind: str, info: str = "", timeout: float = 10) -> str:
    """The charger's own security log has an event ``kind`` (techInfo containing ``info``);
    for failures it cannot report yet."""
    for _ in range(int(timeout / 0.05)):
        for event in running.ocpp.events.log.events():
            if event.type == kind and info in (event.tech_info or ""):
                return event.tech_info or ""
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no {kind} ({info!r}) in {running.ocpp.events.log.text()}")


@asynccontextmanager
async def plain_rig(
    tmp_path: Path,
    *,
    keys: dict[str, object],
    basic_auth: dict[str, str | bytes] | None = None,
    wait_available: bool = True,
) -> AsyncIterator[Rig]:
    async with CentralSystem(basic_auth=basic_auth) as cs:
        running = await start_fast(bench_settings(cs.url, tmp_path, **keys))
        rig = Rig(cs, running, tmp_path)
        try:
            if wait_available:
                await rig.wait_status("Available")
            yield rig
        finally:
            await app.shutdown(running)


async def configuration(rig: Rig, key: str) -> str:
    answer = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=[key]))
    return str(answer.configuration_key[0]["value"])


def installed(answer: Any) -> list[dict[str, str]]:
    """certificateHashData of a GetInstalledCertificateIds.conf, in the wire's spelling."""
    return list(snake_to_camel_case(answer.certificate_hash_data or []))


def expected_hash(cert: x509.Certificate) -> dict[str, str]:
    """CertificateHashData of a self-signed root, computed here without the firmware."""
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    key_bits = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )

    def sha256(data: bytes) -> str:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(data)
        return digest.finalize().hex()

    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": sha256(cert.issuer.public_bytes()),
        "issuerKeyHash": sha256(key_bits),
        "serialNumber": format(cert.serial_number, "x"),
    }


async def log_statuses(rig: Rig, request_id: int, last: str) -> list[str]:
    await rig.cs.wait_for(
        lambda r: (
            r.action == "LogStatusNotification"
            and r.message_type == "CALL"
            and r.payload.get("status") == last
            and r.payload.get("requestId") == request_id
        )
    )
    return [
        r.payload["status"]
        for r in rig.calls("LogStatusNotification")
        if r.payload.get("requestId") == request_id
    ]


async def test_tc_073_update_charge_point_password(tmp_path: Path) -> None:
    keys = {"AuthorizationKey": KEY, "SecurityProfile": 1}
    async with plain_rig(tmp_path, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}) as rig:
        mark = rig.cs.mark()
        answer = await rig.cs.call(
            CP_ID, call.ChangeConfiguration(key="AuthorizationKey", value=OCTT_KEY)
        )
        assert answer.status == "Accepted"  # answered before the charger reconnects
        rig.cs.basic_auth = {CP_ID: OCTT_PASSWORD}
        await wait_connections(rig.cs, 2)
        await wait_event(
            rig, "ReconfigurationOfSecurityParameters", since=mark, info="AuthorizationKey changed"
        )
        assert rig.cs.auth_failures == []
        assert len(rig.calls("BootNotification")) == 1  # a reconnect, not a reboot


async def test_tc_074_update_charge_point_certificate_then_tc_087_client_certificate(
    tmp_path: Path, ca: Authority
) -> None:
    """ExtendedTriggerMessage(SignChargePointCertificate) -> SignCertificate(CSR made on the
    charger) -> the CSMS signs -> CertificateSigned Accepted; then profile 3 connects with it."""
    keys = {"AuthorizationKey": KEY, "CpoName": CPO, "SecurityProfile": 2}
    async with tls_rig(
        tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}, client_ca=True
    ) as rig:
        signed: asyncio.Queue[str] = asyncio.Queue()

        def on_csr(cp_id: str, csr: str) -> None:
            async def answer() -> None:
                await asyncio.sleep(0.05)  # after the SignCertificate.conf
                result = await rig.cs.call(
                    cp_id, call.CertificateSigned(certificate_chain=ca.sign_csr(csr))
                )
                signed.put_nowait(result.status)

            asyncio.get_running_loop().create_task(answer())

        rig.cs.on_csr = on_csr
        trigger = await rig.cs.call(
            CP_ID, call.ExtendedTriggerMessage(requested_message="SignChargePointCertificate")
        )
        assert trigger.status == "Accepted"
        assert await asyncio.wait_for(signed.get(), 10) == "Accepted"
        csr = x509.load_pem_x509_csr(rig.cs.state(CP_ID).csrs[0].encode())
        assert csr.is_signature_valid
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CP_ID
        assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CPO
        assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
        key_file = rig.state_dir / "certs" / "cp-key.pem"
        assert key_file.stat().st_mode & 0o777 == 0o600
        assert (rig.state_dir / "certs").stat().st_mode & 0o777 == 0o700
        key_body = key_file.read_text().splitlines()[1]
        assert all(key_body not in r.raw for r in rig.cs.messages), "the private key left"
        # TC_087: profile 3 with the new certificate, no Basic auth.
        mark = rig.cs.mark()
        answer = await rig.cs.call(
            CP_ID, call.ChangeConfiguration(key="SecurityProfile", value="3")
        )
        assert answer.status == "Accepted"
        await wait_connections(rig.cs, 2)
        state = rig.cs.state(CP_ID)
        assert state.client_certificate_cn == CP_ID and state.used_basic_auth is False
        await wait_event(
            rig, "ReconfigurationOfSecurityParameters", since=mark, info="raised from 2 to 3"
        )
        assert rig.running.ocpp.events.log.get("raise.to") is None


@pytest.mark.keys(CertificateStoreMaxLength=2)
async def test_tc_075_1_and_2_install_manufacturer_and_central_system_root_certificates(
    rig: Rig,
) -> None:
    manufacturer, cpo = Authority.root("Manufacturer Root"), Authority.root("CPO Root")
    cs = rig.cs
    assert (
        await cs.call(
            CP_ID, call.GetInstalledCertificateIds(certificate_type="ManufacturerRootCertificate")
        )
    ).status == "NotFound"
    # Refused: not a certificate, not a CA, expired.
    for bad in (
        "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n",
        pem(leaf_without_ca(cpo)),
        Authority.root(not_before=NOW - timedelta(days=400), days=300).pem,
    ):
        answer = await cs.call(
            CP_ID,
            call.InstallCertificate(
                certificate_type="CentralSystemRootCertificate", certificate=bad
            ),
        )
        assert answer.status == "Rejected"
    # TC_075_1
    answer = await cs.call(
        CP_ID,
        call.InstallCertificate(
            certificate_type="ManufacturerRootCertificate", certificate=manufacturer.pem
        ),
    )
    assert answer.status == "Accepted"
    ids = await cs.call(
        CP_ID, call.GetInstalledCertificateIds(certificate_type="ManufacturerRootCertificate")
    )
    assert ids.status == "Accepted"
    assert installed(ids) == [expected_hash(manufacturer.cert)]
    # TC_075_2
    answer = await cs.call(
        CP_ID,
        call.InstallCertificate(
            certificate_type="CentralSystemRootCertificate", certificate=cpo.pem
        ),
    )
    assert answer.status == "Accepted"
    ids = await cs.call(
        CP_ID, call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate")
    )
    assert installed(ids) == [expected_hash(cpo.cert)]
    # CertificateStoreMaxLength = 2: the store is full.
    answer = await cs.call(
        CP_ID,
        call.InstallCertificate(
            certificate_type="CentralSystemRootCertificate", certificate=Authority.root().pem
        ),
    )
    assert answer.status == "Rejected"
    await wait_event(
        rig, "ReconfigurationOfSecurityParameters", info="CentralSystemRootCertificate installed"
    )


async def test_tc_076_delete_a_specific_certificate(tmp_path: Path, ca: Authority) -> None:
    keys = {"AuthorizationKey": KEY, "SecurityProfile": 2}
    async with tls_rig(tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}) as rig:
        other = Authority.root("Second CPO Root")
        assert (
            await rig.cs.call(
                CP_ID,
                call.InstallCertificate(
                    certificate_type="CentralSystemRootCertificate", certificate=other.pem
                ),
            )
        ).status == "Accepted"
        ids = await rig.cs.call(
            CP_ID, call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate")
        )
        assert len(ids.certificate_hash_data) == 2
        target = expected_hash(other.cert)
        assert (
            await rig.cs.call(CP_ID, call.DeleteCertificate(certificate_hash_data=target))
        ).status == "Accepted"
        assert (
            await rig.cs.call(CP_ID, call.DeleteCertificate(certificate_hash_data=target))
        ).status == "NotFound"
        # The last CentralSystemRootCertificate is what profile 2 trusts: not deleted.
        assert (
            await rig.cs.call(
                CP_ID, call.DeleteCertificate(certificate_hash_data=expected_hash(ca.cert))
            )
        ).status == "Failed"
        ids = await rig.cs.call(
            CP_ID, call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate")
        )
        assert installed(ids) == [expected_hash(ca.cert)]
        await wait_event(rig, "ReconfigurationOfSecurityParameters", info="deleted")


async def test_tc_077_invalid_charge_point_certificate_security_event(
    rig: Rig, ca: Authority
) -> None:
    assert (
        await rig.cs.call(
            CP_ID,
            call.InstallCertificate(
                certificate_type="CentralSystemRootCertificate", certificate=ca.pem
            ),
        )
    ).status == "Accepted"
    stranger = Authority.root("Unknown CA")
    not_ours = ca.sign_csr(CertificateStore(rig.state_dir / "elsewhere").new_csr(CP_ID, ""))
    for chain, why in (
        ("garbage", "no PEM certificate"),
        (
            stranger.sign_csr(CertificateStore(rig.state_dir / "other").new_csr(CP_ID, "")),
            "does not match a key",
        ),
        (not_ours, "does not match a key"),
    ):
        mark = rig.cs.mark()
        answer = await rig.cs.call(CP_ID, call.CertificateSigned(certificate_chain=chain))
        assert answer.status == "Rejected"
        await wait_event(rig, "InvalidChargePointCertificate", since=mark, info=why)
    # Our own key, but a CA we do not trust.
    csr = CertificateStore.open(rig.state_dir).new_csr(CP_ID, "")
    mark = rig.cs.mark()
    answer = await rig.cs.call(
        CP_ID, call.CertificateSigned(certificate_chain=stranger.sign_csr(csr))
    )
    assert answer.status == "Rejected"
    await wait_event(
        rig,
        "InvalidChargePointCertificate",
        since=mark,
        info="not signed by an installed CentralSystemRootCertificate",
    )


async def test_tc_078_invalid_central_system_certificate_security_event(
    tmp_path: Path, ca: Authority
) -> None:
    """Wrong host name, expired, unknown CA: each refused with InvalidCentralSystemCertificate;
    the events reach the central system once it shows a valid certificate."""
    wrong_host = ca.server_files(tmp_path, "wrong-host", host="csms.example.test")
    expired = ca.server_files(
        tmp_path, "expired", not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(days=1)
    )
    unknown = Authority.root("Someone Else's CA").server_files(tmp_path, "unknown")
    valid = ca.server_files(tmp_path, "valid")
    keys = {"AuthorizationKey": KEY, "SecurityProfile": 2}
    async with tls_rig(tmp_path, ca, keys=keys, server=wrong_host, wait_available=False) as rig:
        context: ssl.SSLContext = rig.tls  # type: ignore[attr-defined]
        await wait_logged(rig.running, "InvalidCentralSystemCertificate", "Hostname mismatch")
        context.load_cert_chain(*expired)
        await wait_logged(rig.running, "InvalidCentralSystemCertificate", "expired")
        context.load_cert_chain(*unknown)
        await wait_logged(rig.running, "InvalidCentralSystemCertificate", "local issuer")
        assert rig.cs.charge_points == {}, "no HTTP request may reach an unverified server"
        context.load_cert_chain(*valid)
        await rig.wait_status("Available")
        for info in ("Hostname mismatch", "expired", "local issuer"):
            await wait_event(rig, "InvalidCentralSystemCertificate", info=info)
        assert rig.running.keys[K.SecurityProfile] == 2  # no fallback below 2


@pytest.mark.keys(AuthorizationKey=KEY)
async def test_tc_079_get_security_log_and_the_diagnostics_log(
    rig: Rig, ca: Authority, tmp_path: Path
) -> None:
    await wait_event(rig, "StartupOfTheDevice")
    with upload_server() as (port, received):
        answer = await rig.cs.call(
            CP_ID,
            call.GetLog(
                log_type="SecurityLog",
                request_id=7,
                log={"remoteLocation": f"http://127.0.0.1:{port}/logs/"},
            ),
        )
        assert answer.status == "Accepted" and answer.filename.endswith(".log")
        assert await log_statuses(rig, 7, "Uploaded") == ["Uploading", "Uploaded"]
        assert received[0]["path"] == f"/logs/{answer.filename}"
        assert "StartupOfTheDevice" in received[0]["body"]
    # The diagnostics log over HTTPS, with the CPO's root; a secret in a log line is scrubbed.
    assert (
        await rig.cs.call(
            CP_ID,
            call.InstallCertificate(
                certificate_type="CentralSystemRootCertificate", certificate=ca.pem
            ),
        )
    ).status == "Accepted"
    logging.getLogger("firmware.test").warning("a careless line with %s in it", KEY)
    # Routine security events log at INFO (log_level = "INFO" on a charger).
    logging.getLogger("firmware.security_log").setLevel(logging.INFO)
    try:
        rig.running.ocpp.events.record("SettingSystemTime", "test")
    finally:
        logging.getLogger("firmware.security_log").setLevel(logging.NOTSET)
    https = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    https.load_cert_chain(*ca.server_files(tmp_path, "logs"))
    with upload_server(https) as (port, received):
        answer = await rig.cs.call(
            CP_ID,
            call.GetLog(
                log_type="DiagnosticsLog",
                request_id=8,
                log={"remoteLocation": f"https://localhost:{port}/diag"},
            ),
        )
        assert answer.status == "Accepted"
        assert await log_statuses(rig, 8, "Uploaded") == ["Uploading", "Uploaded"]
        body = received[0]["body"]
        assert "a careless line with *** in it" in body and KEY not in body
        assert "INFO firmware.security_log: security event SettingSystemTime: test" in body
    # Nobody listens: retried, then UploadFailure.
    answer = await rig.cs.call(
        CP_ID,
        call.GetLog(
            log_type="SecurityLog",
            request_id=9,
            retries=1,
            retry_interval=0,
            log={"remoteLocation": f"http://127.0.0.1:{port}/gone"},
        ),
    )
    assert answer.status == "Accepted"
    assert await log_statuses(rig, 9, "UploadFailure") == ["Uploading", "UploadFailure"]
    refused = await rig.cs.call(
        CP_ID,
        call.GetLog(
            log_type="SecurityLog", request_id=10, log={"remoteLocation": "sftp://127.0.0.1/x"}
        ),
    )
    assert refused.status == "Rejected"


async def test_tc_083_upgrade_security_profile_1_to_2(tmp_path: Path, ca: Authority) -> None:
    keys = {"AuthorizationKey": KEY, "SecurityProfile": 1}
    async with tls_rig(tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}) as rig:
        mark = rig.cs.mark()
        refused = await rig.cs.call(
            CP_ID, call.ChangeConfiguration(key="SecurityProfile", value="3")
        )
        assert refused.status == "Rejected"  # no charge point certificate yet
        answer = await rig.cs.call(
            CP_ID, call.ChangeConfiguration(key="SecurityProfile", value="2")
        )
        assert answer.status == "Accepted"
        await wait_connections(rig.cs, 2)
        await wait_event(
            rig, "ReconfigurationOfSecurityParameters", since=mark, info="raised from 1 to 2"
        )
        assert await configuration(rig, "SecurityProfile") == "2"
        assert rig.cs.state(CP_ID).tls_version in ("TLSv1.2", "TLSv1.3")
        assert rig.running.ocpp.events.log.get("raise.to") is None, "confirmed"


async def test_tc_083_a_raised_profile_that_cannot_connect_falls_back(
    tmp_path: Path, ca: Authority
) -> None:
    """2 -> 3, but the central system does not take our client certificate (it wants Basic
    auth): after FALLBACK_AFTER refused handshakes the charger is back on 2 and says why."""
    provision_client_certificate(tmp_path / "state", ca)
    keys = {"AuthorizationKey": KEY, "CpoName": CPO, "SecurityProfile": 2}
    async with tls_rig(tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}) as rig:
        mark = rig.cs.mark()
        answer = await rig.cs.call(
            CP_ID, call.ChangeConfiguration(key="SecurityProfile", value="3")
        )
        assert answer.status == "Accepted"
        await wait_event(
            rig,
            "ReconfigurationOfSecurityParameters",
            since=mark,
            info="fell back to 2",
            timeout=15,
        )
        await wait_event(rig, "FailedToAuthenticateAtCentralSystem", since=mark)
        assert len(rig.cs.auth_failures) == 3  # FALLBACK_AFTER
        assert await configuration(rig, "SecurityProfile") == "2"
        assert rig.running.keys.source("SecurityProfile") is Source.LOCAL


async def test_tc_084_downgrade_security_profile_rejected(tmp_path: Path, ca: Authority) -> None:
    keys = {"AuthorizationKey": KEY, "SecurityProfile": 2}
    async with tls_rig(tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}) as rig:
        for lower in ("1", "0"):
            answer = await rig.cs.call(
                CP_ID, call.ChangeConfiguration(key="SecurityProfile", value=lower)
            )
            assert answer.status == "Rejected"
        assert (
            await rig.cs.call(CP_ID, call.ChangeConfiguration(key="SecurityProfile", value="2"))
        ).status == "Accepted"  # what is in force
        await wait_event(rig, "SecurityProfileDowngradeRejected", info="SecurityProfile 0")
        assert await configuration(rig, "SecurityProfile") == "2"
        assert rig.cs.state(CP_ID).connect_count == 1


async def test_tc_084_a_plain_ws_url_at_profile_2_is_refused(tmp_path: Path) -> None:
    """Profile 2 stored (set by the central system earlier); the URL in the file is now ws://:
    the charger does not connect without TLS, and keeps profile 2."""
    store = KeyStore.open(tmp_path)
    store.save("AuthorizationKey", KEY, Source.CENTRAL_SYSTEM)
    store.save("SecurityProfile", "2", Source.CENTRAL_SYSTEM)
    store.close()
    async with plain_rig(tmp_path, keys={}, wait_available=False) as rig:
        info = await wait_logged(rig.running, "InvalidTLSVersion")
        assert "ws://" in info
        await asyncio.sleep(0.5)
        assert rig.cs.charge_points == {}
        assert rig.running.keys[K.SecurityProfile] == 2


async def test_tc_085_basic_authentication_valid_username_and_password(tmp_path: Path) -> None:
    """Basic base64(<ChargePointId>:<password>), the password being the bytes the configured
    hexadecimal AuthorizationKey represents (OCTT: "non hex representation")."""
    keys = {"AuthorizationKey": OCTT_KEY, "SecurityProfile": 1}
    async with plain_rig(
        tmp_path, keys=keys, basic_auth={CP_ID: b"wrong"}, wait_available=False
    ) as rig:
        # A wrong password: 401, a security event in the charger's log, retries.
        await wait_logged(rig.running, "FailedToAuthenticateAtCentralSystem", "HTTP 401")
        assert rig.cs.auth_failures and rig.cs.auth_failures[0] == (CP_ID, "wrong password")
        rig.cs.basic_auth = {CP_ID: OCTT_PASSWORD}
        await rig.wait_status("Available")
        assert rig.cs.state(CP_ID).basic_auth_user == CP_ID
        # Reported once connected (non-critical, still delivered), once per run of failures.
        await wait_event(rig, "FailedToAuthenticateAtCentralSystem")
        assert len(security_events(rig, "FailedToAuthenticateAtCentralSystem")) == 1
        assert rig.running.ocpp.profiles.auth_headers() == {
            "Authorization": "Basic "
            + base64.b64encode(CP_ID.encode() + b":" + OCTT_PASSWORD).decode()
        }


async def test_tc_086_tls_server_side_certificate_valid(tmp_path: Path, ca: Authority) -> None:
    keys = {"AuthorizationKey": KEY, "SecurityProfile": 2}
    async with tls_rig(tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(KEY)}) as rig:
        state = rig.cs.state(CP_ID)
        assert state.tls_version in ("TLSv1.2", "TLSv1.3")
        assert state.basic_auth_user == CP_ID and state.client_certificate_cn is None
        # No security event but the start: nothing went wrong.
        await wait_event(rig, "StartupOfTheDevice")
        assert {r.payload["type"] for r in security_events(rig)} == {"StartupOfTheDevice"}
