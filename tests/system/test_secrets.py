"""Write-only secrets (AuthorizationKey) never reach a log, a GetConfiguration or an error."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from ocpp.v16 import call

from tests.conftest import Rig
from tests.pki import Authority
from tests.system.security_helpers import CP_ID, tls_rig, upload_server, wait_connections

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def message_log_propagates() -> Iterator[None]:
    """The OCPP message log as a daemon with ``ocpp_messages = true`` has it, whatever an
    earlier test (test_logs turns it off) left behind: its records must reach caplog."""
    messages = logging.getLogger("chargepoint.ocpp.messages")
    saved = messages.propagate, messages.level
    messages.propagate, messages.level = True, logging.NOTSET
    yield
    messages.propagate = saved[0]
    messages.setLevel(saved[1])


SECRET = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


async def test_authorization_key_is_never_logged_or_returned(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    result = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="AuthorizationKey", value=SECRET)
    )
    assert result.status == "Accepted"
    bad = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="AuthorizationKey", value=SECRET + "zz")
    )
    assert bad.status == "Rejected"
    every = await rig.cs.call(rig.cp_id, call.GetConfiguration())
    asked = await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["AuthorizationKey"]))
    assert "AuthorizationKey" not in {k["key"] for k in every.configuration_key}
    assert asked.unknown_key == ["AuthorizationKey"] or not asked.configuration_key
    charger_side = [r for r in caplog.records if not r.name.startswith("centralsystem")]
    assert any(r.name == "chargepoint.ocpp.messages" for r in charger_side), (
        "frames reach the message log"
    )
    assert all(SECRET not in r.getMessage() for r in charger_side)
    assert all(SECRET not in str(v) for _, v in rig.running.keys.readable())


# ------------------------------------------------------------------- the security profiles

FIRST = b"first-Secret-pw!".hex()  # 16 bytes, 32 hex digits
SECOND = b"Second-Secret-pw#2".hex()


def _basic(key_hex: str) -> str:
    return base64.b64encode(CP_ID.encode() + b":" + bytes.fromhex(key_hex)).decode()


async def test_no_key_password_or_private_key_in_any_log_line_frame_or_upload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Profile 2 with Basic auth, a password change, a malformed ChangeConfiguration, a CSR and
    its certificate, both log uploads: then every captured log line (DEBUG, websockets
    included), every OCPP frame and every uploaded byte is searched for the keys, the
    passwords they stand for, the Basic credentials and the private key."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="websockets")  # the daemon keeps it at WARNING
    ca = Authority.root()
    keys = {"AuthorizationKey": FIRST, "CpoName": "Test CPO", "SecurityProfile": 2}
    async with tls_rig(tmp_path, ca, keys=keys, basic_auth={CP_ID: bytes.fromhex(FIRST)}) as rig:
        cs = rig.cs
        answer = await cs.call(
            CP_ID, call.ChangeConfiguration(key="AuthorizationKey", value=SECOND)
        )
        assert answer.status == "Accepted"
        cs.basic_auth = {CP_ID: bytes.fromhex(SECOND)}
        await wait_connections(cs, 2)
        # A malformed request naming the key (fields in the other order, a wrong type): the
        # library's error log quotes the frame.
        session = cs._sessions[CP_ID]
        await session.cp._send(
            json.dumps(
                [
                    2,
                    "bad-1",
                    "ChangeConfiguration",
                    {"value": 4242424242, "key": "AuthorizationKey"},
                ]
            )
        )
        await cs.wait_for(lambda r: r.unique_id == "bad-1" and r.direction == "rx")
        signed: asyncio.Queue[str] = asyncio.Queue()

        def on_csr(cp_id: str, csr: str) -> None:
            async def answer() -> None:
                await asyncio.sleep(0.05)
                result = await cs.call(
                    cp_id, call.CertificateSigned(certificate_chain=ca.sign_csr(csr))
                )
                signed.put_nowait(result.status)

            asyncio.get_running_loop().create_task(answer())

        cs.on_csr = on_csr
        assert (
            await cs.call(
                CP_ID, call.ExtendedTriggerMessage(requested_message="SignChargePointCertificate")
            )
        ).status == "Accepted"
        assert await asyncio.wait_for(signed.get(), 10) == "Accepted"
        with upload_server() as (port, received):
            for n, kind in enumerate(("SecurityLog", "DiagnosticsLog")):
                assert (
                    await cs.call(
                        CP_ID,
                        call.GetLog(
                            log_type=kind,
                            request_id=n,
                            log={"remoteLocation": f"http://127.0.0.1:{port}/"},
                        ),
                    )
                ).status == "Accepted"
                await cs.wait_for(
                    lambda r, n=n: (
                        r.action == "LogStatusNotification"
                        and r.payload.get("requestId") == n
                        and r.payload.get("status") == "Uploaded"
                    )
                )
        every = await cs.call(CP_ID, call.GetConfiguration())
        assert "AuthorizationKey" not in {k["key"] for k in every.configuration_key}
        key_pem = (rig.state_dir / "certs" / "cp-key.pem").read_text()
        frames = list(cs.messages)
    # The PEM body (its first line holds the private scalar; later ones the public point, which
    # the CSR rightly carries too) and the scalar itself, in hex and base64.
    body = [line for line in key_pem.splitlines() if line and "-----" not in line]
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    secrets = [
        FIRST,
        SECOND,
        FIRST.upper(),
        SECOND.upper(),
        "first-Secret-pw!",
        "Second-Secret-pw#2",
        "4242424242",
        _basic(FIRST),
        _basic(SECOND),
        body[0],
        "".join(body),
        scalar.hex(),
        base64.b64encode(scalar).decode(),
    ]

    def leaks(text: str, more: tuple[str, ...] = ()) -> list[str]:
        return [s for s in (*secrets, *more) if s in text]

    # The charger's side: nothing, anywhere (the journal, the message log, websockets), not
    # even the tail of a key.
    tails = (FIRST[-12:], SECOND[-12:])
    charger = [
        r for r in caplog.records if not r.name.startswith(("centralsystem", "websockets.server"))
    ]
    assert any(r.name == "websockets.client" for r in charger), "DEBUG was captured"
    for record in charger:
        text = record.getMessage() + (record.exc_text or "")
        assert not leaks(text, tails), f"{record.name}: {text}"
    # Every frame: only the central system's own ChangeConfiguration requests carry a key.
    for record in frames:
        allowed = record.direction == "tx" and record.action == "ChangeConfiguration"
        if not allowed:
            assert not leaks(record.raw), record.raw
    for upload in received:
        assert not leaks(upload["body"]), upload["body"]
