"""Helpers shared by the security system tests (tests/system/test_security.py,
tests/system/test_secrets.py and the OCTT security chapter): the test charge point's identity
and keys, a TLS central system with the charger on the bench, security events, an upload
server."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from centralsystem import CentralSystem, MessageRecord, tls_server_context
from firmware import app
from firmware.certificates import CertificateStore, RootKind
from firmware.settings_load import load
from tests.conftest import BENCH_TOML, Rig, bench_settings, start_fast
from tests.pki import Authority
from tests.system import upload_servers

CP_ID = load(BENCH_TOML).charge_point_id


OCTT_KEY = "4F43415F4F4354545F61646D696E5F74657374"  # OCTT TC_073: "OCA_OCTT_admin_test" in hex


OCTT_PASSWORD = b"OCA_OCTT_admin_test"


KEY = "00112233445566778899aabbccddeeff01234567"  # 20 bytes, not printable text


CPO = "Test CPO"


def security_events(rig: Rig, kind: str | None = None) -> list[MessageRecord]:
    return [
        r
        for r in rig.calls("SecurityEventNotification")
        if kind is None or r.payload.get("type") == kind
    ]


async def wait_event(
    rig: Rig, kind: str, since: int = 0, timeout: float = 10, info: str | None = None
) -> MessageRecord:
    """The charger's SecurityEventNotification of type ``kind`` (techInfo containing
    ``info``)."""
    return await rig.cs.wait_for(
        lambda r: (
            r.direction == "rx"
            and r.message_type == "CALL"
            and r.action == "SecurityEventNotification"
            and r.payload.get("type") == kind
            and (info is None or info in (r.payload.get("techInfo") or ""))
        ),
        timeout=timeout,
        since=since,
    )


def install_root(state_dir: Path, authority: Authority) -> None:
    """What `chargepoint certificate install` does before the first start."""
    status, reason = CertificateStore.open(state_dir).install_root(
        RootKind.CENTRAL_SYSTEM, authority.pem
    )
    assert status.value == "Accepted", reason


def provision_client_certificate(state_dir: Path, authority: Authority) -> None:
    """A charge point certificate signed by ``authority``, as after a SignCertificate round."""
    install_root(state_dir, authority)
    store = CertificateStore.open(state_dir)
    chain = authority.sign_csr(store.new_csr(CP_ID, CPO))
    assert store.accept_chain(chain, CP_ID, CPO).ok


@asynccontextmanager
async def tls_rig(
    tmp_path: Path,
    ca: Authority,
    *,
    keys: dict[str, object],
    basic_auth: dict[str, str | bytes] | None = None,
    client_ca: bool = False,
    wait_available: bool = True,
    server: tuple[str, str] | None = None,
) -> AsyncIterator[Rig]:
    """A central system on wss://localhost (certificate of ``ca``) and the charger on the bench
    with ``ca`` installed as CentralSystemRootCertificate."""
    certfile, keyfile = server or ca.server_files(tmp_path, "server")
    context = tls_server_context(
        certfile, keyfile, ca.write_pem(tmp_path, "client-ca") if client_ca else None
    )
    if client_ca:
        context.verify_mode = ssl.CERT_OPTIONAL  # profile 2 (no certificate) still connects
    state = tmp_path / "state"
    install_root(state, ca)
    async with CentralSystem(ssl_context=context, basic_auth=basic_auth) as cs:
        assert cs.url.startswith("wss://localhost:")
        running = await start_fast(bench_settings(cs.url, state, **keys))
        rig = Rig(cs, running, state)
        rig.tls = context  # type: ignore[attr-defined]
        try:
            if wait_available:
                await rig.wait_status("Available")
            yield rig
        finally:
            await app.shutdown(running)


async def wait_connections(cs: CentralSystem, count: int, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if (
            CP_ID in cs.charge_points
            and cs.state(CP_ID).connect_count >= count
            and cs.connected(CP_ID)
        ):
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"fewer than {count} connections: {cs.charge_points.get(CP_ID)}")


@contextmanager
def upload_server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """An HTTP(S) server on 127.0.0.1 that keeps every upload: (port, the files received)
    (``tests.system.upload_servers.upload_server``)."""
    with upload_servers.upload_server(tls) as uploads:
        yield uploads.port, uploads.received
