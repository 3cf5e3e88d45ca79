"""The firmware update service (firmware.firmware_update), fast: its statuses as data, and the
service on a real SQLite file with simulated time (looptime; the wall clock follows the loop),
a test double of the installer (tests/firmware_helpers.py) and of the charger's install gate,
and a download double that writes the bundle (the real downloads: test_download.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from firmware import clock
from firmware.certificates import CertificateStore, RootKind
from firmware.download import DownloadError, Limits
from firmware.firmware_update import FirmwareUpdates, UpdateWiring
from firmware.firmware_update_states import (
    FINAL,
    TRANSITIONS,
    Ev,
    Flow,
    FwStatus,
    UndeclaredTransition,
    UpdateRequest,
    step,
    triggered,
)
from firmware.firmware_update_store import FirmwareUpdateStore
from tests.firmware_helpers import FakeInstaller, bundle_bytes, signer
from tests.loop_clock import wall_clock_follows_the_loop
from tests.pki import NOW, Authority

EPOCH = NOW  # the test PKI is valid now
S = FwStatus

# ------------------------------------------------------------------ the statuses (pure)

#: OCPP 1.6 §7.25 FirmwareStatus: what the legacy flow may send.
LEGACY_WIRE = {"Downloaded", "DownloadFailed", "Downloading", "Idle", "InstallationFailed"} | {
    "Installing",
    "Installed",
}


def test_every_status_of_each_flow_is_reachable_and_leads_to_an_end() -> None:
    for flow, table in TRANSITIONS.items():
        reached = {S.IDLE}
        frontier = [S.IDLE]
        while frontier:
            status = frontier.pop()
            for target in table.get(status, {}).values():
                if target is not None and target not in reached:
                    reached.add(target)
                    frontier.append(target)
        # Every status listed is reachable, and every status reached either ends or goes on.
        assert set(table) <= reached, flow
        for status in reached:
            assert status in FINAL or table.get(status), (flow, status)
        if flow is Flow.LEGACY:
            assert {s.value for s in reached} <= LEGACY_WIRE
        else:
            assert reached == set(FwStatus)  # every whitepaper status (DownloadPaused aside)


def test_step_refuses_an_undeclared_event_and_keeps_a_silent_one() -> None:
    with pytest.raises(UndeclaredTransition):
        step(Flow.LEGACY, S.IDLE, Ev.INSTALLED)
    with pytest.raises(UndeclaredTransition):
        step(Flow.SIGNED, S.INSTALLING, Ev.CANCELLED)  # an install cannot be cancelled
    assert step(Flow.LEGACY, S.IDLE, Ev.WAIT_RETRIEVE) == (S.IDLE, False)
    assert step(Flow.SIGNED, S.IDLE, Ev.WAIT_RETRIEVE) == (S.DOWNLOAD_SCHEDULED, True)
    assert triggered(S.INSTALLED) is S.IDLE and triggered(S.DOWNLOADING) is S.DOWNLOADING


# ------------------------------------------------------------------ the service


@dataclass
class Gate:
    """The charger's InstallGate as a double: ``running`` transactions, availability."""

    running: bool = False
    held: bool = False
    saved: dict[int, bool] = field(default_factory=lambda: {0: True, 1: True, 2: False})
    log: list[str] = field(default_factory=list)

    def busy(self) -> bool:
        return self.running

    def availability(self) -> dict[int, bool]:
        return dict(self.saved)

    wish: Callable[[int, bool], None] | None = None

    def hold(self, wish: Callable[[int, bool], None]) -> None:
        self.held = True
        self.wish = wish
        self.log.append("hold")

    def release(self, availability: dict[int, bool]) -> None:
        self.held = False
        self.log.append(f"release {sorted(availability.items())}")


@dataclass
class Fetcher:
    """The download as a double: writes ``data`` to the destination, or fails ``failures``
    times first; records when (loop time) each attempt was made."""

    data: bytes = field(default_factory=lambda: bundle_bytes("2.0.0"))
    failures: int = 0
    attempts: list[float] = field(default_factory=list)

    def __call__(self, url: str, dest: Path, **_: Any) -> int:
        self.attempts.append(asyncio.get_running_loop().time())
        if len(self.attempts) <= self.failures:
            raise DownloadError(f"{url}: connection refused")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.data)
        return len(self.data)


async def inline(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)  # looptime's clock stays deterministic without threads


@dataclass
class Bench:
    svc: FirmwareUpdates
    store: FirmwareUpdateStore
    installer: FakeInstaller
    gate: Gate
    fetcher: Fetcher
    events: list[tuple[str, str | None]]
    restarts: list[float]

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        """Every queued notification, oldest first, as (action, payload)."""
        out = []
        while (head := self.store.head()) is not None:
            out.append((head.action, head.payload))
            self.store.delivered(head)
        self.taken.extend(out)
        return list(self.taken)

    taken: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def statuses(self) -> list[str]:
        return [p["status"] for _, p in self.sent()]


@asynccontextmanager
async def service(
    tmp_path: Path,
    *,
    installer: FakeInstaller | None = None,
    gate: Gate | None = None,
    fetcher: Fetcher | None = None,
    certificates: CertificateStore | None = None,
) -> AsyncIterator[Bench]:
    store = FirmwareUpdateStore.open(tmp_path)
    events: list[tuple[str, str | None]] = []
    restarts: list[float] = []
    installer = installer or FakeInstaller()
    gate = gate or Gate()
    fetcher = fetcher or Fetcher()
    svc = FirmwareUpdates(
        UpdateWiring(
            store=store,
            installer=installer,
            gate=gate,
            state_dir=tmp_path,
            limits=Limits(10**6, 0),
            certificates=certificates,
            security_event=lambda kind, info: events.append((kind, info)),
            wake=lambda: None,
            restart=lambda: restarts.append(asyncio.get_running_loop().time()),
            fetch=fetcher,
            blocking=inline,
        )
    )
    task = asyncio.create_task(svc.run())
    try:
        yield Bench(svc, store, installer, gate, fetcher, events, restarts)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        store.close()


def legacy(retrieve_in: float = 0, **kw: Any) -> UpdateRequest:
    return UpdateRequest(
        Flow.LEGACY,
        "http://user:pw@127.0.0.1:9/fw.bundle",
        clock.utcnow() + timedelta(seconds=retrieve_in),
        **kw,
    )


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_legacy_update_waits_for_retrieve_date_then_installs_and_reports_after_restart(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path) as b:
            assert b.svc.update_firmware(legacy(600)) == "Accepted"
            await asyncio.sleep(590)
            assert b.fetcher.attempts == [] and b.statuses() == []
            await asyncio.sleep(20)
            assert b.fetcher.attempts == [600.0]
            assert b.statuses() == ["Downloading", "Downloaded", "Installing"]
            assert b.installer.calls == ["check", "install", "activate 2.0.0"]
            assert b.restarts and b.gate.held
            assert not (tmp_path / "firmware" / "update.bundle").exists()
            installer = b.installer
        # The restart: the same state directory, the new release confirms at registration.
        async with service(tmp_path, installer=installer) as b:
            await asyncio.sleep(1)
            assert b.statuses() == []  # nothing before BootNotification Accepted
            await b.svc.registered()
            assert b.statuses() == ["Installed"]
            assert installer.calls[-2:] == ["confirm", "reported"]
            # held again at the start (a ChangeAvailability is still recorded), then released
            assert b.gate.log == ["hold", "release [(0, True), (1, True), (2, False)]"]
            assert b.store.request() is None
            assert b.svc.current_status() == (S.IDLE, None)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_future_retrieve_date_survives_a_restart(tmp_path: Path) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path) as b:
            b.svc.update_firmware(legacy(3600))
            await asyncio.sleep(100)
        async with service(tmp_path) as b:
            await asyncio.sleep(3400)
            assert b.fetcher.attempts == []
            await asyncio.sleep(200)
            assert [round(t) for t in b.fetcher.attempts] == [3600]  # stored to the ms
            assert b.statuses() == ["Downloading", "Downloaded", "Installing"]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_retries_retry_interval_apart_then_download_failed(tmp_path: Path) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, fetcher=Fetcher(failures=2)) as b:
            b.svc.update_firmware(legacy(retries=2, retry_interval_s=30))
            await asyncio.sleep(100)
            assert b.fetcher.attempts == [0.0, 30.0, 60.0]
            assert b.statuses() == ["Downloading", "Downloaded", "Installing"]
        async with service(tmp_path / "b", fetcher=Fetcher(failures=5)) as b:
            b.svc.update_firmware(legacy(retries=1, retry_interval_s=30))
            await asyncio.sleep(100)
            assert len(b.fetcher.attempts) == 2
            assert b.statuses() == ["Downloading", "DownloadFailed"]
            assert b.store.request() is None and b.installer.calls == []
            assert b.svc.current_status() == (S.IDLE, None)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_install_waits_for_the_transaction_to_end_with_connectors_held(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        gate = Gate(running=True)
        async with service(tmp_path, gate=gate) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(3600)
            assert b.statuses() == ["Downloading", "Downloaded"]
            assert gate.held and b.installer.calls == [] and b.restarts == []
            assert b.store.request() is not None
            stored = b.store.request()
            assert stored is not None and stored[2] == {0: True, 1: True, 2: False}
            gate.running = False
            await asyncio.sleep(10)
            assert b.statuses()[-1] == "Installing" and b.restarts


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_refused_bundle_and_a_failed_install_put_availability_back(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, fetcher=Fetcher(data=b"not a bundle")) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(5)
            assert b.statuses() == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
            assert b.gate.log == ["hold", "release [(0, True), (1, True), (2, False)]"]
            assert not b.restarts and b.store.request() is None
        async with service(tmp_path / "b", installer=FakeInstaller(fail_install=True)) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(5)
            assert b.statuses()[-1] == "InstallationFailed" and not b.gate.held


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_change_availability_while_held_is_what_the_update_gives_back(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, fetcher=Fetcher(data=b"not a bundle")) as b:
            b.gate.running = True  # a session: the install waits, the connectors held
            b.svc.update_firmware(legacy())
            await asyncio.sleep(5)
            assert b.gate.held and b.gate.wish is not None
            b.gate.wish(2, True)
            b.gate.wish(1, False)
            stored = b.store.request()
            assert stored is not None and stored[2] == {0: True, 1: False, 2: True}
            b.gate.running = False
            await asyncio.sleep(5)
            assert b.statuses()[-1] == "InstallationFailed"
            assert b.gate.log == ["hold", "release [(0, True), (1, False), (2, True)]"]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_rolled_back_trial_is_installation_failed(tmp_path: Path) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        installer = FakeInstaller(roll_back=True)
        async with service(tmp_path, installer=installer) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(5)
        async with service(tmp_path, installer=installer) as b:
            await b.svc.registered()
            assert b.statuses()[-2:] == ["Installing", "InstallationFailed"]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_after_a_rollback_the_previous_release_gives_the_connectors_back_at_start(
    tmp_path: Path,
) -> None:
    """The launcher rolled the new release back (its central system was unreachable longer
    than the trial timeout): the previous release need not wait for its own registration to
    give the connectors back (offline charging works again); InstallationFailed still waits
    for BootNotification Accepted."""
    with wall_clock_follows_the_loop(EPOCH):
        installer = FakeInstaller()
        async with service(tmp_path, installer=installer) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(30)
            assert b.restarts
        installer.launcher_rolled_back("no BootNotification Accepted within 600 s")
        async with service(tmp_path, installer=installer) as b:
            await asyncio.sleep(1)
            assert b.gate.log == ["hold", "release [(0, True), (1, True), (2, False)]"]
            assert "InstallationFailed" not in b.statuses()
            await b.svc.registered()
            assert b.statuses()[-1] == "InstallationFailed"
            assert len(b.gate.log) == 2  # given back once


# ------------------------------------------------------------------ signed


@pytest.fixture
def manufacturer(tmp_path: Path) -> tuple[Authority, CertificateStore]:
    root = Authority.root("Test Manufacturer Root")
    certs = CertificateStore.open(tmp_path)
    status, reason = certs.install_root(RootKind.MANUFACTURER, root.pem)
    assert status.value == "Accepted", reason
    return root, certs


def signed(request_id: int, cert: str, signature: str, **kw: Any) -> UpdateRequest:
    return UpdateRequest(
        Flow.SIGNED,
        "https://127.0.0.1:9/fw.bundle",
        kw.pop("retrieve_at", clock.utcnow()),
        request_id=request_id,
        signing_certificate=cert,
        signature=signature,
        **kw,
    )


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("use_rsa", [False, True], ids=["ecdsa", "rsa"])
async def test_signed_update_verifies_the_signature_and_respects_install_date_time(
    tmp_path: Path, manufacturer: tuple[Authority, CertificateStore], use_rsa: bool
) -> None:
    root, certs = manufacturer
    data = bundle_bytes("2.0.0")
    sig = signer(root, use_rsa=use_rsa)
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, certificates=certs, fetcher=Fetcher(data=data)) as b:
            req = signed(
                7,
                sig.certificate,
                sig.sign(data),
                retrieve_at=clock.utcnow() + timedelta(seconds=60),
                install_at=clock.utcnow() + timedelta(seconds=600),
            )
            assert b.svc.update_firmware(req) == "Accepted"
            await asyncio.sleep(1)
            assert b.svc.current_status() == (S.DOWNLOAD_SCHEDULED, 7)
            await asyncio.sleep(100)
            assert b.installer.calls == []
            await asyncio.sleep(600)
            assert b.statuses() == [
                "DownloadScheduled",
                "Downloading",
                "Downloaded",
                "SignatureVerified",
                "InstallScheduled",
                "Installing",
                "InstallRebooting",
            ]
            assert {p.get("requestId") for _, p in b.sent()} == {7}
            assert b.events == []


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_invalid_signature_is_reported_with_its_security_event(
    tmp_path: Path, manufacturer: tuple[Authority, CertificateStore]
) -> None:
    root, certs = manufacturer
    sig = signer(root)
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, certificates=certs) as b:
            assert b.svc.update_firmware(signed(8, sig.certificate, sig.sign(b"other"))) == (
                "Accepted"
            )
            await asyncio.sleep(5)
            assert b.statuses() == ["Downloading", "Downloaded", "InvalidSignature"]
            assert [k for k, _ in b.events] == ["InvalidFirmwareSignature"]
            assert b.installer.calls == [] and b.store.request() is None


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_signing_certificate_of_another_root_is_invalid_certificate(
    tmp_path: Path, manufacturer: tuple[Authority, CertificateStore]
) -> None:
    _, certs = manufacturer
    stranger = signer(Authority.root("Someone Else"))
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, certificates=certs) as b:
            answer = b.svc.update_firmware(signed(9, stranger.certificate, stranger.sign(b"x")))
            assert answer == "InvalidCertificate"
            assert [k for k, _ in b.events] == ["InvalidFirmwareSigningCertificate"]
            assert b.store.request() is None and b.statuses() == []
            # A manufacturer root installed: unsigned updates are no longer taken (L01.FR.20).
            assert not b.svc.legacy_allowed()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_new_request_cancels_the_old_one_which_ends_download_failed(
    tmp_path: Path, manufacturer: tuple[Authority, CertificateStore]
) -> None:
    root, certs = manufacturer
    data = bundle_bytes("3.0.0")
    sig = signer(root)
    later = clock.utcnow() + timedelta(hours=1)
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, certificates=certs, fetcher=Fetcher(data=data)) as b:
            first = signed(1, sig.certificate, sig.sign(data), retrieve_at=later)
            assert b.svc.update_firmware(first) == "Accepted"
            await asyncio.sleep(1)
            assert b.svc.update_firmware(signed(2, sig.certificate, sig.sign(data))) == (
                "AcceptedCanceled"
            )
            await asyncio.sleep(5)
            sent = [(p.get("requestId"), p["status"]) for _, p in b.sent()]
            assert sent[:2] == [(1, "DownloadScheduled"), (1, "DownloadFailed")]
            assert sent[2:] == [
                (2, "Downloading"),
                (2, "Downloaded"),
                (2, "SignatureVerified"),
                (2, "Installing"),
                (2, "InstallRebooting"),
            ]
            # Installing now (the double restarts nothing): a third request is Rejected.
            assert b.svc.update_firmware(signed(3, sig.certificate, sig.sign(data))) == "Rejected"
            await asyncio.sleep(3600)
            assert len(b.fetcher.attempts) == 1  # the first request never downloads


def test_supported_file_transfer_protocols_are_what_the_transfers_take() -> None:
    from firmware.config_keys import FILE_TRANSFER_PROTOCOLS
    from firmware.transfer import SCHEMES

    assert sorted(FILE_TRANSFER_PROTOCOLS) == sorted(s.upper() for s in SCHEMES)


class BrokenInstaller(FakeInstaller):
    def check(self, bundle: Path) -> str:
        raise RuntimeError("a bug in the installer")


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_unexpected_error_ends_the_update_as_failed_and_the_charger_goes_on(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path, installer=BrokenInstaller()) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(5)
            assert b.statuses() == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
            assert not b.gate.held and b.store.request() is None and not b.restarts
            assert b.svc.update_firmware(legacy()) == "Accepted"  # the next one is taken


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_download_cut_by_a_power_loss_starts_again_after_the_restart(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        # What a power cut during the download leaves: the request, Downloading sent.
        store = FirmwareUpdateStore.open(tmp_path)
        store.replace(legacy(), S.IDLE)
        store.set_status(S.DOWNLOADING, ("FirmwareStatusNotification", {"status": "Downloading"}))
        (tmp_path / "firmware").mkdir()
        (tmp_path / "firmware" / "update.bundle.x1.part").write_bytes(b"half")
        store.close()
        async with service(tmp_path) as b:
            await asyncio.sleep(5)
            assert b.statuses() == ["Downloading", "Downloading", "Downloaded", "Installing"]
            await asyncio.sleep(10)
            assert len(b.fetcher.attempts) == 1 and b.restarts
            assert list((tmp_path / "firmware").iterdir()) == []  # the half file is gone


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_new_update_firmware_replaces_one_waiting_for_its_retrieve_date(
    tmp_path: Path,
) -> None:
    """The legacy flow has no DownloadScheduled: a request waiting for its retrieveDate is
    Idle, and a new UpdateFirmware must replace it, not run after it (L01 / §5.19)."""
    with wall_clock_follows_the_loop(EPOCH):
        async with service(tmp_path) as b:
            first = legacy(3600)
            b.svc.update_firmware(first)
            await asyncio.sleep(10)
            second = UpdateRequest(Flow.LEGACY, "http://127.0.0.1:9/second.bundle", clock.utcnow())
            b.svc.update_firmware(second)
            await asyncio.sleep(7200)
            assert len(b.fetcher.attempts) == 1, "the replaced request downloaded too"
            assert [round(t) for t in b.fetcher.attempts] == [10]
            assert b.statuses() == ["Downloading", "Downloaded", "Installing"]


def test_a_signing_certificate_issued_by_a_certificate_that_is_no_ca_is_refused(
    manufacturer: tuple[Authority, CertificateStore],
) -> None:
    """Only a CA may issue in the chain up to the ManufacturerRootCertificate (RFC 5280
    §4.2.1.9 basicConstraints): a leaf the manufacturer issued for another purpose (a server, a
    device) must not be able to issue firmware signing certificates."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.pki import _name, pem

    root, certs = manufacturer
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = root.issue(_name("some device", "Test Manufacturer"), leaf_key.public_key())
    forged = Authority(leaf_key, leaf).issue(
        _name("Firmware Signing", "Test Manufacturer"),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    why = certs.signing_certificate_problem(pem(forged) + pem(leaf))
    assert why is not None and "not a CA" in why
    # The same chain through a real intermediate CA is fine.
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = root.issue(_name("Firmware CA", "Test Manufacturer"), ca_key.public_key(), ca=True)
    good = Authority(ca_key, ca).issue(
        _name("Firmware Signing", "Test Manufacturer"),
        ec.generate_private_key(ec.SECP256R1()).public_key(),
    )
    assert certs.signing_certificate_problem(pem(good) + pem(ca)) is None


class StartDuringInstall(FakeInstaller):
    """A transaction that slipped in while the install ran: an authorization or a lock
    confirmation queued before the connectors' Unavailable was handled."""

    gate: Gate | None = None

    def install(self, bundle: Path) -> str:
        assert self.gate is not None
        self.gate.running = True
        return super().install(bundle)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_restart_waits_for_a_transaction_that_began_during_the_install(
    tmp_path: Path,
) -> None:
    """The restart into the new release never cuts a session: one that began after the last
    look (the connectors' Unavailable is queued behind events already posted) is waited for."""
    with wall_clock_follows_the_loop(EPOCH):
        gate = Gate()
        installer = StartDuringInstall()
        installer.gate = gate
        async with service(tmp_path, gate=gate, installer=installer) as b:
            b.svc.update_firmware(legacy())
            await asyncio.sleep(600)
            assert installer.calls == ["check", "install", "activate 2.0.0"]
            assert b.restarts == [], "the restart cut the session"
            gate.running = False
            await asyncio.sleep(10)
            assert b.restarts
            assert b.statuses() == ["Downloading", "Downloaded", "Installing"]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_retrieve_date_follows_the_wall_clock_when_it_is_set(tmp_path: Path) -> None:
    """A Pi has no RTC: it starts with the time it had when it went down (fake-hwclock) and NTP
    steps the clock later.  A retrieveDate waited for with the clock a day behind must come at
    its time once the clock is right, not a day late."""
    loop = asyncio.get_running_loop()
    behind = timedelta(days=1)
    clock.set_wall_clock(lambda: EPOCH - behind + timedelta(seconds=loop.time()))
    try:
        async with service(tmp_path) as b:
            b.svc.update_firmware(
                UpdateRequest(Flow.LEGACY, "http://127.0.0.1:9/fw", EPOCH + timedelta(hours=1))
            )
            await asyncio.sleep(10)
            behind = timedelta(0)  # NTP has set the clock
            await asyncio.sleep(3700)
            assert [round(t, -1) for t in b.fetcher.attempts] == [3600]
    finally:
        clock.set_wall_clock(None)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_controller_killed_during_the_install_reports_installation_failed(
    tmp_path: Path,
) -> None:
    """SIGKILL (or a power cut) while the bundle installs, before the release is activated:
    the same release starts again and reports InstallationFailed at registration, with the
    connectors' availability put back; a trigger then says Idle."""
    with wall_clock_follows_the_loop(EPOCH):
        installer = FakeInstaller()
        async with service(tmp_path, installer=installer) as b:
            never = asyncio.Event()

            async def hangs_in_install(fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
                if fn == installer.install:
                    await never.wait()  # the kill comes during pip
                return fn(*a, **kw)

            object.__setattr__(b.svc.w, "blocking", hangs_in_install)
            b.svc.update_firmware(legacy())
            await asyncio.sleep(10)
            assert b.statuses() == ["Downloading", "Downloaded", "Installing"]
            assert b.gate.held and not b.restarts
        # The same (old) release comes up: no trial ran, no outcome.
        async with service(tmp_path, installer=installer) as b:
            await asyncio.sleep(1)
            await b.svc.registered()
            assert b.statuses() == ["InstallationFailed"]
            # held again at the start (a ChangeAvailability is still recorded), then released
            assert b.gate.log == ["hold", "release [(0, True), (1, True), (2, False)]"]
            assert b.svc.current_status() == (S.IDLE, None)
            assert b.store.request() is None


def test_a_signature_wrapped_in_lines_is_the_same_signature(tmp_path: Path) -> None:
    """`openssl dgst -sign ... | openssl base64` (and base64 without -w0) wrap the text every
    64 or 76 characters: the line breaks are no part of the signature (RFC 4648 §3.3 lets the
    reader skip them), so a valid signature so written verifies."""
    import textwrap

    from firmware.certificate_checks import firmware_signature_problem

    root = Authority.root("Test Manufacturer Root")
    sig = signer(root, use_rsa=True)
    bundle = tmp_path / "b.tar"
    bundle.write_bytes(bundle_bytes("2.0.0"))
    one_line = sig.sign(bundle.read_bytes())
    wrapped = "\n".join(textwrap.wrap(one_line, 64)) + "\n"
    assert firmware_signature_problem(sig.certificate, one_line, bundle) is None
    assert firmware_signature_problem(sig.certificate, wrapped, bundle) is None
    assert firmware_signature_problem(sig.certificate, "not*base64", bundle) == (
        "the signature is not base64"
    )
